package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// setup writes file (when non-empty) to a temporary agent.yaml, registers a
// Loader on a new flag set and parses args; "--config" is prepended when
// there is a file. It returns the loader and the file path.
func setup(t *testing.T, file string, args ...string) (*Loader, string) {
	t.Helper()
	fs := pflag.NewFlagSet("agaobs-agent", pflag.ContinueOnError)
	l := NewLoader(fs)
	path := ""
	if file != "" {
		path = filepath.Join(t.TempDir(), "agent.yaml")
		writeFile(t, path, file)
		args = append([]string{"--config", path}, args...)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return l, path
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// load is setup followed by Load.
func load(t *testing.T, file string, env []string, args ...string) (Config, []string, error) {
	t.Helper()
	l, _ := setup(t, file, args...)
	return l.Load(env)
}

// mustLoad is load that fails the test on an error.
func mustLoad(t *testing.T, file string, env []string, args ...string) (Config, []string) {
	t.Helper()
	c, w, err := load(t, file, env, args...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c, w
}

func TestDefaults(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	c, w := mustLoad(t, "", nil)
	if !reflect.DeepEqual(c, d) {
		t.Errorf("Load without sources differs from Default(): %v", Diff(c, d))
	}
	if len(w) != 0 {
		t.Errorf("warnings = %q, want none", w)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"enabled", d.Enabled, true},
		{"prometheus_port", d.PrometheusPort, 9090},
		{"prometheus_prefix", d.PrometheusPrefix, "aga"},
		{"log_level", d.LogLevel, "INFO"},
		{"log_max_bytes", d.LogMaxBytes, int64(104857600)},
		{"audit_storage_backend", d.AuditStorageBackend, "bbolt"},
		{"audit_flush_interval", d.AuditFlushInterval, 0.05},
		{"audit_verify_interval", d.AuditVerifyInterval, Duration(time.Hour)},
		{"ui_max_viewers", d.UIMaxViewers, 20},
		{"alert_log_level", d.AlertLogLevel, "WARNING"},
		{"health_path", d.HealthPath, "/health"},
		{"health_kv_utilization_degraded", d.HealthKVUtilizationDegraded, 0.95},
		{"health_drop_rate_degraded", d.HealthDropRateDegraded, 0.01},
		{"health_heartbeat_stale_seconds", d.HealthHeartbeatStale, 5.0},
		{"gpu_enabled", d.GPUEnabled, true},
		{"gpu_collect_interval", d.GPUCollectInterval, Duration(5 * time.Second)},
		{"gpu_xid_window", d.GPUXIDWindow, Duration(10 * time.Minute)},
		{"gpu_pcie_enabled", d.GPUPCIeEnabled, false},
		{"bpf_enabled", d.BPFEnabled, true},
		{"bpf_require", d.BPFRequire, false},
		{"bpf_rescan_interval", d.BPFRescanInterval, Duration(10 * time.Second)},
		{"ring_dir", d.RingDir, "/dev/shm/agaobs"},
		{"ring_hot_bytes", d.RingHotBytes, int64(4 << 20)},
		{"ring_poll_interval", d.RingPollInterval, Duration(3 * time.Millisecond)},
		{"ring_idle_sleep", d.RingIdleSleep, Duration(250 * time.Millisecond)},
		{"producer_retention", d.ProducerRetention, Duration(5 * time.Minute)},
		{"sink_queue_size", d.SinkQueueSize, 65536},
		{"admin_listen_address", d.AdminListenAddress, "127.0.0.1:8081"},
		{"agent_log_level", d.AgentLogLevel, "info"},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	r := AlertRule{}
	r.SetDefaults()
	want := AlertRule{Operator: ">", WindowSeconds: 60, Severity: "warning", CooldownSeconds: 300, PerProducer: true}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("AlertRule defaults = %+v, want %+v", r, want)
	}
}

func TestFileValues(t *testing.T) {
	file := `# agent configuration
enabled: false
prometheus_port: 9191
prometheus_host: 127.0.0.1
prometheus_labels:
  cluster: a
  env: prod
log_level: debug
audit_flush_interval: 1
audit_storage_backend: file
ring_group: 1000
ring_allowed_uids: [0, 1000]
ring_rescan_interval: 1h30m
ring_remove_dead: false
producer_retention: 30d
producer_heartbeat_stale_seconds: 2.5
agent_log_level: WARN
alert_rules:
  - name: high_latency
    metric: latency_p99
    threshold: 5000
    per_producer: false
    for: 30s
    labels: {team: ml}
  - name: low_gate
    metric: gate_mean
    operator: "<"
    threshold: 0.1
slos:
  - name: latency
    objective: 0.999
    sli: {type: latency, threshold_us: 2500}
  - name: up
    objective: 0.99
    period: 7d
    sli:
      type: availability
bpf_probes:
  offcpu: true
  cuda_sync: false
`
	c, _ := mustLoad(t, file, nil)
	want := Default()
	want.Enabled = false
	want.PrometheusPort = 9191
	want.PrometheusHost = "127.0.0.1"
	want.PrometheusLabels = map[string]string{"cluster": "a", "env": "prod"}
	want.LogLevel = "DEBUG"
	want.AuditFlushInterval = 1
	want.AuditStorageBackend = "file"
	want.RingGroup = "1000"
	want.RingAllowedUIDs = []int{0, 1000}
	want.RingRescanInterval = Duration(90 * time.Minute)
	want.RingRemoveDead = false
	want.ProducerRetention = Duration(30 * 24 * time.Hour)
	want.ProducerHeartbeatStale = 2.5
	want.AgentLogLevel = "warn"
	r1, r2 := AlertRule{}, AlertRule{}
	r1.SetDefaults()
	r1.Name, r1.Metric, r1.Threshold, r1.PerProducer = "high_latency", "latency_p99", 5000, false
	r1.For = Duration(30 * time.Second)
	r1.Labels = map[string]string{"team": "ml"}
	r2.SetDefaults()
	r2.Name, r2.Metric, r2.Operator, r2.Threshold = "low_gate", "gate_mean", "<", 0.1
	want.AlertRules = []AlertRule{r1, r2}
	s1, s2 := SLO{}, SLO{}
	s1.SetDefaults()
	s1.Name, s1.Objective, s1.SLI = "latency", 0.999, SLI{Type: "latency", ThresholdUs: 2500}
	s2.SetDefaults()
	s2.Name, s2.Objective, s2.Period, s2.SLI = "up", 0.99, Duration(7*24*time.Hour), SLI{Type: "availability"}
	want.SLOs = []SLO{s1, s2}
	want.BPFProbes = map[string]bool{"offcpu": true, "cuda_sync": false}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("file config differs in %v\n got %+v\nwant %+v", Diff(c, want), c, want)
	}
}

func TestEmptyAndNull(t *testing.T) {
	tests := []struct{ name, file string }{
		{"empty", ""},
		{"newline", "\n"},
		{"comments", "# nothing here\n\n# at all\n"},
		{"document marker", "---\n"},
		{"null document", "~\n"},
		{"null values", "prometheus_port:\nlog_level: null\nring_poll_interval: ~\nalert_rules:\nprometheus_labels: ~\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			l := NewLoader(fs)
			path := filepath.Join(t.TempDir(), "agent.yaml")
			writeFile(t, path, tc.file)
			if err := fs.Parse([]string{"--config", path}); err != nil {
				t.Fatal(err)
			}
			c, w, err := l.Load(nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if d := Diff(c, Default()); len(d) != 0 || len(w) != 0 {
				t.Errorf("diff from defaults %v, warnings %q", d, w)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		args []string
		want int
	}{
		{"default", "", nil, nil, 9090},
		{"file", "prometheus_port: 9100\n", nil, nil, 9100},
		{"env over default", "", []string{"AGAOBS_PROMETHEUS_PORT=9200"}, nil, 9200},
		{"env over file", "prometheus_port: 9100\n", []string{"AGAOBS_PROMETHEUS_PORT=9200"}, nil, 9200},
		{"flag over env", "prometheus_port: 9100\n", []string{"AGAOBS_PROMETHEUS_PORT=9200"}, []string{"--prometheus-port=9300"}, 9300},
		{"flag over file", "prometheus_port: 9100\n", nil, []string{"--prometheus-port", "9300"}, 9300},
		{"last flag wins", "", nil, []string{"--prometheus-port=1", "--prometheus-port=2"}, 2},
		{"last env entry wins", "", []string{"AGAOBS_PROMETHEUS_PORT=1", "AGAOBS_PROMETHEUS_PORT=2"}, nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustLoad(t, tc.file, tc.env, tc.args...)
			if c.PrometheusPort != tc.want {
				t.Errorf("prometheus_port = %d, want %d", c.PrometheusPort, tc.want)
			}
		})
	}
}

func TestScalarKinds(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   []string
		args  []string
		check func(Config) bool
	}{
		{"bool flag without value", "ring_remove_dead: false\n", nil, []string{"--ring-remove-dead"}, func(c Config) bool { return c.RingRemoveDead }},
		{"bool flag false", "", nil, []string{"--prometheus-enabled=false"}, func(c Config) bool { return !c.PrometheusEnabled }},
		{"bool env", "", []string{"AGAOBS_HEALTH_ENABLED=false"}, nil, func(c Config) bool { return !c.HealthEnabled }},
		{"float env", "", []string{"AGAOBS_AUDIT_FLUSH_INTERVAL=0.5"}, nil, func(c Config) bool { return c.AuditFlushInterval == 0.5 }},
		{"float flag", "", nil, []string{"--status-interval-seconds=0.25"}, func(c Config) bool { return c.StatusIntervalSeconds == 0.25 }},
		{"int64 flag", "", nil, []string{"--ring-hot-bytes=65536"}, func(c Config) bool { return c.RingHotBytes == 65536 }},
		{"empty string env", "", []string{"AGAOBS_ADMIN_LISTEN_ADDRESS="}, nil, func(c Config) bool { return c.AdminListenAddress == "" }},
		{"string flag", "", nil, []string{"--ring-dir", "/tmp/rings"}, func(c Config) bool { return c.RingDir == "/tmp/rings" }},
		{"level normalised", "log_level: warning\nalert_log_level: Error\nagent_log_level: DEBUG\n", nil, nil, func(c Config) bool {
			return c.LogLevel == "WARNING" && c.AlertLogLevel == "ERROR" && c.AgentLogLevel == "debug"
		}},
		{"anchors and aliases", "alert_rules:\n  - {name: a, metric: forward_rate, labels: &l {team: ml}}\n  - {name: b, metric: forward_rate, labels: *l}\n", nil, nil, func(c Config) bool {
			return len(c.AlertRules) == 2 && c.AlertRules[1].Labels["team"] == "ml"
		}},
		{"hex int in file", "ring_audit_bytes: 0x10000\n", nil, nil, func(c Config) bool { return c.RingAuditBytes == 65536 }},
		{"int for float key", "audit_flush_interval: 2\n", nil, nil, func(c Config) bool { return c.AuditFlushInterval == 2 }},
		{"numeric string key", "ring_group: 1000\nprometheus_host: 10.0.0.1\n", nil, nil, func(c Config) bool {
			return c.RingGroup == "1000" && c.PrometheusHost == "10.0.0.1"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustLoad(t, tc.file, tc.env, tc.args...)
			if !tc.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestListsAndMaps(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		env        []string
		args       []string
		wantUIDs   []int
		wantLabels map[string]string
	}{
		{"file", "ring_allowed_uids:\n  - 0\n  - 1000\nprometheus_labels: {a: x, b: y}\n", nil, nil,
			[]int{0, 1000}, map[string]string{"a": "x", "b": "y"}},
		{"file flow empty", "ring_allowed_uids: []\nprometheus_labels: {}\n", nil, nil, nil, nil},
		{"flag comma", "", nil, []string{"--ring-allowed-uids", "0,1000", "--prometheus-labels", "a=x,b=y"},
			[]int{0, 1000}, map[string]string{"a": "x", "b": "y"}},
		{"flag repeated", "", nil, []string{"--ring-allowed-uids=0", "--ring-allowed-uids=1000,2000", "--prometheus-labels=a=x", "--prometheus-labels=b=y"},
			[]int{0, 1000, 2000}, map[string]string{"a": "x", "b": "y"}},
		{"flag spaces", "", nil, []string{"--ring-allowed-uids= 0 , 1000 ", "--prometheus-labels= a = x , b=y"},
			[]int{0, 1000}, map[string]string{"a": "x", "b": "y"}},
		{"env", "", []string{"AGAOBS_RING_ALLOWED_UIDS=5,6", "AGAOBS_PROMETHEUS_LABELS=env=prod,dc=eu"}, nil,
			[]int{5, 6}, map[string]string{"env": "prod", "dc": "eu"}},
		{"env replaces file", "ring_allowed_uids: [1]\nprometheus_labels: {a: x}\n", []string{"AGAOBS_RING_ALLOWED_UIDS=2", "AGAOBS_PROMETHEUS_LABELS=b=y"}, nil,
			[]int{2}, map[string]string{"b": "y"}},
		{"flag empty clears", "ring_allowed_uids: [1]\nprometheus_labels: {a: x}\n", nil, []string{"--ring-allowed-uids=", "--prometheus-labels="}, nil, nil},
		{"map value with equals", "", nil, []string{"--prometheus-labels=q=a=b"}, nil, map[string]string{"q": "a=b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustLoad(t, tc.file, tc.env, tc.args...)
			if !reflect.DeepEqual(c.RingAllowedUIDs, tc.wantUIDs) {
				t.Errorf("ring_allowed_uids = %#v, want %#v", c.RingAllowedUIDs, tc.wantUIDs)
			}
			if !reflect.DeepEqual(c.PrometheusLabels, tc.wantLabels) {
				t.Errorf("prometheus_labels = %#v, want %#v", c.PrometheusLabels, tc.wantLabels)
			}
		})
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		args []string
		want Duration
	}{
		{"file 30d", "producer_retention: 30d\n", nil, nil, Duration(30 * 24 * time.Hour)},
		{"file 5m", "producer_retention: 5m\n", nil, nil, Duration(5 * time.Minute)},
		{"file 2ms", "producer_retention: 2ms\n", nil, nil, Duration(2 * time.Millisecond)},
		{"file 1h30m", "producer_retention: 1h30m\n", nil, nil, Duration(90 * time.Minute)},
		{"file 0", "producer_retention: 0\n", nil, nil, 0},
		{"env 30d", "", []string{"AGAOBS_PRODUCER_RETENTION=30d"}, nil, Duration(30 * 24 * time.Hour)},
		{"env 2ms", "", []string{"AGAOBS_PRODUCER_RETENTION=2ms"}, nil, Duration(2 * time.Millisecond)},
		{"flag 5m", "", nil, []string{"--producer-retention=5m"}, Duration(5 * time.Minute)},
		{"flag 30d", "", nil, []string{"--producer-retention", "30d"}, Duration(30 * 24 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustLoad(t, tc.file, tc.env, tc.args...)
			if c.ProducerRetention != tc.want {
				t.Errorf("producer_retention = %v, want %v", c.ProducerRetention, tc.want)
			}
		})
	}
	for d, s := range map[Duration]string{
		0: "0s", Duration(2 * time.Millisecond): "2ms", Duration(5 * time.Minute): "5m",
		Duration(30 * 24 * time.Hour): "30d", Duration(90 * time.Minute): "1h30m",
	} {
		if got := d.String(); got != s {
			t.Errorf("Duration(%d).String() = %q, want %q", int64(d), got, s)
		}
	}
}

func TestErrors(t *testing.T) {
	const fileSrc = "<file>" // replaced by the file path
	tests := []struct {
		name     string
		file     string
		env      []string
		args     []string
		key      string
		source   string
		line     int
		contains string
	}{
		{"spec example", "# c\n\n\n\n\n\nprometheus_port: abc\n", nil, nil,
			"prometheus_port", fileSrc, 7, `key "prometheus_port": invalid value "abc": expected an integer`},
		{"unknown key", "log_level: INFO\nprometheus_prot: 1\n", nil, nil,
			"prometheus_prot", fileSrc, 2, `unknown key (did you mean "prometheus_port"?)`},
		{"unknown key far", "log_level: INFO\n\nwhatever: 1\n", nil, nil,
			"whatever", fileSrc, 3, "unknown key"},
		{"wrong type list", "prometheus_port:\n  - 1\n", nil, nil,
			"prometheus_port", fileSrc, 2, "expected an integer, got a list"},
		{"wrong type scalar for map", "prometheus_labels: a=b\n", nil, nil,
			"prometheus_labels", fileSrc, 1, `invalid value "a=b": expected a mapping`},
		{"wrong type bool", "log_enabled: yes\n", nil, nil,
			"log_enabled", fileSrc, 1, `invalid value "yes": expected true or false`},
		{"quoted int", "health_port: \"8080\"\n", nil, nil,
			"health_port", fileSrc, 1, "expected an integer"},
		{"float for int", "health_port: 80.5\n", nil, nil,
			"health_port", fileSrc, 1, "expected an integer"},
		{"string key gets mapping", "ring_dir: {a: 1}\n", nil, nil,
			"ring_dir", fileSrc, 1, "expected a string, got a mapping"},
		{"unit key rejects duration file", "ring_audit_wait_us: 5ms\n", nil, nil,
			"ring_audit_wait_us", fileSrc, 1, `invalid value "5ms": expected an integer (microseconds), not a duration`},
		{"unit key rejects duration env", "", []string{"AGAOBS_PRODUCER_HEARTBEAT_STALE_SECONDS=5s"}, nil,
			"producer_heartbeat_stale_seconds", "env AGAOBS_PRODUCER_HEARTBEAT_STALE_SECONDS", 0, "expected a number (seconds), not a duration"},
		{"unit key rejects duration flag", "", nil, []string{"--audit-flush-interval=50ms"},
			"audit_flush_interval", "flag --audit-flush-interval", 0, "expected a number (seconds), not a duration"},
		{"duration key rejects number", "ring_poll_interval: 2\n", nil, nil,
			"ring_poll_interval", fileSrc, 1, `invalid value "2": expected a duration`},
		{"bad duration env", "", []string{"AGAOBS_RING_IDLE_SLEEP=1x"}, nil,
			"ring_idle_sleep", "env AGAOBS_RING_IDLE_SLEEP", 0, "expected a duration"},
		{"bad int flag", "", nil, []string{"--prometheus-port=abc"},
			"prometheus_port", "flag --prometheus-port", 0, `flag --prometheus-port: key "prometheus_port": invalid value "abc": expected an integer`},
		{"bad bool env", "", []string{"AGAOBS_RING_REMOVE_DEAD=maybe"}, nil,
			"ring_remove_dead", "env AGAOBS_RING_REMOVE_DEAD", 0, "expected true or false"},
		{"bad list item flag", "", nil, []string{"--ring-allowed-uids=0,x"},
			"ring_allowed_uids", "flag --ring-allowed-uids", 0, `invalid value "x": expected an integer`},
		{"bad map item env", "", []string{"AGAOBS_PROMETHEUS_LABELS=novalue"}, nil,
			"prometheus_labels", "env AGAOBS_PROMETHEUS_LABELS", 0, "expected key=value"},
		{"int out of range", "prometheus_port: 99999999999999999999\n", nil, nil,
			"prometheus_port", fileSrc, 1, "expected an integer"},
		{"port range file", "\nhealth_port: 0\n", nil, nil,
			"health_port", fileSrc, 2, `invalid value "0": must be between 1 and 65535`},
		{"kv utilization above 1", "health_kv_utilization_degraded: 1.5\n", nil, nil,
			"health_kv_utilization_degraded", fileSrc, 1, "must be > 0 and <= 1"},
		{"negative drop rate", "", []string{"AGAOBS_HEALTH_DROP_RATE_DEGRADED=-0.1"}, nil,
			"health_drop_rate_degraded", "env AGAOBS_HEALTH_DROP_RATE_DEGRADED", 0, "must be between 0 and 1"},
		{"zero gpu interval", "", nil, []string{"--gpu-collect-interval=0s"},
			"gpu_collect_interval", "flag --gpu-collect-interval", 0, "must be > 0"},
		{"port range flag", "health_port: 1\n", nil, []string{"--health-port=70000"},
			"health_port", "flag --health-port", 0, "must be between 1 and 65535"},
		{"validation names env", "", []string{"AGAOBS_LOG_FORMAT=xml"}, nil,
			"log_format", "env AGAOBS_LOG_FORMAT", 0, `env AGAOBS_LOG_FORMAT: key "log_format": invalid value "xml": must be one of json text`},
		{"nested operator", "alert_rules:\n  - name: a\n    metric: forward_rate\n  - name: b\n    metric: forward_rate\n    operator: \"=>\"\n", nil, nil,
			"alert_rules[1].operator", fileSrc, 6, `key "alert_rules[1].operator": invalid value "=>": must be one of > < >= <= == !=`},
		{"nested unknown key", "alert_rules:\n  - name: a\n    metric: forward_rate\n    treshold: 1\n", nil, nil,
			"alert_rules[0].treshold", fileSrc, 4, `unknown key (did you mean "threshold"?)`},
		{"nested wrong type", "alert_rules:\n  - name: a\n    metric: forward_rate\n    window_seconds: [1]\n", nil, nil,
			"alert_rules[0].window_seconds", fileSrc, 4, "expected a number (seconds), got a list"},
		{"nested missing required", "alert_rules:\n  - name: a\n  - metric: forward_rate\n", nil, nil,
			"alert_rules[0].metric", fileSrc, 2, "missing required key"},
		{"nested validation", "alert_rules:\n  - name: a\n    metric: forward_rate\n    window_seconds: 0\n", nil, nil,
			"alert_rules[0].window_seconds", fileSrc, 4, "must be > 0"},
		{"nested empty name", "alert_rules:\n  - name: \"\"\n    metric: forward_rate\n", nil, nil,
			"alert_rules[0].name", fileSrc, 2, "must not be empty"},
		{"rule not a mapping", "alert_rules:\n  - high\n", nil, nil,
			"alert_rules[0]", fileSrc, 2, `invalid value "high": expected a mapping`},
		{"duplicate rule names", "alert_rules:\n  - {name: a, metric: forward_rate}\n  - {name: b, metric: forward_rate}\n  - {name: a, metric: drop_rate}\n", nil, nil,
			"alert_rules[2].name", fileSrc, 4, `invalid value "a": duplicate rule name (also alert_rules[0])`},
		{"rule label name", "alert_rules:\n  - name: a\n    metric: forward_rate\n    labels:\n      __x: y\n", nil, nil,
			"alert_rules[0].labels.__x", fileSrc, 5, "invalid label name"},
		{"rule severity", "alert_rules:\n  - {name: a, metric: forward_rate, severity: fatal}\n", nil, nil,
			"alert_rules[0].severity", fileSrc, 2, "must be one of info warning critical"},
		{"duplicate slo names", "slos:\n  - {name: a, objective: 0.9, sli: {type: availability}}\n  - {name: a, objective: 0.9, sli: {type: availability}}\n", nil, nil,
			"slos[1].name", fileSrc, 3, "duplicate SLO name"},
		{"slo objective", "slos:\n  - name: a\n    objective: 1\n    sli: {type: availability}\n", nil, nil,
			"slos[0].objective", fileSrc, 3, "must be > 0 and < 1"},
		{"slo missing sli", "slos:\n  - name: a\n    objective: 0.9\n", nil, nil,
			"slos[0].sli", fileSrc, 2, "missing required key"},
		{"slo latency threshold", "slos:\n  - name: a\n    objective: 0.9\n    sli:\n      type: latency\n", nil, nil,
			"slos[0].sli.threshold_us", fileSrc, 4, "required when sli.type is latency"},
		{"slo sli type", "slos:\n  - name: a\n    objective: 0.9\n    sli:\n      type: speed\n", nil, nil,
			"slos[0].sli.type", fileSrc, 5, "must be one of latency availability"},
		{"bpf probe", "bpf_probes:\n  offcpu: true\n  kprobe_x: true\n", nil, nil,
			"bpf_probes.kprobe_x", fileSrc, 3, "unknown probe"},
		{"bpf probe value", "bpf_probes:\n  offcpu: on\n", nil, nil,
			"bpf_probes.offcpu", fileSrc, 2, "expected true or false"},
		{"prometheus label from env", "prometheus_labels: {ok: x}\n", []string{"AGAOBS_PROMETHEUS_LABELS=1bad=x"}, nil,
			"prometheus_labels.1bad", "env AGAOBS_PROMETHEUS_LABELS", 0, "invalid label name"},
		{"prometheus label file", "prometheus_labels:\n  ok: x\n  __name: y\n", nil, nil,
			"prometheus_labels.__name", fileSrc, 3, "invalid label name"},
		{"prefix", "prometheus_prefix: 1aga\n", nil, nil,
			"prometheus_prefix", fileSrc, 1, "must match"},
		{"poll interval max", "ring_poll_interval: 2s\n", nil, nil,
			"ring_poll_interval", fileSrc, 1, `invalid value "2s": must be <= 1s`},
		{"poll interval zero", "", nil, []string{"--ring-poll-interval=0"},
			"ring_poll_interval", "flag --ring-poll-interval", 0, "must be > 0"},
		{"power of two", "ring_hot_bytes: 5000\n", nil, nil,
			"ring_hot_bytes", fileSrc, 1, "must be a power of two between 4096 and 1073741824"},
		{"small ring", "", []string{"AGAOBS_RING_AUDIT_BYTES=2048"}, nil,
			"ring_audit_bytes", "env AGAOBS_RING_AUDIT_BYTES", 0, "must be a power of two between 4096 and 1073741824"},
		{"negative uid", "ring_allowed_uids: [0, -1]\n", nil, nil,
			"ring_allowed_uids[1]", fileSrc, 1, "must be between 0 and 4294967295"},
		{"webhook", "alert_webhook_url: example.com/hook\n", nil, nil,
			"alert_webhook_url", fileSrc, 1, "must be an absolute http or https URL"},
		{"admin address", "admin_listen_address: localhost\n", nil, nil,
			"admin_listen_address", fileSrc, 1, "expected host:port"},
		{"health path", "health_path: health\n", nil, nil,
			"health_path", fileSrc, 1, `must start with "/"`},
		{"sink queue", "sink_queue_size: 8\n", nil, nil,
			"sink_queue_size", fileSrc, 1, "must be between 16 and 16777216"},
		{"huge sink queue", "sink_queue_size: 99999999999\n", nil, nil,
			"sink_queue_size", fileSrc, 1, "must be between 16 and 16777216"},
		{"huge gomaxprocs", "agent_gomaxprocs: 100000\n", nil, nil,
			"agent_gomaxprocs", fileSrc, 1, "must be between 0 and 1024"},
		{"huge ring", "", []string{"AGAOBS_RING_HOT_BYTES=2199023255552"}, nil,
			"ring_hot_bytes", "env AGAOBS_RING_HOT_BYTES", 0, "must be a power of two between 4096 and 1073741824"},
		{"long idle timeout", "", nil, []string{"--web-idle-timeout=2h"},
			"web_idle_timeout", "flag --web-idle-timeout", 0, "must be <= 1h"},
		{"zero connections", "web_max_connections: 0\n", nil, nil,
			"web_max_connections", fileSrc, 1, "must be between 1 and 65536"},
		{"layer cap", "prometheus_max_layers_per_producer: 1000000\n", nil, nil,
			"prometheus_max_layers_per_producer", fileSrc, 1, "must be between 1 and 65536"},
		{"producer cap", "ring_max_producers: -1\n", nil, nil,
			"ring_max_producers", fileSrc, 1, "must be between 1 and 65536"},
		{"rule window", "alert_rules:\n  - name: x\n    metric: latency_p99\n    window_seconds: 1e12\n", nil, nil,
			"alert_rules[0].window_seconds", fileSrc, 4, "must be <= 2592000"},
		{"slo period", "slos:\n  - name: x\n    objective: 0.9\n    period: 100y\n    sli: {type: availability}\n", nil, nil,
			"slos[0].period", fileSrc, 4, "must be <= 366d"},
		{"audit backend", "audit_storage_backend: postgres\n", nil, nil,
			"audit_storage_backend", fileSrc, 1, "must be one of bbolt file memory sqlite"},
		{"level", "", nil, []string{"--log-level=verbose"},
			"log_level", "flag --log-level", 0, "must be one of DEBUG INFO WARNING ERROR CRITICAL"},
		{"agent level", "agent_log_level: warning\n", nil, nil,
			"agent_log_level", fileSrc, 1, "must be one of debug info warn error"},
		{"nan", "status_interval_seconds: .nan\n", nil, nil,
			"status_interval_seconds", fileSrc, 1, "expected a finite number"},
		{"duplicate key", "log_level: INFO\nlog_level: DEBUG\n", nil, nil,
			"log_level", fileSrc, 2, "duplicate key"},
		{"duplicate map key", "prometheus_labels:\n  a: x\n  a: y\n", nil, nil,
			"prometheus_labels.a", fileSrc, 3, "duplicate key"},
		{"top level list", "- a\n- b\n", nil, nil,
			"", fileSrc, 1, "expected a mapping of keys, got a list"},
		{"syntax", "log_level: INFO\nprometheus_port: [1\n", nil, nil,
			"", fileSrc, -1, "invalid YAML"},
		{"two documents", "log_level: INFO\n---\nlog_level: DEBUG\n", nil, nil,
			"", fileSrc, 2, "more than one YAML document"},
		{"merge key", "base: &b {a: 1}\n", nil, nil,
			"base", fileSrc, 1, "unknown key"},
		{"structured key in file as scalar", "slos: none\n", nil, nil,
			"slos", fileSrc, 1, `invalid value "none": expected a list`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, path := setup(t, tc.file, tc.args...)
			_, _, err := l.Load(tc.env)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			source := tc.source
			if source == fileSrc {
				source = path
			}
			line := tc.line
			if line < 0 && ce.Line > 0 { // the parser's line, not checked exactly
				line = ce.Line
			}
			if ce.Key != tc.key || ce.Source != source || ce.Line != line {
				t.Errorf("error %q: key %q source %q line %d, want key %q source %q line %d",
					err, ce.Key, ce.Source, ce.Line, tc.key, source, line)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
			if source == path && !strings.HasPrefix(err.Error(), "config file "+path) {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Key: "prometheus_port", Source: "/etc/agaobs/agent.yaml", Line: 7, Msg: `invalid value "abc": expected an integer`},
			`config file /etc/agaobs/agent.yaml line 7: key "prometheus_port": invalid value "abc": expected an integer`},
		{Error{Key: "alert_rules[1].operator", Msg: `invalid value "=>": must be one of > < >= <= == !=`},
			`key "alert_rules[1].operator": invalid value "=>": must be one of > < >= <= == !=`},
		{Error{Key: "ring_dir", Source: "flag --ring-dir", Msg: "must not be empty"},
			`flag --ring-dir: key "ring_dir": must not be empty`},
		{Error{Key: "ring_dir", Source: "env AGAOBS_RING_DIR", Msg: "must not be empty"},
			`env AGAOBS_RING_DIR: key "ring_dir": must not be empty`},
		{Error{Source: "/x.yaml", Msg: "cannot read the file: permission denied"},
			`config file /x.yaml: cannot read the file: permission denied`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	l := NewLoader(fs)
	path := filepath.Join(t.TempDir(), "missing.yaml")
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	_, _, err := l.Load(nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Source != path || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load = %v, want an *Error about %s wrapping ErrNotExist", err, path)
	}
}

func TestUnknownFlag(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	NewLoader(fs)
	for _, args := range [][]string{{"--no-such-flag"}, {"--alert-rules=x"}, {"--slos=x"}} {
		if err := fs.Parse(args); err == nil {
			t.Errorf("Parse(%q) succeeded, want an unknown flag error", args)
		}
	}
}

func TestEnvWarnings(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"unknown", []string{"AGAOBS_FOO=1"}, []string{"env AGAOBS_FOO: not a configuration key; ignored"}},
		{"test reserved", []string{"AGAOBS_TEST_X=1", "AGAOBS_TEST_PROMETHEUS_PORT=abc"}, nil},
		{"producer vars", []string{"AGAOBS_PRODUCER=p", "AGAOBS_ROLE=r", "AGAOBS_AGENT_URL=http://127.0.0.1:8081", "AGAOBS_HEALTH_URL=http://127.0.0.1:8080/health"}, nil},
		{"other prefix", []string{"PATH=/bin", "AGAOBSX=1", "HOME"}, nil},
		{"file only", []string{"AGAOBS_ALERT_RULES=x"}, []string{"env AGAOBS_ALERT_RULES: alert_rules can only be set in the config file; ignored"}},
		{"sorted", []string{"AGAOBS_ZZ=1", "AGAOBS_AA=1", "AGAOBS_PROMETHEUS_PORT=9999"}, []string{
			"env AGAOBS_AA: not a configuration key; ignored", "env AGAOBS_ZZ: not a configuration key; ignored"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, w := mustLoad(t, "", tc.env)
			if !slices.Equal(w, tc.want) {
				t.Errorf("warnings = %q, want %q", w, tc.want)
			}
		})
	}
}

func TestValueWarnings(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		want    []string
		backend string
	}{
		{"sqlite alias", "audit_storage_backend: sqlite\n", nil,
			[]string{"audit_storage_backend: sqlite is a deprecated alias of bbolt"}, "sqlite"},
		{"state path empty file", "state_path: \"\"\n", nil,
			[]string{"state_path is empty: state persistence is disabled"}, "bbolt"},
		{"state path empty env", "", []string{"AGAOBS_STATE_PATH="},
			[]string{"state_path is empty: state persistence is disabled"}, "bbolt"},
		{"both", "audit_storage_backend: sqlite\nstate_path: ''\n", nil, []string{
			"audit_storage_backend: sqlite is a deprecated alias of bbolt",
			"state_path is empty: state persistence is disabled"}, "sqlite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, w := mustLoad(t, tc.file, tc.env)
			if !slices.Equal(w, tc.want) {
				t.Errorf("warnings = %q, want %q", w, tc.want)
			}
			if c.AuditStorageBackend != tc.backend {
				t.Errorf("audit_storage_backend = %q, want %q", c.AuditStorageBackend, tc.backend)
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, a, "prometheus_port: 1001\n")
	writeFile(t, b, "prometheus_port: 1002\n")
	tests := []struct {
		name string
		args []string
		env  []string
		file string
		port int
	}{
		{"none", nil, nil, "", 9090},
		{"env", nil, []string{"AGAOBS_CONFIG=" + a}, a, 1001},
		{"flag", []string{"--config=" + b}, nil, b, 1002},
		{"flag over env", []string{"--config", b}, []string{"AGAOBS_CONFIG=" + a}, b, 1002},
		{"empty flag disables env", []string{"--config="}, []string{"AGAOBS_CONFIG=" + a}, "", 9090},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			l := NewLoader(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if got := l.ConfigFile(tc.env); got != tc.file {
				t.Errorf("ConfigFile = %q, want %q", got, tc.file)
			}
			c, w, err := l.Load(tc.env)
			if err != nil || len(w) != 0 {
				t.Fatalf("Load: %v, warnings %q", err, w)
			}
			if c.PrometheusPort != tc.port {
				t.Errorf("prometheus_port = %d, want %d", c.PrometheusPort, tc.port)
			}
		})
	}
}

func TestReload(t *testing.T) {
	l, path := setup(t, "prometheus_port: 9100\nhealth_port: 8100\nlog_level: INFO\n", "--health-port=8200")
	env := []string{"AGAOBS_LOG_FORMAT=text"}
	c1, _, err := l.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	if c1.PrometheusPort != 9100 || c1.HealthPort != 8200 || c1.LogFormat != "text" {
		t.Fatalf("first load: %+v", c1)
	}

	writeFile(t, path, "prometheus_port: 9101\nhealth_port: 8101\nlog_level: DEBUG\nlog_format: json\n")
	c2, _, err := l.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	if c2.PrometheusPort != 9101 || c2.HealthPort != 8200 || c2.LogLevel != "DEBUG" || c2.LogFormat != "text" {
		t.Errorf("reload: prometheus_port %d health_port %d log_level %q log_format %q, want 9101 8200 DEBUG text",
			c2.PrometheusPort, c2.HealthPort, c2.LogLevel, c2.LogFormat)
	}
	if d := Diff(c1, c2); !slices.Equal(d, []string{"log_level", "prometheus_port"}) {
		t.Errorf("Diff = %q", d)
	}

	writeFile(t, path, "prometheus_port: nope\n")
	if _, _, err := l.Load(env); err == nil {
		t.Error("reload of an invalid file succeeded")
	}
}

func TestRenderRoundTrip(t *testing.T) {
	custom := Default()
	custom.Enabled = false
	custom.PrometheusHost = "::1"
	custom.PrometheusLabels = map[string]string{"env": "prod", "zone": "true", "n": "1"}
	custom.LogLevel = "DEBUG"
	custom.LogFile = "/var/log/agaobs/events.log"
	custom.AuditStorageBackend = "sqlite"
	custom.AuditFlushInterval = 0.125
	custom.AlertWebhookURL = "https://hooks.example.com/a?b=c"
	custom.RingGroup = "1000"
	custom.RingAllowedUIDs = []int{0, 1000}
	custom.RingRescanInterval = Duration(90 * time.Minute)
	custom.ProducerRetention = Duration(30 * 24 * time.Hour)
	custom.ProducerHeartbeatStale = 86400
	custom.StatePath = ""
	custom.AdminListenAddress = "[::1]:9999"
	custom.WebConfigFile = "null"
	r := AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold, r.PerProducer = "hot", "latency_p99", -1.5, false
	r.For, r.KeepFiringFor = Duration(time.Minute), Duration(2*time.Millisecond)
	r.Labels = map[string]string{"team": "ml"}
	r.Annotations = map[string]string{"summary": "it is: hot"}
	r2 := AlertRule{}
	r2.SetDefaults()
	r2.Name, r2.Metric, r2.Message = "yes", "drop_rate", "~"
	custom.AlertRules = []AlertRule{r, r2}
	s := SLO{}
	s.SetDefaults()
	s.Name, s.Objective, s.SLI = "lat", 0.999, SLI{Type: "latency", ThresholdUs: 2500}
	custom.SLOs = []SLO{s}
	custom.BPFProbes = map[string]bool{"offcpu": true, "gil_wait": false}
	if err := custom.Validate(); err != nil {
		t.Fatal(err)
	}

	for name, c := range map[string]Config{"default": Default(), "custom": custom} {
		t.Run(name, func(t *testing.T) {
			out, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := load(t, string(out), nil)
			if err != nil {
				t.Fatalf("Load(Render()): %v\n%s", err, out)
			}
			if d := Diff(got, c); len(d) != 0 {
				t.Errorf("round trip differs in %v\n%s", d, out)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("round trip not deeply equal\n got %+v\nwant %+v", got, c)
			}
			// Every key, in struct order.
			var names []string
			for _, line := range strings.Split(string(out), "\n") {
				if k, _, ok := strings.Cut(line, ":"); ok && k != "" && !strings.HasPrefix(k, " ") && !strings.HasPrefix(k, "-") {
					names = append(names, k)
				}
			}
			var want []string
			for _, k := range Keys() {
				want = append(want, k.Name)
			}
			if !slices.Equal(names, want) {
				t.Errorf("rendered keys %q, want %q", names, want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a := Default()
	if d := Diff(a, Default()); len(d) != 0 {
		t.Errorf("Diff(default, default) = %q", d)
	}
	b := Default()
	b.RingPollInterval = Duration(time.Millisecond)
	b.PrometheusPort = 1
	b.AlertRules = []AlertRule{{Name: "a"}}
	b.BPFProbes = map[string]bool{} // empty equals nil
	b.RingAllowedUIDs = []int{}     // empty equals nil
	b.PrometheusLabels = map[string]string{"a": "b"}
	want := []string{"alert_rules", "prometheus_labels", "prometheus_port", "ring_poll_interval"}
	if d := Diff(a, b); !slices.Equal(d, want) {
		t.Errorf("Diff = %q, want %q", d, want)
	}
	c := b
	c.AlertRules = []AlertRule{{Name: "a", Labels: map[string]string{"x": "y"}}}
	if d := Diff(b, c); !slices.Equal(d, []string{"alert_rules"}) {
		t.Errorf("Diff nested = %q", d)
	}
}

func TestKeys(t *testing.T) {
	keys := Keys()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	NewLoader(fs)
	fileOnly := map[string]bool{"alert_rules": true, "slos": true, "bpf_probes": true,
		"alertmanager_http_config": true, "alert_webhook_http_config": true}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.Name] {
			t.Errorf("duplicate key %s", k.Name)
		}
		seen[k.Name] = true
		if k.Help == "" {
			t.Errorf("%s has no help", k.Name)
		}
		if k.FileOnly != fileOnly[k.Name] {
			t.Errorf("%s FileOnly = %v", k.Name, k.FileOnly)
		}
		if k.FileOnly {
			if k.Flag != "" || k.Env != "" || fs.Lookup(strings.ReplaceAll(k.Name, "_", "-")) != nil {
				t.Errorf("file-only key %s has a flag or env", k.Name)
			}
			continue
		}
		if k.Flag != strings.ReplaceAll(k.Name, "_", "-") || k.Env != "AGAOBS_"+strings.ToUpper(k.Name) {
			t.Errorf("%s: flag %q env %q", k.Name, k.Flag, k.Env)
		}
		f := fs.Lookup(k.Flag)
		if f == nil {
			t.Errorf("no flag --%s", k.Flag)
			continue
		}
		if f.DefValue != k.Default || f.Usage != k.Help {
			t.Errorf("--%s: default %q usage %q, want %q %q", k.Flag, f.DefValue, f.Usage, k.Default, k.Help)
		}
	}
	if len(keys) != 108 {
		t.Errorf("%d keys, want 108", len(keys))
	}
	if keys[0].Name != "enabled" || keys[len(keys)-1].Name != "bpf_probes" {
		t.Errorf("first %s last %s", keys[0].Name, keys[len(keys)-1].Name)
	}
	byName := map[string]Key{}
	for _, k := range keys {
		byName[k.Name] = k
	}
	for name, want := range map[string][2]string{
		"prometheus_port":       {"int", "9090"},
		"audit_flush_interval":  {"float", "0.05"},
		"ring_poll_interval":    {"duration", "3ms"},
		"ring_allowed_uids":     {"[]int", ""},
		"prometheus_labels":     {"map[string]string", ""},
		"alert_rules":           {"[]AlertRule", ""},
		"bpf_probes":            {"map[string]bool", ""},
		"prometheus_host":       {"string", ""},
		"ring_remove_dead":      {"bool", "true"},
		"audit_verify_interval": {"duration", "1h"},
		"ui_max_viewers":        {"int", "20"},
	} {
		if k := byName[name]; k.Type != want[0] || k.Default != want[1] {
			t.Errorf("%s: type %q default %q, want %q %q", name, k.Type, k.Default, want[0], want[1])
		}
	}
}

func TestAlertRuleDefaultsPerElement(t *testing.T) {
	file := "alert_rules:\n  - name: a\n    metric: forward_rate\n    per_producer: false\n    cooldown_seconds: 0\n  - name: b\n    metric: forward_rate\n    window_seconds: ~\n"
	c, _ := mustLoad(t, file, nil)
	if len(c.AlertRules) != 2 {
		t.Fatalf("rules: %+v", c.AlertRules)
	}
	a, b := c.AlertRules[0], c.AlertRules[1]
	if a.PerProducer || a.CooldownSeconds != 0 || a.WindowSeconds != 60 || a.Operator != ">" {
		t.Errorf("rule a = %+v", a)
	}
	if !b.PerProducer || b.CooldownSeconds != 300 || b.WindowSeconds != 60 || b.Severity != "warning" {
		t.Errorf("rule b = %+v", b)
	}
}

func TestLoaderConcurrentLoad(t *testing.T) {
	l, _ := setup(t, "prometheus_port: 9100\n", "--health-port=8200")
	done := make(chan error)
	for range 4 {
		go func() {
			_, _, err := l.Load([]string{"AGAOBS_LOG_FORMAT=text"})
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// node is reserved in prometheus_labels (the agent sets it from
// node_name), and node_name must be a usable label value.
func TestNodeNameAndReservedNodeLabel(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		key  string
	}{
		{"node in prometheus_labels", func(c *Config) { c.PrometheusLabels = map[string]string{"node": "x"} }, "prometheus_labels"},
		{"node_name not UTF-8", func(c *Config) { c.NodeName = "n\xff" }, "node_name"},
		{"node_name too long", func(c *Config) { c.NodeName = strings.Repeat("n", 254) }, "node_name"},
		{"node_name fine", func(c *Config) { c.NodeName = "gpu-node-7.example" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			err := c.Validate()
			var ce *Error
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.key != "" && (!errors.As(err, &ce) || ce.Key != tc.key):
				t.Fatalf("error %v, want one naming %s", err, tc.key)
			}
		})
	}
	if !Default().PrometheusNodeLabel {
		t.Error("prometheus_node_label defaults to false")
	}
}

// Every key belongs to an area (the CLI's help groups flags by it); the
// catch-all "Agent" holds only the agent's own keys.
func TestKeyAreas(t *testing.T) {
	want := map[string]string{
		"ring_dir": "Ring consumer", "prometheus_port": "Prometheus exporter", "log_file": "Event log",
		"audit_storage_path": "Audit store", "alert_webhook_url": "Alerting", "slos": "Alerting",
		"health_port": "Health", "gpu_enabled": "GPU", "bpf_enabled": "eBPF probes", "bpf_probes": "eBPF probes",
		"web_idle_timeout": "HTTP listeners", "admin_listen_address": "HTTP listeners", "ring_hot_bytes": "Producers",
		"ring_audit_wait_us": "Producers", "enabled": "Compatibility", "node_name": "Agent", "agent_gomaxprocs": "Agent",
		"audit_verify_interval": "Audit store", "ui_max_viewers": "Live view",
	}
	var agentKeys []string
	for _, k := range Keys() {
		if w, ok := want[k.Name]; ok && k.Area != w {
			t.Errorf("%s: area %q, want %q", k.Name, k.Area, w)
		}
		if k.Area == "Agent" {
			agentKeys = append(agentKeys, k.Name)
		}
	}
	wantAgent := []string{"sink_queue_size", "state_path", "agent_log_level", "agent_log_format", "agent_gomaxprocs", "node_name"}
	slices.Sort(agentKeys)
	slices.Sort(wantAgent)
	if !slices.Equal(agentKeys, wantAgent) {
		t.Errorf("keys in the Agent area: %v, want %v", agentKeys, wantAgent)
	}
}

// Bad OTLP values are rejected naming the key; the unset defaults defer to
// the OTEL_EXPORTER_OTLP_* variables.
func TestOTLPKeys(t *testing.T) {
	d := Default()
	if d.OTLPEnabled || d.OTLPEndpoint != "" || d.OTLPProtocol != "" || d.OTLPTimeout != 0 || d.OTLPMetricsTemporality != "" ||
		!slices.Equal(d.OTLPSignals, []string{"traces", "logs", "metrics"}) || d.OTLPTraceSampleRate != 0.001 ||
		d.OTLPTraceSlowThresholdUs != 0 || d.OTLPTraceMaxSpansPerSecond != 1000 || d.OTLPQueueSize != 2048 ||
		d.OTLPMetricsInterval != Duration(15*time.Second) {
		t.Errorf("defaults: %+v", d)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("x"), 0o600)
	cases := []struct {
		name string
		set  func(c *Config)
		key  string // "" : valid
	}{
		{"url endpoint", func(c *Config) { c.OTLPEndpoint = "https://collector:4318" }, ""},
		{"host:port endpoint", func(c *Config) { c.OTLPEndpoint = "collector:4317" }, ""},
		{"bad endpoint", func(c *Config) { c.OTLPEndpoint = "ftp://x" }, "otlp_endpoint"},
		{"endpoint without port", func(c *Config) { c.OTLPEndpoint = "collector" }, "otlp_endpoint"},
		{"protocol", func(c *Config) { c.OTLPProtocol = "http/json" }, "otlp_protocol"},
		{"http protocol", func(c *Config) { c.OTLPProtocol = "http/protobuf" }, ""},
		{"header name", func(c *Config) { c.OTLPHeaders = map[string]string{"bad name": "v"} }, "otlp_headers"},
		{"header value", func(c *Config) { c.OTLPHeaders = map[string]string{"x-a": "v\nInjected: 1"} }, "otlp_headers.x-a"},
		{"missing ca", func(c *Config) { c.OTLPTLSCAFile = "/nonexistent/ca.pem" }, "otlp_tls_ca_file"},
		{"ca", func(c *Config) { c.OTLPTLSCAFile = ca }, ""},
		{"cert without key", func(c *Config) { c.OTLPTLSCertFile = ca }, "otlp_tls_cert_file"},
		{"signal", func(c *Config) { c.OTLPSignals = []string{"traces", "profiles"} }, "otlp_signals[1]"},
		{"timeout", func(c *Config) { c.OTLPTimeout = Duration(time.Hour) }, "otlp_timeout"},
		{"queue", func(c *Config) { c.OTLPQueueSize = 1 << 30 }, "otlp_queue_size"},
		{"rate", func(c *Config) { c.OTLPTraceSampleRate = 1.5 }, "otlp_trace_sample_rate"},
		{"rate NaN", func(c *Config) { c.OTLPTraceSampleRate = math.NaN() }, "otlp_trace_sample_rate"},
		{"slow", func(c *Config) { c.OTLPTraceSlowThresholdUs = -1 }, "otlp_trace_slow_threshold_us"},
		{"max spans", func(c *Config) { c.OTLPTraceMaxSpansPerSecond = 0 }, "otlp_trace_max_spans_per_second"},
		{"temporality", func(c *Config) { c.OTLPMetricsTemporality = "lowmemory" }, "otlp_metrics_temporality"},
		{"delta", func(c *Config) { c.OTLPMetricsTemporality = "delta" }, ""},
		{"interval", func(c *Config) { c.OTLPMetricsInterval = Duration(time.Millisecond) }, "otlp_metrics_interval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.set(&c)
			err := c.Validate()
			var ce *Error
			switch {
			case tc.key == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.key != "" && (!errors.As(err, &ce) || ce.Key != tc.key):
				t.Errorf("error %v, want one naming %s", err, tc.key)
			}
		})
	}
}

// audit_verify_interval (0 switches the background verify off, else 1m to
// 7d) and ui_max_viewers (1-1000) are read from the file, the environment
// and flags like every key, and bad values are rejected naming the key.
func TestAuditVerifyAndUIKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		env    []string
		args   []string
		verify Duration
		max    int
	}{
		{"defaults", "", nil, nil, Duration(time.Hour), 20},
		{"file", "audit_verify_interval: 0\nui_max_viewers: 1\n", nil, nil, 0, 1},
		{"env", "", []string{"AGAOBS_AUDIT_VERIFY_INTERVAL=7d", "AGAOBS_UI_MAX_VIEWERS=1000"}, nil, Duration(7 * 24 * time.Hour), 1000},
		{"flag over env", "", []string{"AGAOBS_AUDIT_VERIFY_INTERVAL=7d", "AGAOBS_UI_MAX_VIEWERS=5"},
			[]string{"--audit-verify-interval=1m", "--ui-max-viewers", "50"}, Duration(time.Minute), 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := mustLoad(t, tc.file, tc.env, tc.args...)
			if c.AuditVerifyInterval != tc.verify || c.UIMaxViewers != tc.max {
				t.Errorf("audit_verify_interval %v, ui_max_viewers %d; want %v, %d", c.AuditVerifyInterval, c.UIMaxViewers, tc.verify, tc.max)
			}
		})
	}
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		key  string // "": valid
	}{
		{"verify off", func(c *Config) { c.AuditVerifyInterval = 0 }, ""},
		{"verify 1m", func(c *Config) { c.AuditVerifyInterval = Duration(time.Minute) }, ""},
		{"verify 7d", func(c *Config) { c.AuditVerifyInterval = 7 * day }, ""},
		{"verify 59s", func(c *Config) { c.AuditVerifyInterval = Duration(59 * time.Second) }, "audit_verify_interval"},
		{"verify 1ms", func(c *Config) { c.AuditVerifyInterval = Duration(time.Millisecond) }, "audit_verify_interval"},
		{"verify 8d", func(c *Config) { c.AuditVerifyInterval = 8 * day }, "audit_verify_interval"},
		{"verify negative", func(c *Config) { c.AuditVerifyInterval = -Duration(time.Hour) }, "audit_verify_interval"},
		{"viewers 1", func(c *Config) { c.UIMaxViewers = 1 }, ""},
		{"viewers 1000", func(c *Config) { c.UIMaxViewers = 1000 }, ""},
		{"viewers 0", func(c *Config) { c.UIMaxViewers = 0 }, "ui_max_viewers"},
		{"viewers 1001", func(c *Config) { c.UIMaxViewers = 1001 }, "ui_max_viewers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.set(&c)
			err := c.Validate()
			var ce *Error
			switch {
			case tc.key == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.key != "" && (!errors.As(err, &ce) || ce.Key != tc.key):
				t.Errorf("error %v, want one naming %s", err, tc.key)
			}
		})
	}
	for _, tc := range []struct{ file, key string }{
		{"audit_verify_interval: 30s\n", "audit_verify_interval"},
		{"ui_max_viewers: 0\n", "ui_max_viewers"},
	} {
		_, _, err := load(t, tc.file, nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key || ce.Line != 1 {
			t.Errorf("%q: error %v, want one naming %s at line 1", tc.file, err, tc.key)
		}
	}
}
