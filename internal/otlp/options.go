package otlp

import (
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Signals.
const (
	SignalTraces  = "traces"
	SignalLogs    = "logs"
	SignalMetrics = "metrics"
)

// Options configure the exporter (the otlp_* keys; empty values leave the
// choice to the OTEL_EXPORTER_OTLP_* environment the SDK reads, then to its
// defaults).
type Options struct {
	Endpoint string // host:port or URL
	Protocol string // grpc or http/protobuf; "" : OTEL_EXPORTER_OTLP_PROTOCOL, else grpc
	Headers  map[string]string
	Insecure bool
	CAFile   string
	CertFile string
	KeyFile  string
	Signals  []string
	Timeout  time.Duration
	// QueueSize bounds the spans and the log records waiting for export,
	// and the audit records read ahead.
	QueueSize int
	// CriticalUs gives a forward span status Error at or above it (µs; 0:
	// never).
	CriticalUs float64
	// LogLevel is log_level: event-log records below it are not exported.
	LogLevel pipeline.Level
	// MetricsInterval is how often metrics are exported.
	MetricsInterval time.Duration
	// Temporality is cumulative or delta ("" : the environment, else
	// cumulative).
	Temporality string
	// Node is the node name (host.name, k8s.node.name,
	// service.instance.id's first part).
	Node string
	// Version is the agent's version (service.version of its resource).
	Version string
	// AGA is the Prometheus exporter's aggregation of the AGA families
	// (series labelled by producer), read at each metrics export: its
	// histograms carry the Prometheus bounds, or are exponential when
	// native histograms are on.
	AGA prometheus.Gatherer
	// Gatherer, when set, is read at each metrics export for the agent's
	// own families (agaobs_*, the alert and SLO families).
	Gatherer prometheus.Gatherer
	// Prefix is prometheus_prefix: the AGA families' names.
	Prefix string
	// Audit, when set, is the audit store the audit log records come
	// from; Cursor keeps the position (nil: from the start, in memory).
	Audit  AuditSource
	Cursor Cursor
	// Env looks up environment variables (os.LookupEnv).
	Env func(string) (string, bool)
	// Logger gets export failures (rate-limited) and lifecycle lines.
	Logger *slog.Logger
}

func (o Options) has(signal string) bool {
	for _, s := range o.Signals {
		if s == signal {
			return true
		}
	}
	return false
}

func (o Options) env(name string) string {
	if o.Env == nil {
		return ""
	}
	v, _ := o.Env(name)
	return v
}

// delta reports whether metrics go out with delta temporality.
func (o Options) delta() bool {
	t := o.Temporality
	if t == "" {
		t = strings.ToLower(o.env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"))
	}
	return t == "delta"
}

// protocol is the effective protocol.
func (o Options) protocol() string {
	if o.Protocol != "" {
		return o.Protocol
	}
	if p := o.env("OTEL_EXPORTER_OTLP_PROTOCOL"); p == "http/protobuf" || p == "grpc" {
		return p
	}
	return "grpc"
}
