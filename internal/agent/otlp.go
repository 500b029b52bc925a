package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/otlp"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/state"
)

// defaultSlowUs is the slow-span threshold when no rule named
// slo_latency_p99 is configured: the seed rule's.
const defaultSlowUs = 1000

// otlpTracesOn reports whether spans are exported (exemplars on /metrics
// point at them only then).
func otlpTracesOn(cfg config.Config) bool {
	return cfg.OTLPEnabled && slices.Contains(cfg.OTLPSignals, otlp.SignalTraces)
}

// otlpMetricsOn reports whether metrics are exported over OTLP.
func otlpMetricsOn(cfg config.Config) bool {
	return cfg.OTLPEnabled && slices.Contains(cfg.OTLPSignals, otlp.SignalMetrics)
}

// spanKeepOptions is the keep decision both the OTLP sink and the
// metrics sink (exemplars) make.
func spanKeepOptions(cfg config.Config) pipeline.SpanKeepOptions {
	slow := cfg.OTLPTraceSlowThresholdUs
	if slow == 0 {
		slow = ruleThreshold(cfg, "slo_latency_p99", defaultSlowUs)
	}
	return pipeline.SpanKeepOptions{SampleRate: cfg.OTLPTraceSampleRate, SlowUs: slow,
		MaxPerSecond: cfg.OTLPTraceMaxSpansPerSecond, LatencyMetric: isLatencyMetric}
}

// isLatencyMetric reports whether an alert rule watches forward latency.
func isLatencyMetric(m string) bool {
	switch schema.RuleMetric(m) {
	case schema.RuleLatencyP50, schema.RuleLatencyP95, schema.RuleLatencyP99:
		return true
	}
	return false
}

// ruleThreshold is the threshold of the effective alert rule name, or def.
func ruleThreshold(cfg config.Config, name string, def float64) float64 {
	for _, r := range promrules.EffectiveRules(cfg.AlertUseDefaultRules, cfg.AlertRules) {
		if r.Name == name && r.Threshold > 0 {
			return r.Threshold
		}
	}
	return def
}

// newOTLP builds the OTLP sink. The agent's families reach it through a
// gatherer read at each export (the registry is built after the sinks).
func (a *Agent) newOTLP(cfg config.Config) error {
	lvl := pipeline.LevelInfo
	switch strings.ToUpper(cfg.LogLevel) {
	case "DEBUG":
		lvl = pipeline.LevelDebug
	case "WARNING", "WARN":
		lvl = pipeline.LevelWarning
	case "ERROR":
		lvl = pipeline.LevelError
	case "CRITICAL":
		lvl = pipeline.LevelCritical
	}
	opts := otlp.Options{Endpoint: cfg.OTLPEndpoint, Protocol: cfg.OTLPProtocol, Headers: cfg.OTLPHeaders,
		Insecure: cfg.OTLPInsecure, CAFile: cfg.OTLPTLSCAFile, CertFile: cfg.OTLPTLSCertFile, KeyFile: cfg.OTLPTLSKeyFile,
		Signals: cfg.OTLPSignals, Timeout: time.Duration(cfg.OTLPTimeout), QueueSize: cfg.OTLPQueueSize,
		CriticalUs: ruleThreshold(cfg, "slo_latency_critical", 0), LogLevel: lvl,
		MetricsInterval: time.Duration(cfg.OTLPMetricsInterval), Temporality: cfg.OTLPMetricsTemporality,
		Node: NodeName(cfg), Version: a.opts.Version,
		Prefix: cfg.PrometheusPrefix, Env: os.LookupEnv, Logger: a.log.With("component", "otlp"),
		Gatherer: prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			if a.registry == nil {
				return nil, nil
			}
			return a.registry.Gather()
		}),
		Audit: auditSource{a}}
	if a.exporter != nil {
		opts.AGA = a.exporter
	}
	if a.state != nil {
		opts.Cursor = stateCursor{a.state}
	}
	e, err := otlp.New(context.Background(), opts)
	if err != nil {
		// Name the key the error is about (a TLS file, else the endpoint).
		key := "otlp_endpoint"
		for _, k := range []string{"otlp_tls_ca_file", "otlp_tls_cert_file"} {
			if strings.Contains(err.Error(), k) {
				key = k
				break
			}
		}
		return &config.Error{Key: key, Source: "config", Msg: err.Error()}
	}
	a.otlp = e
	a.addSink(e, sinkLinger)
	return nil
}

// auditSource reads the agent's audit store for the OTLP audit log export.
type auditSource struct{ a *Agent }

func (s auditSource) After(seq uint64, limit int) ([]otlp.AuditRecord, error) {
	// The head is cheap; a query may read the whole trail (the file
	// backend scans its files), so an idle tail costs nothing.
	if h, err := s.a.auditStore.Head(); err == nil && h.Size <= seq {
		return nil, nil
	}
	recs, err := s.a.auditStore.Query(audit.Filter{After: seq, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	out := make([]otlp.AuditRecord, len(recs))
	for i := range recs {
		r := &recs[i]
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("audit record %d: %w", r.Seq, err)
		}
		out[i] = otlp.AuditRecord{Seq: r.Seq, Time: r.Time, Kind: r.Kind, Producer: r.Producer,
			Operation: r.Operation, Success: r.Success, Hash: r.Hash, JSON: b}
	}
	return out, nil
}

// stateCursor keeps the audit log export's cursor in the state file.
type stateCursor struct{ s *state.Store }

const (
	otlpBucket    = "otlp"
	otlpCursorKey = "audit_cursor"
)

func (c stateCursor) Load() (uint64, error) {
	var seq uint64
	_, err := c.s.Get(otlpBucket, otlpCursorKey, &seq)
	return seq, err
}

func (c stateCursor) Save(seq uint64) error { return c.s.Put(otlpBucket, otlpCursorKey, seq) }
