package agaobstestexporter

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"
)

func settings() exporter.Settings {
	return exporter.Settings{
		ID:                component.NewID(component.MustNewType(TypeStr)),
		TelemetrySettings: component.TelemetrySettings{Logger: zap.NewNop()},
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestConfigUnmarshalAndValidate(t *testing.T) {
	f := NewFactory()
	if f.Type().String() != "agaobstest" {
		t.Fatalf("type = %q", f.Type())
	}
	cfg := f.CreateDefaultConfig().(*Config)
	if err := cfg.Validate(); err == nil {
		t.Fatal("empty directory accepted")
	}
	conf := confmap.NewFromStringMap(map[string]any{"directory": "/tmp/x", "delay": "250ms"})
	if err := conf.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Directory != "/tmp/x" || cfg.Delay != 250*time.Millisecond {
		t.Fatalf("cfg = %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Delay = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Fatal("negative delay accepted")
	}
	bad := confmap.NewFromStringMap(map[string]any{"directory": "/tmp/x", "nope": 1})
	if err := bad.Unmarshal(f.CreateDefaultConfig()); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestWritesOneJSONLinePerBatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	cfg := &Config{Directory: dir}
	ctx := context.Background()
	f := NewFactory()

	te, err := f.CreateTraces(ctx, settings(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	le, err := f.CreateLogs(ctx, settings(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	me, err := f.CreateMetrics(ctx, settings(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []component.Component{te, le, me} {
		if err := c.Start(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}

	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("s1")
	span.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	for range 2 {
		if err := te.ConsumeTraces(ctx, td); err != nil {
			t.Fatal(err)
		}
	}
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("hello")
	if err := le.ConsumeLogs(ctx, ld); err != nil {
		t.Fatal(err)
	}
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("m1")
	m.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1.5)
	if err := me.ConsumeMetrics(ctx, md); err != nil {
		t.Fatal(err)
	}
	for _, c := range []component.Component{te, le, me} {
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}

	tl := readLines(t, filepath.Join(dir, TracesFile))
	if len(tl) != 2 {
		t.Fatalf("traces lines = %d, want 2", len(tl))
	}
	got, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(tl[1]))
	if err != nil {
		t.Fatal(err)
	}
	if n := got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name(); n != "s1" {
		t.Fatalf("span name = %q", n)
	}
	if !strings.Contains(tl[0], `"traceId":"0102030405060708090a0b0c0d0e0f10"`) {
		t.Fatalf("not OTLP/JSON hex trace id: %s", tl[0])
	}
	ll := readLines(t, filepath.Join(dir, LogsFile))
	if len(ll) != 1 || !strings.Contains(ll[0], `"body":{"stringValue":"hello"}`) {
		t.Fatalf("logs = %q", ll)
	}
	ml := readLines(t, filepath.Join(dir, MetricsFile))
	if len(ml) != 1 || !strings.Contains(ml[0], `"name":"m1"`) || !strings.Contains(ml[0], `"asDouble":1.5`) {
		t.Fatalf("metrics = %q", ml)
	}
}

func TestDelayHonoursContext(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Directory: dir, Delay: 300 * time.Millisecond}
	le, err := NewFactory().CreateLogs(context.Background(), settings(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := le.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer le.Shutdown(context.Background())
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("late")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := le.ConsumeLogs(ctx, ld); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if lines := readLines(t, filepath.Join(dir, LogsFile)); len(lines) != 0 {
		t.Fatalf("cancelled export wrote %d lines", len(lines))
	}

	start := time.Now()
	if err := le.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("export took %v, want >= delay", d)
	}
	if lines := readLines(t, filepath.Join(dir, LogsFile)); len(lines) != 1 {
		t.Fatalf("lines = %d, want 1", len(lines))
	}
}

func TestConcurrentBatchesGiveCompleteLines(t *testing.T) {
	dir := t.TempDir()
	te, err := NewFactory().CreateTraces(context.Background(), settings(), &Config{Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := te.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for range 200 {
		spans.AppendEmpty().SetName(strings.Repeat("x", 100))
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if err := te.ConsumeTraces(context.Background(), td); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := te.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, filepath.Join(dir, TracesFile))
	if len(lines) != 40 {
		t.Fatalf("lines = %d, want 40", len(lines))
	}
	for i, l := range lines {
		got, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(l))
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if got.SpanCount() != 200 {
			t.Fatalf("line %d: %d spans", i, got.SpanCount())
		}
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	te, err := NewFactory().CreateTraces(context.Background(), settings(), &Config{Directory: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := te.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
