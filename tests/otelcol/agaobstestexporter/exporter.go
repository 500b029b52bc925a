package agaobstestexporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"
)

// fileExporter writes one signal's batches to one file. It implements
// exporter.Traces, exporter.Logs and exporter.Metrics; the factory creates
// one instance per signal, each writing its own file.
type fileExporter struct {
	cfg    *Config
	name   string
	logger *zap.Logger

	mu   sync.Mutex
	file *os.File
}

var (
	_ exporter.Traces  = (*fileExporter)(nil)
	_ exporter.Logs    = (*fileExporter)(nil)
	_ exporter.Metrics = (*fileExporter)(nil)
)

func newFileExporter(set exporter.Settings, cfg *Config, name string) *fileExporter {
	return &fileExporter{cfg: cfg, name: name, logger: set.Logger}
}

// Start creates the directory and opens the file for appending.
func (e *fileExporter) Start(context.Context, component.Host) error {
	if err := os.MkdirAll(e.cfg.Directory, 0o755); err != nil {
		return fmt.Errorf("agaobstest: %w", err)
	}
	path := filepath.Join(e.cfg.Directory, e.name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("agaobstest: %w", err)
	}
	e.mu.Lock()
	e.file = f
	e.mu.Unlock()
	e.logger.Info("agaobstest exporter writing", zap.String("path", path), zap.Duration("delay", e.cfg.Delay))
	return nil
}

// Shutdown closes the file. It is safe to call without Start.
func (e *fileExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.file == nil {
		return nil
	}
	err := e.file.Close()
	e.file = nil
	return err
}

// Capabilities reports that the exporter does not change the data.
func (e *fileExporter) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// ConsumeTraces appends the batch as one OTLP/JSON line.
func (e *fileExporter) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if err := e.wait(ctx); err != nil {
		return err
	}
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		return err
	}
	return e.writeLine(b)
}

// ConsumeLogs appends the batch as one OTLP/JSON line.
func (e *fileExporter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if err := e.wait(ctx); err != nil {
		return err
	}
	b, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
	if err != nil {
		return err
	}
	return e.writeLine(b)
}

// ConsumeMetrics appends the batch as one OTLP/JSON line.
func (e *fileExporter) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if err := e.wait(ctx); err != nil {
		return err
	}
	b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	if err != nil {
		return err
	}
	return e.writeLine(b)
}

// wait sleeps for the configured delay, or until ctx ends.
func (e *fileExporter) wait(ctx context.Context) error {
	if e.cfg.Delay <= 0 {
		return nil
	}
	t := time.NewTimer(e.cfg.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeLine writes b and a newline in a single write and syncs the file,
// so a concurrent reader sees only complete lines.
func (e *fileExporter) writeLine(b []byte) error {
	line := make([]byte, 0, len(b)+1)
	line = append(line, b...)
	line = append(line, '\n')

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.file == nil {
		return errors.New("agaobstest: exporter not started")
	}
	if _, err := e.file.Write(line); err != nil {
		return fmt.Errorf("agaobstest: %w", err)
	}
	if err := e.file.Sync(); err != nil {
		return fmt.Errorf("agaobstest: %w", err)
	}
	return nil
}
