package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/schema"
)

// Value sets of the enumerated keys, in the order error messages list them.
const (
	levels          = "DEBUG INFO WARNING ERROR CRITICAL"
	agentLevels     = "debug info warn error"
	logFormats      = "json text"
	agentLogFormats = "text json"
	auditBackends   = "bbolt file memory sqlite"
	operators       = "> < >= <= == !="
	severities      = "info warning critical"
	sliTypes        = "latency availability"
	bpfProbes       = "offcpu runqueue python_gc cuda_sync cuda_graph_launch cuda_launch gil_wait forward_marker"
)

// latencyBoundList spells the forward latency bucket bounds (µs) as errors
// list them. A latency SLI threshold must be one, so Prometheus can compute
// the same SLI from the exported buckets.
func latencyBoundList() string {
	bs := schema.LatencyBoundsUs()
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = formatFloat(b)
	}
	return strings.Join(parts, " ")
}

// Upper bounds shared by several keys: every numeric key has one, so a
// typo cannot ask for a terabyte queue or a million threads.
const (
	// maxNodeName is a DNS name's limit (Kubernetes node names are DNS
	// subdomains).
	maxNodeName = 253
	maxBytes    = 1 << 40
	day         = Duration(24 * time.Hour)
)

// checker collects the first validation error.
type checker struct{ err *Error }

func (ch *checker) fail(key, msg string) {
	if ch.err == nil {
		ch.err = &Error{Key: key, Msg: msg}
	}
}

func (ch *checker) oneOf(key, value, set string) {
	for _, s := range strings.Fields(set) {
		if value == s {
			return
		}
	}
	ch.fail(key, invalid(value, "must be one of "+set))
}

// oneOfFold is oneOf ignoring case.
func (ch *checker) oneOfFold(key, value, set string) {
	for _, s := range strings.Fields(set) {
		if strings.EqualFold(value, s) {
			return
		}
	}
	ch.fail(key, invalid(value, "must be one of "+set+" (any case)"))
}

func (ch *checker) finite(key string, value float64) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		ch.fail(key, invalid(formatFloat(value), "must be a finite number"))
	}
}

func (ch *checker) intRange(key string, value, lo, hi int64) {
	if value < lo || value > hi {
		ch.fail(key, invalid(strconv.FormatInt(value, 10), fmt.Sprintf("must be between %d and %d", lo, hi)))
	}
}

func (ch *checker) intMin(key string, value, lo int64) {
	if value < lo {
		ch.fail(key, invalid(strconv.FormatInt(value, 10), fmt.Sprintf("must be >= %d", lo)))
	}
}

// floatMin checks value > 0 (strict) or value >= 0, and that it is finite.
func (ch *checker) floatMin(key string, value float64, strict bool) {
	switch {
	case math.IsNaN(value) || math.IsInf(value, 0):
		ch.fail(key, invalid(formatFloat(value), "must be a finite number"))
	case strict && value <= 0:
		ch.fail(key, invalid(formatFloat(value), "must be > 0"))
	case !strict && value < 0:
		ch.fail(key, invalid(formatFloat(value), "must be >= 0"))
	}
}

// floatMax checks value <= hi (after floatMin has checked the lower bound).
func (ch *checker) floatMax(key string, value, hi float64) {
	if value > hi {
		ch.fail(key, invalid(formatFloat(value), "must be <= "+formatFloat(hi)))
	}
}

// durMax checks value <= hi (after durMin has checked the lower bound).
func (ch *checker) durMax(key string, value, hi Duration) {
	if value > hi {
		ch.fail(key, invalid(value.String(), "must be <= "+hi.String()))
	}
}

// durMin checks value > 0 (strict) or value >= 0.
func (ch *checker) durMin(key string, value Duration, strict bool) {
	switch {
	case strict && value <= 0:
		ch.fail(key, invalid(value.String(), "must be > 0"))
	case !strict && value < 0:
		ch.fail(key, invalid(value.String(), "must be >= 0"))
	}
}

func (ch *checker) powerOfTwo(key string, value, lo, hi int64) {
	if value < lo || value > hi || value&(value-1) != 0 {
		ch.fail(key, invalid(strconv.FormatInt(value, 10), fmt.Sprintf("must be a power of two between %d and %d", lo, hi)))
	}
}

func (ch *checker) notEmpty(key, value string) {
	if value == "" {
		ch.fail(key, "must not be empty")
	}
}

// labelNames checks that every key of m is a valid Prometheus label name not
// starting with "__".
func (ch *checker) labelNames(key string, m map[string]string) {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !isIdent(k) || strings.HasPrefix(k, "__") {
			ch.fail(key+"."+k, "invalid label name: must match ^[a-zA-Z_][a-zA-Z0-9_]*$ and not start with __")
		}
	}
}

// isIdent reports whether s matches ^[a-zA-Z_][a-zA-Z0-9_]*$.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		letter := b == '_' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
		if !letter && (i == 0 || b < '0' || b > '9') {
			return false
		}
	}
	return true
}

// Validate checks every key of c and returns the first problem as an *Error
// with Key and Msg set (Source and Line are filled in by Load). Level keys
// are compared case-insensitively.
func (c Config) Validate() error {
	ch := &checker{}

	ch.intRange("prometheus_port", int64(c.PrometheusPort), 1, 65535)
	if !isIdent(c.PrometheusPrefix) {
		ch.fail("prometheus_prefix", invalid(c.PrometheusPrefix, "must match ^[a-zA-Z_][a-zA-Z0-9_]*$"))
	}
	ch.labelNames("prometheus_labels", c.PrometheusLabels)
	for _, reserved := range []string{"producer", "node", "instance", "job"} {
		if _, ok := c.PrometheusLabels[reserved]; ok {
			ch.fail("prometheus_labels", invalid(reserved, "is reserved: the agent sets producer and node (node_name), Prometheus rewrites instance and job"))
		}
	}
	if len(c.NodeName) > maxNodeName || !utf8.ValidString(c.NodeName) {
		ch.fail("node_name", invalid(c.NodeName, fmt.Sprintf("must be valid UTF-8 of at most %d bytes", maxNodeName)))
	}
	ch.oneOf("prometheus_naming", c.PrometheusNaming, "compat conventional")
	if c.PrometheusPrefix == "agaobs" {
		ch.fail("prometheus_prefix", invalid(c.PrometheusPrefix, "is the agent's own namespace"))
	}

	ch.oneOf("log_format", c.LogFormat, logFormats)
	ch.oneOfFold("log_level", c.LogLevel, levels)
	ch.intRange("log_max_bytes", c.LogMaxBytes, 0, maxBytes)
	ch.intRange("log_backup_count", int64(c.LogBackupCount), 0, 10000)
	ch.intRange("log_forward_sample_rate", int64(c.LogForwardSampleRate), 1, 1000000)

	ch.oneOf("audit_storage_backend", c.AuditStorageBackend, auditBackends)
	ch.intRange("audit_retention_days", int64(c.AuditRetentionDays), 0, 36500)
	ch.floatMin("audit_flush_interval", c.AuditFlushInterval, true)
	ch.floatMax("audit_flush_interval", c.AuditFlushInterval, 60)
	ch.intRange("audit_batch_size", int64(c.AuditBatchSize), 1, 100000)
	ch.intRange("audit_max_bytes", c.AuditMaxBytes, 0, maxBytes)
	ch.intRange("audit_max_file_bytes", c.AuditMaxFileBytes, 4096, maxBytes)
	ch.intRange("audit_max_files", int64(c.AuditMaxFiles), 1, 100000)
	ch.durMin("audit_head_log_interval", c.AuditHeadLogInterval, true)
	ch.durMax("audit_head_log_interval", c.AuditHeadLogInterval, day)
	ch.durMin("audit_verify_interval", c.AuditVerifyInterval, false)
	if v := c.AuditVerifyInterval; v > 0 && v < Duration(time.Minute) { // 0 switches the background verify off
		ch.fail("audit_verify_interval", invalid(v.String(), "must be 0 (off) or >= 1m"))
	}
	ch.durMax("audit_verify_interval", c.AuditVerifyInterval, 7*day)

	c.validateAlertRules(ch)
	if c.AlertWebhookURL != "" {
		u, err := url.Parse(c.AlertWebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ch.fail("alert_webhook_url", invalid(c.AlertWebhookURL, "must be an absolute http or https URL"))
		}
	}
	ch.oneOfFold("alert_log_level", c.AlertLogLevel, levels)
	ch.durMin("alert_eval_interval", c.AlertEvalInterval, true)
	ch.durMax("alert_eval_interval", c.AlertEvalInterval, Duration(time.Hour))
	if v := c.AnomalyLearningPeriod; v < Duration(time.Minute) {
		ch.fail("anomaly_learning_period", invalid(v.String(), "must be >= 1m"))
	}
	ch.durMax("anomaly_learning_period", c.AnomalyLearningPeriod, 7*day)
	ch.oneOf("alert_webhook_format", c.AlertWebhookFormat, "reference alertmanager")
	for i, u := range c.AlertmanagerURLs {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			ch.fail(fmt.Sprintf("alertmanager_urls[%d]", i), invalid(u, "must be an absolute http or https URL"))
		}
	}
	ch.durMin("alert_notification_timeout", c.AlertNotificationTimeout, true)
	ch.durMax("alert_notification_timeout", c.AlertNotificationTimeout, Duration(10*time.Minute))
	ch.durMin("alert_resend_interval", c.AlertResendInterval, true)
	ch.durMax("alert_resend_interval", c.AlertResendInterval, day)
	if c.AlertExternalURL != "" {
		if pu, err := url.Parse(c.AlertExternalURL); err != nil || pu.Scheme == "" || pu.Host == "" {
			ch.fail("alert_external_url", invalid(c.AlertExternalURL, "must be an absolute URL"))
		}
	}
	var amURLs [][2]string
	for i, u := range c.AlertmanagerURLs {
		amURLs = append(amURLs, [2]string{fmt.Sprintf("alertmanager_urls[%d]", i), u})
	}
	validateHTTPConfig(ch, "alertmanager_http_config", c.AlertmanagerHTTPConfig, amURLs)
	validateHTTPConfig(ch, "alert_webhook_http_config", c.AlertWebhookHTTPConfig, [][2]string{{"alert_webhook_url", c.AlertWebhookURL}})

	ch.intRange("health_port", int64(c.HealthPort), 1, 65535)
	if v := c.HealthKVUtilizationDegraded; math.IsNaN(v) || v <= 0 || v > 1 {
		ch.fail("health_kv_utilization_degraded", invalid(formatFloat(v), "must be > 0 and <= 1"))
	}
	if v := c.HealthDropRateDegraded; math.IsNaN(v) || v < 0 || v > 1 {
		ch.fail("health_drop_rate_degraded", invalid(formatFloat(v), "must be between 0 and 1"))
	}
	ch.floatMin("health_heartbeat_stale_seconds", c.HealthHeartbeatStale, true)
	ch.floatMax("health_heartbeat_stale_seconds", c.HealthHeartbeatStale, 86400)
	if !strings.HasPrefix(c.HealthPath, "/") {
		ch.fail("health_path", invalid(c.HealthPath, `must start with "/"`))
	}

	ch.notEmpty("ring_dir", c.RingDir)
	validateGroup(ch, c.RingGroup)
	ch.powerOfTwo("ring_hot_bytes", c.RingHotBytes, 4096, 1<<30)
	ch.powerOfTwo("ring_audit_bytes", c.RingAuditBytes, 4096, 1<<30)
	ch.intRange("ring_audit_wait_us", int64(c.RingAuditWaitUs), 0, 1000000)
	for i, uid := range c.RingAllowedUIDs {
		ch.intRange(fmt.Sprintf("ring_allowed_uids[%d]", i), int64(uid), 0, math.MaxUint32)
	}
	ch.durMin("ring_rescan_interval", c.RingRescanInterval, true)
	ch.durMax("ring_rescan_interval", c.RingRescanInterval, day)
	ch.durMin("ring_poll_interval", c.RingPollInterval, true)
	if c.RingPollInterval > Duration(time.Second) {
		ch.fail("ring_poll_interval", invalid(c.RingPollInterval.String(), "must be <= 1s"))
	}
	ch.durMin("ring_idle_sleep", c.RingIdleSleep, true)
	ch.durMax("ring_idle_sleep", c.RingIdleSleep, Duration(time.Minute))
	ch.intRange("ring_max_records_per_pass", int64(c.RingMaxRecordsPerPass), 1, 1<<20)
	ch.durMin("producer_retention", c.ProducerRetention, false)
	ch.durMax("producer_retention", c.ProducerRetention, 30*day)
	ch.floatMin("producer_heartbeat_stale_seconds", c.ProducerHeartbeatStale, true)
	ch.floatMax("producer_heartbeat_stale_seconds", c.ProducerHeartbeatStale, 86400)
	ch.intRange("ring_max_producers", int64(c.RingMaxProducers), 1, 65536)
	ch.intRange("sink_queue_size", int64(c.SinkQueueSize), 16, 1<<24)
	ch.intRange("prometheus_max_layers_per_producer", int64(c.PrometheusMaxLayersPerProducer), 1, 65536)
	ch.oneOfFold("agent_log_level", c.AgentLogLevel, agentLevels)
	ch.oneOf("agent_log_format", c.AgentLogFormat, agentLogFormats)
	ch.intRange("agent_gomaxprocs", int64(c.AgentGOMAXPROCS), 0, 1024)
	if c.AdminListenAddress != "" {
		validateHostPort(ch, "admin_listen_address", c.AdminListenAddress)
	}
	ch.intRange("ui_max_viewers", int64(c.UIMaxViewers), 1, 1000)
	ch.intRange("web_max_connections", int64(c.WebMaxConnections), 1, 65536)
	ch.durMin("web_idle_timeout", c.WebIdleTimeout, true)
	ch.durMax("web_idle_timeout", c.WebIdleTimeout, Duration(time.Hour))
	ch.floatMin("status_interval_seconds", c.StatusIntervalSeconds, true)
	ch.floatMax("status_interval_seconds", c.StatusIntervalSeconds, 3600)
	ch.floatMin("status_gate_check_seconds", c.StatusGateCheckSeconds, false)
	ch.floatMax("status_gate_check_seconds", c.StatusGateCheckSeconds, 86400)
	ch.durMin("gpu_collect_interval", c.GPUCollectInterval, true)
	ch.durMax("gpu_collect_interval", c.GPUCollectInterval, Duration(time.Hour))
	ch.durMin("gpu_xid_window", c.GPUXIDWindow, true)
	ch.durMax("gpu_xid_window", c.GPUXIDWindow, 30*day)
	ch.intRange("gpu_expected_count", int64(c.GPUExpectedCount), 0, 1024)
	ch.durMin("bpf_rescan_interval", c.BPFRescanInterval, true)
	ch.durMax("bpf_rescan_interval", c.BPFRescanInterval, Duration(time.Hour))
	c.validateOTLP(ch)

	c.validateSLOs(ch)
	probes := make([]string, 0, len(c.BPFProbes))
	for p := range c.BPFProbes {
		probes = append(probes, p)
	}
	sort.Strings(probes)
	for _, p := range probes {
		if !strings.Contains(" "+bpfProbes+" ", " "+p+" ") {
			ch.fail("bpf_probes."+p, "unknown probe: must be one of "+bpfProbes)
		}
	}

	if ch.err != nil {
		return ch.err
	}
	return nil
}

func (c Config) validateAlertRules(ch *checker) {
	first := make(map[string]int)
	for i, r := range c.AlertRules {
		p := fmt.Sprintf("alert_rules[%d].", i)
		ch.notEmpty(p+"name", r.Name)
		if j, dup := first[r.Name]; dup && r.Name != "" {
			ch.fail(p+"name", invalid(r.Name, fmt.Sprintf("duplicate rule name (also alert_rules[%d])", j)))
		} else {
			first[r.Name] = i
		}
		ch.notEmpty(p+"metric", r.Metric)
		if r.Metric != "" && !schema.RuleMetric(r.Metric).Valid() { // the rule metrics of docs/alerting.md
			ch.fail(p+"metric", invalid(r.Metric, "unknown rule metric: must be one of "+schema.RuleMetricList()))
		}
		ch.oneOf(p+"operator", r.Operator, operators)
		ch.finite(p+"threshold", r.Threshold)
		c.validateDetectorRule(ch, p, r)
		ch.floatMin(p+"window_seconds", r.WindowSeconds, true)
		ch.floatMax(p+"window_seconds", r.WindowSeconds, 30*86400)
		ch.oneOf(p+"severity", r.Severity, severities)
		ch.floatMin(p+"cooldown_seconds", r.CooldownSeconds, false)
		ch.floatMax(p+"cooldown_seconds", r.CooldownSeconds, 30*86400)
		ch.durMin(p+"for", r.For, false)
		ch.durMax(p+"for", r.For, 30*day)
		ch.durMin(p+"keep_firing_for", r.KeepFiringFor, false)
		ch.durMax(p+"keep_firing_for", r.KeepFiringFor, 30*day)
		ch.labelNames(p+"labels", r.Labels)
		ch.labelNames(p+"annotations", r.Annotations)
	}
}

// validateDetectorRule checks the keys of rules with metric anomaly or
// straggler, which take a signal and a sensitivity instead of a threshold.
func (c Config) validateDetectorRule(ch *checker, p string, r AlertRule) {
	m := schema.RuleMetric(r.Metric)
	if !m.Detector() {
		for _, k := range [...]struct{ key, v string }{{"signal", r.Signal}, {"sensitivity", r.Sensitivity}, {"direction", r.Direction}} {
			if k.v != "" {
				ch.fail(p+k.key, invalid(k.v, "only rules with metric anomaly or straggler take "+k.key))
			}
		}
		return
	}
	if !c.AnomalyEnabled {
		ch.fail(p+"metric", invalid(r.Metric, "needs anomaly_enabled: true"))
	}
	signals := schema.AnomalySignals()
	if m == schema.RuleStraggler {
		signals = schema.StragglerSignals()
		if r.Direction != "" {
			ch.fail(p+"direction", invalid(r.Direction, "straggler rules compare slower ranks only; remove direction"))
		}
	}
	if r.Signal == "" {
		ch.fail(p+"signal", "required when metric is "+r.Metric+": one of "+strings.Join(signals, " "))
	} else if !slices.Contains(signals, r.Signal) {
		ch.fail(p+"signal", invalid(r.Signal, "unknown signal: must be one of "+strings.Join(signals, " ")))
	}
	if r.Sensitivity != "" {
		ch.oneOf(p+"sensitivity", r.Sensitivity, "low medium high")
	}
	if r.Direction != "" {
		ch.oneOf(p+"direction", r.Direction, "up down both")
	}
}

func (c Config) validateSLOs(ch *checker) {
	first := make(map[string]int)
	for i, s := range c.SLOs {
		p := fmt.Sprintf("slos[%d].", i)
		ch.notEmpty(p+"name", s.Name)
		if j, dup := first[s.Name]; dup && s.Name != "" {
			ch.fail(p+"name", invalid(s.Name, fmt.Sprintf("duplicate SLO name (also slos[%d])", j)))
		} else {
			first[s.Name] = i
		}
		if !(s.Objective > 0 && s.Objective < 1) {
			ch.fail(p+"objective", invalid(formatFloat(s.Objective), "must be > 0 and < 1 (e.g. 0.999)"))
		}
		ch.durMin(p+"period", s.Period, true)
		ch.durMax(p+"period", s.Period, 366*day)
		ch.oneOf(p+"sli.type", s.SLI.Type, sliTypes)
		if s.SLI.Type == "latency" && s.SLI.ThresholdUs == 0 {
			ch.fail(p+"sli.threshold_us", "required when sli.type is latency (> 0)")
		} else if s.SLI.Type == "latency" && !(s.SLI.ThresholdUs > 0) {
			ch.fail(p+"sli.threshold_us", invalid(formatFloat(s.SLI.ThresholdUs), "must be > 0 when sli.type is latency"))
		} else if s.SLI.Type == "latency" && !schema.IsLatencyBound(s.SLI.ThresholdUs) {
			ch.fail(p+"sli.threshold_us", invalid(formatFloat(s.SLI.ThresholdUs), "must be a forward latency bucket bound ("+latencyBoundList()+") so Prometheus can compute the same SLI"))
		}
		if s.Name != "" && !isIdent(s.Name) {
			ch.fail(p+"name", invalid(s.Name, "must match ^[a-zA-Z_][a-zA-Z0-9_]*$ (it names alerts and recording rules)"))
		}
		ch.floatMin(p+"sli.threshold_us", s.SLI.ThresholdUs, false)
	}
}

// validateGroup checks ring_group: empty, a numeric gid or a group name.
func validateGroup(ch *checker, g string) {
	if g == "" {
		return
	}
	if g[0] >= '0' && g[0] <= '9' {
		if _, err := strconv.ParseUint(g, 10, 32); err != nil {
			ch.fail("ring_group", invalid(g, "must be a group name or a numeric gid"))
		}
		return
	}
	if strings.ContainsAny(g, ": \t\n/") {
		ch.fail("ring_group", invalid(g, "must be a group name or a numeric gid"))
	}
}

// validateHostPort checks a host:port listen address with a numeric port.
func validateHostPort(ch *checker, key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		ch.fail(key, invalid(addr, "expected host:port"))
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || n > 65535 {
		ch.fail(key, invalid(addr, "expected host:port with a port between 0 and 65535"))
	}
}

// validateOTLP checks the OTLP exporter's keys (the OTEL_EXPORTER_OTLP_*
// variables the SDK reads are its business).
func (c Config) validateOTLP(ch *checker) {
	if c.OTLPEndpoint != "" {
		if strings.Contains(c.OTLPEndpoint, "://") {
			u, err := url.Parse(c.OTLPEndpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				ch.fail("otlp_endpoint", invalid(c.OTLPEndpoint, "must be host:port or an http or https URL"))
			}
		} else {
			validateHostPort(ch, "otlp_endpoint", c.OTLPEndpoint)
		}
	}
	if c.OTLPProtocol != "" {
		ch.oneOf("otlp_protocol", c.OTLPProtocol, "grpc http/protobuf")
	}
	for k, v := range c.OTLPHeaders {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) }) {
			ch.fail("otlp_headers", invalid(k, "is not a valid header name"))
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			ch.fail("otlp_headers."+k, "a header value must not contain CR, LF or NUL")
		}
	}
	for _, f := range []struct{ key, path string }{{"otlp_tls_ca_file", c.OTLPTLSCAFile},
		{"otlp_tls_cert_file", c.OTLPTLSCertFile}, {"otlp_tls_key_file", c.OTLPTLSKeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			ch.fail(f.key, invalid(f.path, "cannot be read: "+err.Error()))
		}
	}
	if (c.OTLPTLSCertFile == "") != (c.OTLPTLSKeyFile == "") {
		ch.fail("otlp_tls_cert_file", "otlp_tls_cert_file and otlp_tls_key_file go together")
	}
	for i, s := range c.OTLPSignals {
		ch.oneOf(fmt.Sprintf("otlp_signals[%d]", i), s, "traces logs metrics")
	}
	ch.durMin("otlp_timeout", c.OTLPTimeout, false)
	ch.durMax("otlp_timeout", c.OTLPTimeout, Duration(5*time.Minute))
	ch.intRange("otlp_queue_size", int64(c.OTLPQueueSize), 16, 1<<20)
	ch.finite("otlp_trace_sample_rate", c.OTLPTraceSampleRate)
	if c.OTLPTraceSampleRate < 0 || c.OTLPTraceSampleRate > 1 {
		ch.fail("otlp_trace_sample_rate", invalid(fmt.Sprint(c.OTLPTraceSampleRate), "must be between 0 and 1"))
	}
	ch.finite("otlp_trace_slow_threshold_us", c.OTLPTraceSlowThresholdUs)
	ch.floatMin("otlp_trace_slow_threshold_us", c.OTLPTraceSlowThresholdUs, false)
	ch.floatMax("otlp_trace_slow_threshold_us", c.OTLPTraceSlowThresholdUs, 1e9)
	ch.intRange("otlp_trace_max_spans_per_second", int64(c.OTLPTraceMaxSpansPerSecond), 1, 1000000)
	if c.OTLPMetricsTemporality != "" {
		ch.oneOf("otlp_metrics_temporality", c.OTLPMetricsTemporality, "cumulative delta")
	}
	ch.durMin("otlp_metrics_interval", c.OTLPMetricsInterval, true)
	if c.OTLPMetricsInterval > 0 && c.OTLPMetricsInterval < Duration(time.Second) {
		ch.fail("otlp_metrics_interval", invalid(c.OTLPMetricsInterval.String(), "must be >= 1s"))
	}
	ch.durMax("otlp_metrics_interval", c.OTLPMetricsInterval, Duration(time.Hour))
}
