// Package agaobstestexporter is a small OpenTelemetry Collector exporter for
// the agaobs end-to-end tests: it appends every batch it receives as one line
// of OTLP/JSON (pdata's JSON marshalers) to a file per signal.
package agaobstestexporter

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
)

// TypeStr is the exporter's name in the collector configuration.
const TypeStr = "agaobstest"

// File names written under Config.Directory, one per signal.
const (
	TracesFile  = "traces.jsonl"
	LogsFile    = "logs.jsonl"
	MetricsFile = "metrics.jsonl"
)

const stability = component.StabilityLevelDevelopment

// NewFactory returns the factory of the agaobstest exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		component.MustNewType(TypeStr),
		createDefaultConfig,
		exporter.WithTraces(createTraces, stability),
		exporter.WithLogs(createLogs, stability),
		exporter.WithMetrics(createMetrics, stability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{}
}

func createTraces(_ context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	return newFileExporter(set, cfg.(*Config), TracesFile), nil
}

func createLogs(_ context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	return newFileExporter(set, cfg.(*Config), LogsFile), nil
}

func createMetrics(_ context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	return newFileExporter(set, cfg.(*Config), MetricsFile), nil
}
