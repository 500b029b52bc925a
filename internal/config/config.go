package config

import (
	"fmt"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Duration is a time.Duration that is written in files, flags and environment
// variables as a Prometheus-style duration string: a sequence of decimal
// integers with units y, w, d, h, m, s, ms, largest unit first ("30s", "5m",
// "30d", "2ms", "1h30m"), or "0". Its resolution is one millisecond.
type Duration time.Duration

// parseDuration parses a Prometheus-style duration string (see Duration).
func parseDuration(s string) (Duration, error) {
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parse duration: %w", err)
	}
	return Duration(d), nil
}

// String renders d as a Prometheus-style duration string ("0s", "2ms", "5m",
// "30d", "1h30m") that the file, flag and environment parsers accept back.
// Sub-millisecond parts are dropped.
func (d Duration) String() string { return model.Duration(d).String() }

// Config is the configuration of agaobs-agent. Every field is one key of the
// configuration file (its yaml tag); scalar, list and map keys are also a flag
// and an environment variable (see Keys). Fields tagged flag:"-" are file-only.
//
// The first group of keys carries the names of the Python package
// aga_observability's ObservabilityConfig; the second group is agent-specific.
type Config struct {
	// Reference keys (aga_observability ObservabilityConfig).

	Enabled bool `yaml:"enabled" help:"Compatibility key of the Python package aga_observability; accepted and ignored by the agent."`

	PrometheusEnabled          bool              `yaml:"prometheus_enabled" help:"Serve Prometheus metrics. Used by the Prometheus exporter."`
	PrometheusHost             string            `yaml:"prometheus_host" help:"Address the Prometheus exporter listens on; empty means all interfaces. Used by the Prometheus exporter."`
	PrometheusPort             int               `yaml:"prometheus_port" help:"TCP port of the Prometheus exporter (1-65535). Used by the Prometheus exporter."`
	PrometheusPrefix           string            `yaml:"prometheus_prefix" help:"Prefix of every metric name; must match ^[a-zA-Z_][a-zA-Z0-9_]*$. Used by the Prometheus exporter."`
	PrometheusLabels           map[string]string `yaml:"prometheus_labels" help:"Constant labels added to every metric; names must be valid Prometheus label names not starting with __, and not producer, node, instance or job. Used by the Prometheus exporter."`
	PrometheusNaming           string            `yaml:"prometheus_naming" help:"Metric naming: compat (the seed's names, e.g. aga_forward_latency_us) or conventional (base units, lint-clean: aga_forward_latency_seconds, aga_knowledge_items, aga_knowledge_pinned_items). Used by the Prometheus exporter."`
	PrometheusNativeHistograms bool              `yaml:"prometheus_native_histograms" help:"Also expose native histograms (schema 3) beside the classic buckets; Prometheus reads them over the protobuf format. Used by the Prometheus exporter."`

	LogEnabled           bool   `yaml:"log_enabled" help:"Write observed events to the event log. Used by the event log sink."`
	LogFormat            string `yaml:"log_format" help:"Event log format: json or text. Used by the event log sink."`
	LogLevel             string `yaml:"log_level" help:"Lowest level written to the event log: DEBUG, INFO, WARNING, ERROR or CRITICAL (case-insensitive, stored upper case). Used by the event log sink."`
	LogFile              string `yaml:"log_file" help:"Event log file path; empty selects the event log sink's default output. Used by the event log sink."`
	LogMaxBytes          int64  `yaml:"log_max_bytes" help:"Size in bytes at which the event log file is rotated (>= 0). Used by the event log sink."`
	LogBackupCount       int    `yaml:"log_backup_count" help:"Number of rotated event log files kept (>= 0). Used by the event log sink."`
	LogStderr            bool   `yaml:"log_stderr" help:"Also write event log lines to stderr (the reference always did); with no log_file they go to stderr regardless. Used by the event log sink."`
	LogForwardSampleRate int    `yaml:"log_forward_sample_rate" help:"Log 1 in N forward events (>= 1); the others are counted in agaobs_log_sampled_out_total. Used by the event log sink."`

	AuditStorageBackend  string   `yaml:"audit_storage_backend" help:"Audit store backend: bbolt, file or memory (sqlite is a deprecated alias of bbolt). Used by the audit store."`
	AuditStoragePath     string   `yaml:"audit_storage_path" help:"Path of the audit store. Used by the audit store."`
	AuditRetentionDays   int      `yaml:"audit_retention_days" help:"Days audit records are kept (>= 0). Used by the audit store."`
	AuditFlushInterval   float64  `yaml:"audit_flush_interval" help:"Seconds between audit store flushes (> 0). Used by the audit store."`
	AuditBatchSize       int      `yaml:"audit_batch_size" help:"Maximum number of audit records written per flush (>= 1). Used by the audit store."`
	AuditMaxBytes        int64    `yaml:"audit_max_bytes" help:"Audit records kept at most (bytes of stored records, >= 0; 0: no limit): retention removes whole oldest days beyond it. Used by the audit store."`
	AuditMaxFileBytes    int64    `yaml:"audit_max_file_bytes" help:"file backend: rotate the JSONL file at this size (>= 4096). Used by the audit store."`
	AuditMaxFiles        int      `yaml:"audit_max_files" help:"file backend: JSONL files kept, the active one included (>= 1); older ones are removed with a checkpoint. Used by the audit store."`
	AuditRedactKeys      []string `yaml:"audit_redact_keys" help:"Keys removed from audit details (at any depth) before storage and hashing. Used by the audit store."`
	AuditHeadLogInterval Duration `yaml:"audit_head_log_interval" help:"How often the audit chain head (size and hash) is logged for an off-node witness (> 0). Used by the audit store."`
	AuditVerifyInterval  Duration `yaml:"audit_verify_interval" help:"Interval of the background re-verification of the whole audit hash chain (the first runs at start); 0 disables it, else 1m to 7d. The result: agaobs_audit_verify_ok, agaobs_audit_last_verify_timestamp_seconds, the live view; a failure raises AgaobsAuditVerifyFailed (Prometheus rules). Used by the audit store."`

	AlertEnabled             bool        `yaml:"alert_enabled" help:"Evaluate alert rules. Used by the alert engine."`
	AlertRules               []AlertRule `yaml:"alert_rules" flag:"-" help:"Alert rules (file only; see Alert rules). Used by the alert engine."`
	AlertWebhookURL          string      `yaml:"alert_webhook_url" help:"Absolute http or https URL that alerts are posted to; empty means no webhook. Used by the alert engine."`
	AlertLogLevel            string      `yaml:"alert_log_level" help:"Level at which alerts are logged: DEBUG, INFO, WARNING, ERROR or CRITICAL (case-insensitive, stored upper case). Used by the alert engine."`
	AlertUseDefaultRules     bool        `yaml:"alert_use_default_rules" help:"Load the four seed rules (slo_latency_p99, slo_latency_critical, high_utilization, slot_thrashing); a custom rule with the same name replaces one. Used by the alert engine."`
	AlertEvalInterval        Duration    `yaml:"alert_eval_interval" help:"How often rules are evaluated (> 0); retrieval events also trigger an evaluation. Used by the alert engine."`
	AlertWebhookFormat       string      `yaml:"alert_webhook_format" help:"Body posted to alert_webhook_url: reference (the seed's JSON plus status) or alertmanager (Alertmanager webhook v4). Used by the alert engine."`
	AlertWebhookSecretFile   string      `yaml:"alert_webhook_secret_file" help:"File whose content keys an HMAC-SHA256 signature of each webhook body (header X-Agaobs-Signature: sha256=<hex>); empty: unsigned. Used by the alert engine."`
	AlertmanagerURLs         []string    `yaml:"alertmanager_urls" help:"Alertmanager base URLs alerts are pushed to (POST <url>/api/v2/alerts). Used by the alert engine."`
	AlertExecCommand         string      `yaml:"alert_exec_command" help:"Command run (through /bin/sh -c) for each notification with the alert as JSON on stdin; empty: none. Used by the alert engine."`
	AlertNotificationTimeout Duration    `yaml:"alert_notification_timeout" help:"Timeout of one notification attempt (> 0). Used by the alert engine."`
	AlertResendInterval      Duration    `yaml:"alert_resend_interval" help:"How often firing alerts are re-sent to Alertmanager before their endsAt (> 0; Prometheus's resend delay). Used by the alert engine."`
	AlertExternalURL         string      `yaml:"alert_external_url" help:"Base URL of this agent as seen from Alertmanager, for generatorURL (e.g. http://node-1:8081); empty: no generatorURL. Used by the alert engine."`
	AnomalyEnabled           bool        `yaml:"anomaly_enabled" help:"Learn a robust baseline per producer, signal and layer from one-minute aggregates, export anomaly scores and evaluate the default anomaly rules (anomaly_latency_regression, anomaly_gate_collapse, anomaly_retrieval_starvation, anomaly_straggler_rank) and every rule with metric anomaly or straggler; independent of alert_use_default_rules (docs/anomaly.md). Used by the alert engine."`
	AnomalyLearningPeriod    Duration    `yaml:"anomaly_learning_period" help:"How long a new series learns its baseline before it may alert (1m-7d); a producer that takes a dead one's name over keeps the baseline. Used by the alert engine."`

	// HTTP clients of the notification channels: prometheus/common's
	// http_config block, decoded by its own YAML methods (file only).
	AlertmanagerHTTPConfig *promconfig.HTTPClientConfig `yaml:"alertmanager_http_config" flag:"-" help:"HTTP client of the Alertmanager channel (file only): the http_config block Prometheus takes under alertmanager_config (tls_config, basic_auth, authorization, oauth2, proxy_url, proxy_from_environment, follow_redirects, enable_http2, http_headers; see docs/alerting.md). Absent: the system's CAs, credentials only from userinfo in alertmanager_urls, the proxy from HTTP_PROXY/HTTPS_PROXY/NO_PROXY, no redirects. Files it names must be readable at load; relative paths are relative to the working directory. Takes effect at restart (not on SIGHUP). Used by the alert engine."`
	AlertWebhookHTTPConfig *promconfig.HTTPClientConfig `yaml:"alert_webhook_http_config" flag:"-" help:"HTTP client of the webhook channel (file only), the same block as alertmanager_http_config. Absent: the system's CAs, credentials only from userinfo in alert_webhook_url, the proxy from HTTP_PROXY/HTTPS_PROXY/NO_PROXY, no redirects. Takes effect at restart (not on SIGHUP). Used by the alert engine."`

	HealthEnabled bool   `yaml:"health_enabled" help:"Serve the health endpoint. Used by the health endpoint."`
	HealthHost    string `yaml:"health_host" help:"Address the health endpoint listens on; empty means all interfaces. Used by the health endpoint."`
	HealthPort    int    `yaml:"health_port" help:"TCP port of the health endpoint (1-65535). Used by the health endpoint."`
	HealthPath    string `yaml:"health_path" help:"URL path of the health endpoint; must start with /. Used by the health endpoint."`

	HealthKVUtilizationDegraded float64 `yaml:"health_kv_utilization_degraded" help:"A producer's kv_store component is degraded above this utilization (0 < x <= 1). Used by the health endpoint."`
	HealthDropRateDegraded      float64 `yaml:"health_drop_rate_degraded" help:"A producer's ring component is degraded when more than this share of its records was dropped over the last minute (0 <= x <= 1). Used by the health endpoint."`
	HealthHeartbeatStale        float64 `yaml:"health_heartbeat_stale_seconds" help:"A producer's liveness component is unhealthy when its heartbeat is older than this (seconds, > 0). Used by the health endpoint."`
	HealthWebConfigFile         string  `yaml:"health_web_config_file" help:"Web configuration file (exporter-toolkit: TLS, basic auth) of the health listener only; empty: plain HTTP, as kubelet probes expect. Used by the health endpoint."`

	// Agent keys.

	NodeName            string `yaml:"node_name" help:"The node this agent runs on: the node label of every series (prometheus_node_label) and of every alert it raises; empty: the NODE_NAME environment variable (Kubernetes downward API), else the hostname. Valid UTF-8, at most 253 bytes. Used by the agent."`
	PrometheusNodeLabel bool   `yaml:"prometheus_node_label" help:"Add node=<node_name> to every series the agent exposes, so one Prometheus scraping many nodes never merges them; when false, generated rules and dashboards tell nodes apart by instance instead. Used by the Prometheus exporter."`

	RingDir                        string            `yaml:"ring_dir" help:"Directory of the producers' shared-memory rings and the doorbell FIFO (non-empty). Used by the ring consumer."`
	RingGroup                      string            `yaml:"ring_group" help:"Group (name or numeric gid) owning the ring directory; empty means a sticky world-writable directory. Used by the ring consumer."`
	RingHotBytes                   int64             `yaml:"ring_hot_bytes" help:"Data capacity in bytes of a hot ring (power of two, >= 4096). Producer-side: used by producers when they create rings."`
	RingAuditBytes                 int64             `yaml:"ring_audit_bytes" help:"Data capacity in bytes of an audit ring (power of two, >= 4096). Producer-side: used by producers when they create rings."`
	RingAuditWaitUs                int               `yaml:"ring_audit_wait_us" help:"Microseconds a producer waits for room in a full audit ring before dropping (>= 0). Producer-side."`
	RingAllowedUIDs                []int             `yaml:"ring_allowed_uids" help:"Uids whose rings are accepted; empty means any uid (each >= 0). Used by the ring consumer."`
	RingRescanInterval             Duration          `yaml:"ring_rescan_interval" help:"Interval between scans of the ring directory for new rings (> 0); while inotify works (it triggers a scan on every change) the periodic scan runs 5 times less often. Used by the ring consumer."`
	RingPollInterval               Duration          `yaml:"ring_poll_interval" help:"Interval between polls of the rings while data flows (> 0, <= 1s). Used by the ring consumer."`
	RingIdleSleep                  Duration          `yaml:"ring_idle_sleep" help:"How long the idle consumer waits on the doorbell before housekeeping (> 0). Used by the ring consumer."`
	RingMaxRecordsPerPass          int               `yaml:"ring_max_records_per_pass" help:"Maximum records read from one ring in one pass (>= 1). Used by the ring consumer."`
	RingRemoveDead                 bool              `yaml:"ring_remove_dead" help:"Remove the ring files of dead producers once drained. Used by the ring consumer."`
	ProducerRetention              Duration          `yaml:"producer_retention" help:"How long a dead or closed producer stays listed after it is drained (>= 0). Used by the ring consumer."`
	ProducerHeartbeatStale         float64           `yaml:"producer_heartbeat_stale_seconds" help:"Seconds after which a producer heartbeat counts as stale (> 0). Used by the ring consumer."`
	RingMaxProducers               int               `yaml:"ring_max_producers" help:"Live producers accepted per uid (1-65536); rings of a uid beyond it are rejected (reason producer limit) until one of its producers ends. Used by the ring consumer."`
	SinkQueueSize                  int               `yaml:"sink_queue_size" help:"Events per sink queue (16-16777216). Used by the event sinks."`
	PrometheusMaxLayersPerProducer int               `yaml:"prometheus_max_layers_per_producer" help:"Distinct layer label values kept per producer (1-65536); further layers are counted under layer=\"other\" and in agaobs_cardinality_limited_total. Used by the Prometheus exporter."`
	PrometheusLayerHistograms      bool              `yaml:"prometheus_layer_histograms" help:"Keep the forward latency, gate and entropy histograms per hooked layer (label layer); false keeps one per producer, every layer aggregated, which cuts a producer's series about tenfold at many layers (docs/cardinality.md); the per-layer counters keep layer either way. Takes effect at restart (not on SIGHUP). Used by the Prometheus exporter."`
	StatePath                      string            `yaml:"state_path" help:"Path of the agent state store; empty disables persistence (Load warns). Used by the state store."`
	AgentLogLevel                  string            `yaml:"agent_log_level" help:"Level of the agent's own log: debug, info, warn or error (case-insensitive, stored lower case). Used by the agent logger."`
	AgentLogFormat                 string            `yaml:"agent_log_format" help:"Format of the agent's own log: text or json. Used by the agent logger."`
	AgentGOMAXPROCS                int               `yaml:"agent_gomaxprocs" help:"CPUs the agent's Go code runs on (GOMAXPROCS, >= 1; 0 keeps the Go runtime's choice). Default 1, as node_exporter does: one thread waking another costs more than the agent's work at typical rates."`
	AdminListenAddress             string            `yaml:"admin_listen_address" help:"host:port of the admin listener; empty disables it. Used by the admin listener."`
	UIMaxViewers                   int               `yaml:"ui_max_viewers" help:"Live view viewers (WebSocket connections to /ui/ on the admin listener) at most (1-1000); one more is refused with a message saying so. Used by the live view."`
	WebMaxConnections              int               `yaml:"web_max_connections" help:"Concurrent connections per HTTP listener (1-65536); at the limit the oldest idle keep-alive connection is closed to let a new one in. Used by the HTTP listeners."`
	WebIdleTimeout                 Duration          `yaml:"web_idle_timeout" help:"Idle keep-alive connections are closed after this (> 0, <= 1h). Used by the HTTP listeners."`
	WebConfigFile                  string            `yaml:"web_config_file" help:"Path of a web configuration file (exporter-toolkit format: TLS, basic auth) for the HTTP listeners; empty means none. Used by the HTTP listeners."`
	StatusIntervalSeconds          float64           `yaml:"status_interval_seconds" help:"Producer-side snapshot interval in seconds (> 0). Used by the demo producers."`
	StatusGateCheckSeconds         float64           `yaml:"status_gate_check_seconds" help:"Producer-side interval in seconds of the gate parameter check (>= 0). Used by the demo producers."`
	GPUEnabled                     bool              `yaml:"gpu_enabled" help:"Collect NVIDIA GPU state through NVML (libnvidia-ml, loaded at run time; without it the GPU is reported unavailable). Used by the GPU collector."`
	GPUCollectInterval             Duration          `yaml:"gpu_collect_interval" help:"How often GPU state is read (> 0). Used by the GPU collector."`
	GPUPCIeEnabled                 bool              `yaml:"gpu_pcie_enabled" help:"Also read PCIe throughput (each read samples for about 20 ms per GPU). Used by the GPU collector."`
	GPUXIDWindow                   Duration          `yaml:"gpu_xid_window" help:"How long a critical XID error keeps GPU health unhealthy (> 0). Used by the GPU collector."`
	GPUExpectedCount               int               `yaml:"gpu_expected_count" help:"GPUs the node should have (>= 0; 0: no check); fewer makes GPU health unhealthy. Used by the GPU collector."`
	BPFEnabled                     bool              `yaml:"bpf_enabled" help:"Load the eBPF latency probes on the producers' processes (needs root, or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN for uprobes; without them eBPF is reported unavailable). Used by the eBPF probes."`
	BPFRequire                     bool              `yaml:"bpf_require" help:"Exit when an enabled probe cannot be loaded for want of privilege or kernel support (a probe with no target yet is not a failure). Used by the eBPF probes."`
	BPFRescanInterval              Duration          `yaml:"bpf_rescan_interval" help:"How often the producers' memory maps are rescanned for shared libraries loaded later (> 0). Used by the eBPF probes."`
	OTLPEnabled                    bool              `yaml:"otlp_enabled" help:"Export traces, logs and metrics over OTLP (OpenTelemetry). Used by the OTLP exporter."`
	OTLPEndpoint                   string            `yaml:"otlp_endpoint" help:"Collector address: host:port, or an http(s) URL (a scheme also sets otlp_insecure for http); empty: OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT), else localhost:4317 for grpc and localhost:4318 for http/protobuf. Used by the OTLP exporter."`
	OTLPProtocol                   string            `yaml:"otlp_protocol" help:"grpc or http/protobuf; empty: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc. Used by the OTLP exporter."`
	OTLPHeaders                    map[string]string `yaml:"otlp_headers" help:"Headers sent with every export (e.g. authorization); empty: OTEL_EXPORTER_OTLP_HEADERS. Used by the OTLP exporter."`
	OTLPInsecure                   bool              `yaml:"otlp_insecure" help:"Plain text (no TLS) to the collector; false: OTEL_EXPORTER_OTLP_INSECURE decides, else TLS. Used by the OTLP exporter."`
	OTLPTLSCAFile                  string            `yaml:"otlp_tls_ca_file" help:"PEM CA certificates the collector's certificate is checked against (instead of the system's); empty: OTEL_EXPORTER_OTLP_CERTIFICATE. Used by the OTLP exporter."`
	OTLPTLSCertFile                string            `yaml:"otlp_tls_cert_file" help:"PEM client certificate for mutual TLS (with otlp_tls_key_file); empty: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE. Used by the OTLP exporter."`
	OTLPTLSKeyFile                 string            `yaml:"otlp_tls_key_file" help:"PEM key of otlp_tls_cert_file; empty: OTEL_EXPORTER_OTLP_CLIENT_KEY. Used by the OTLP exporter."`
	OTLPSignals                    []string          `yaml:"otlp_signals" help:"Signals exported: any of traces, logs, metrics. Used by the OTLP exporter."`
	OTLPTimeout                    Duration          `yaml:"otlp_timeout" help:"Deadline of one export, retries included (0: OTEL_EXPORTER_OTLP_TIMEOUT, else 10s; at most 5m). Used by the OTLP exporter."`
	OTLPQueueSize                  int               `yaml:"otlp_queue_size" help:"Spans, log records and audit records queued per signal for export (16-1048576); when the collector is down or slow, spans and log records beyond it are dropped and counted (audit records wait). Used by the OTLP exporter."`
	OTLPTraceSampleRate            float64           `yaml:"otlp_trace_sample_rate" help:"Fraction of forwards and retrievals kept as spans by head sampling on the trace id (0-1); slow forwards are kept regardless. Used by the OTLP exporter."`
	OTLPTraceSlowThresholdUs       float64           `yaml:"otlp_trace_slow_threshold_us" help:"Forwards at or above this latency (µs) are always kept as spans (>= 0; 0: the threshold of the alert rule slo_latency_p99, 1000 by default). Used by the OTLP exporter."`
	OTLPTraceMaxSpansPerSecond     int               `yaml:"otlp_trace_max_spans_per_second" help:"Kept spans per second at most, slow ones and those during a firing latency alert included (1-1000000); beyond it they are counted, not sent. Used by the OTLP exporter."`
	OTLPMetricsTemporality         string            `yaml:"otlp_metrics_temporality" help:"cumulative or delta; empty: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE (cumulative or delta), else cumulative. Used by the OTLP exporter."`
	OTLPMetricsInterval            Duration          `yaml:"otlp_metrics_interval" help:"How often metrics are exported (1s-1h). Used by the OTLP exporter."`
	SLOs                           []SLO             `yaml:"slos" flag:"-" help:"Service level objectives (file only; see SLOs)."`
	BPFProbes                      map[string]bool   `yaml:"bpf_probes" flag:"-" help:"eBPF probes to switch on or off by name (file only; defaults: offcpu, runqueue, python_gc, cuda_sync, cuda_graph_launch on; cuda_launch, gil_wait, forward_marker off). Used by the eBPF probes."`
}

// AlertRule is one element of alert_rules. Call SetDefaults before filling a
// rule by hand; the decoder applies the defaults before it reads each element
// from the file, so keys a rule leaves out keep their defaults.
type AlertRule struct {
	Name            string            `yaml:"name" required:"true" help:"Rule name, unique across alert_rules (required)."`
	Metric          string            `yaml:"metric" required:"true" help:"Metric the rule watches (required)."`
	Operator        string            `yaml:"operator" help:"Comparison: >, <, >=, <=, == or != (default >)."`
	Threshold       float64           `yaml:"threshold" help:"Value compared against the metric (default 0)."`
	WindowSeconds   float64           `yaml:"window_seconds" help:"Evaluation window in seconds (> 0, default 60)."`
	Severity        string            `yaml:"severity" help:"info, warning or critical (default warning)."`
	Message         string            `yaml:"message" help:"Alert message (default empty)."`
	CooldownSeconds float64           `yaml:"cooldown_seconds" help:"Seconds before the rule may fire again (>= 0, default 300)."`
	For             Duration          `yaml:"for" help:"How long the condition must hold before the alert fires (default 0s)."`
	KeepFiringFor   Duration          `yaml:"keep_firing_for" help:"How long the alert keeps firing after the condition clears (default 0s)."`
	Labels          map[string]string `yaml:"labels" help:"Labels attached to the alert (valid label names)."`
	Annotations     map[string]string `yaml:"annotations" help:"Annotations attached to the alert (valid label names)."`
	PerProducer     bool              `yaml:"per_producer" help:"Evaluate the rule for every producer separately (default true)."`
	Signal          string            `yaml:"signal" help:"Rules with metric anomaly or straggler: the signal watched (docs/anomaly.md lists them; required for those rules, not allowed for others)."`
	Sensitivity     string            `yaml:"sensitivity" help:"Rules with metric anomaly or straggler: low, medium or high, the score at or beyond which the condition holds (8, 6 and 4.5; straggler 8, 6 and 4); empty means medium."`
	Direction       string            `yaml:"direction" help:"Rules with metric anomaly: up, down or both, the deviations that count; empty means both."`
}

// SetDefaults sets every field of r to its default value.
func (r *AlertRule) SetDefaults() {
	*r = AlertRule{
		Operator:        ">",
		WindowSeconds:   60,
		Severity:        "warning",
		CooldownSeconds: 300,
		PerProducer:     true,
	}
}

// SLO is one element of slos.
type SLO struct {
	Name      string   `yaml:"name" required:"true" help:"SLO name, unique across slos (required)."`
	Objective float64  `yaml:"objective" required:"true" help:"Target fraction of good events, 0 < objective < 1 (required)."`
	Period    Duration `yaml:"period" help:"Period the objective is measured over (> 0, default 30d)."`
	SLI       SLI      `yaml:"sli" required:"true" help:"Service level indicator (required)."`
}

// SetDefaults sets every field of s to its default value.
func (s *SLO) SetDefaults() {
	*s = SLO{Period: Duration(30 * 24 * time.Hour)}
}

// SLI is the service level indicator of an SLO.
type SLI struct {
	Type        string  `yaml:"type" required:"true" help:"latency or availability (required)."`
	ThresholdUs float64 `yaml:"threshold_us" help:"Latency threshold in microseconds (> 0, required when type is latency)."`
}

// Default returns the configuration with every key at its default value.
func Default() Config {
	return Config{
		Enabled: true,

		PrometheusEnabled: true,
		PrometheusHost:    "",
		PrometheusPort:    9090,
		PrometheusPrefix:  "aga",
		PrometheusNaming:  "compat",

		PrometheusNodeLabel: true,

		LogEnabled:           true,
		LogFormat:            "json",
		LogLevel:             "INFO",
		LogMaxBytes:          104857600,
		LogBackupCount:       5,
		LogForwardSampleRate: 1,

		AuditStorageBackend:  "bbolt",
		AuditStoragePath:     "aga_audit.db",
		AuditRetentionDays:   90,
		AuditFlushInterval:   0.05,
		AuditBatchSize:       1000,
		AuditMaxFileBytes:    104857600,
		AuditMaxFiles:        10,
		AuditHeadLogInterval: Duration(5 * time.Minute),
		AuditVerifyInterval:  Duration(time.Hour),

		AlertEnabled:             true,
		AlertLogLevel:            "WARNING",
		AlertUseDefaultRules:     true,
		AlertEvalInterval:        Duration(time.Second),
		AnomalyEnabled:           true,
		AnomalyLearningPeriod:    Duration(30 * time.Minute),
		AlertWebhookFormat:       "reference",
		AlertNotificationTimeout: Duration(10 * time.Second),
		AlertResendInterval:      Duration(time.Minute),

		HealthEnabled: true,
		HealthPort:    8080,
		HealthPath:    "/health",

		HealthKVUtilizationDegraded: 0.95,
		HealthDropRateDegraded:      0.01,
		HealthHeartbeatStale:        5,

		RingDir:                        "/dev/shm/agaobs",
		RingHotBytes:                   4194304,
		RingAuditBytes:                 1048576,
		RingAuditWaitUs:                200,
		RingRescanInterval:             Duration(2 * time.Second),
		RingPollInterval:               Duration(3 * time.Millisecond),
		RingIdleSleep:                  Duration(250 * time.Millisecond),
		RingMaxRecordsPerPass:          4096,
		RingRemoveDead:                 true,
		ProducerRetention:              Duration(5 * time.Minute),
		ProducerHeartbeatStale:         5,
		RingMaxProducers:               256,
		SinkQueueSize:                  65536,
		PrometheusMaxLayersPerProducer: 256,
		PrometheusLayerHistograms:      true,
		StatePath:                      "agaobs_state.db",
		AgentLogLevel:                  "info",
		AgentLogFormat:                 "text",
		AgentGOMAXPROCS:                1,
		AdminListenAddress:             "127.0.0.1:8081",
		UIMaxViewers:                   20,
		WebMaxConnections:              512,
		WebIdleTimeout:                 Duration(30 * time.Second),
		StatusIntervalSeconds:          2,
		StatusGateCheckSeconds:         0,
		GPUEnabled:                     true,
		GPUCollectInterval:             Duration(5 * time.Second),
		GPUXIDWindow:                   Duration(10 * time.Minute),
		BPFEnabled:                     true,
		BPFRescanInterval:              Duration(10 * time.Second),
		OTLPSignals:                    []string{"traces", "logs", "metrics"},
		OTLPQueueSize:                  2048,
		OTLPTraceSampleRate:            0.001,
		OTLPTraceMaxSpansPerSecond:     1000,
		OTLPMetricsInterval:            Duration(15 * time.Second),
	}
}
