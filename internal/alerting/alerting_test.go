package alerting

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/config"
)

var base = time.Unix(1_800_000_000, 0)

type step struct {
	at        time.Duration
	cond, ok  bool
	wantState string // "" = absent
	wantSent  string // "firing", "renotify", "resolved" or ""
}

// TestStateMachine drives evalRule with a scripted condition, one table
// per behaviour, time stepped from base.
func TestStateMachine(t *testing.T) {
	cases := []struct {
		name  string
		rule  config.AlertRule
		steps []step
	}{
		{"pending then firing after for", config.AlertRule{For: config.Duration(30 * time.Second), CooldownSeconds: 3600}, []step{
			{0, true, true, "pending", "pending"}, // audit trail only
			{10 * time.Second, true, true, "pending", ""},
			{29 * time.Second, true, true, "pending", ""},
			{30 * time.Second, true, true, "firing", "firing"},
			{40 * time.Second, true, true, "firing", ""},
			{50 * time.Second, false, true, "inactive", "resolved"},
		}},
		{"flapping resets pending", config.AlertRule{For: config.Duration(30 * time.Second), CooldownSeconds: 3600}, []step{
			{0, true, true, "pending", "pending"},
			{20 * time.Second, false, true, "", ""},
			{25 * time.Second, true, true, "pending", "pending"},
			{50 * time.Second, true, true, "pending", ""}, // 25 s since the new ActiveAt
			{55 * time.Second, true, true, "firing", "firing"},
		}},
		{"keep_firing_for", config.AlertRule{KeepFiringFor: config.Duration(20 * time.Second), CooldownSeconds: 3600}, []step{
			{0, true, true, "firing", "firing"},
			{10 * time.Second, false, true, "firing", ""},
			{25 * time.Second, false, true, "firing", ""},
			{30 * time.Second, true, true, "firing", ""}, // condition back: the keep timer resets
			{40 * time.Second, false, true, "firing", ""},
			{60 * time.Second, false, true, "inactive", "resolved"},
		}},
		{"cooldown re-notifies a still-firing alert", config.AlertRule{CooldownSeconds: 20}, []step{
			{0, true, true, "firing", "firing"},
			{10 * time.Second, true, true, "firing", ""},
			{20 * time.Second, true, true, "firing", "renotify"},
			{30 * time.Second, true, true, "firing", ""},
			{40 * time.Second, true, true, "firing", "renotify"},
			{45 * time.Second, false, true, "inactive", "resolved"},
		}},
		{"no data ends the episode", config.AlertRule{CooldownSeconds: 3600}, []step{
			{0, true, true, "firing", "firing"},
			{10 * time.Second, false, false, "inactive", "resolved"},
		}},
		{"resolved kept for 15m, then dropped", config.AlertRule{CooldownSeconds: 3600}, []step{
			{0, true, true, "firing", "firing"},
			{time.Minute, false, true, "inactive", "resolved"},
			{15 * time.Minute, false, true, "inactive", ""},
			{16 * time.Minute, false, true, "", ""},
		}},
		{"pending never notifies", config.AlertRule{For: config.Duration(time.Hour), CooldownSeconds: 0}, []step{
			{0, true, true, "pending", "pending"},
			{time.Minute, false, true, "", ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cur step
			tc.rule.Name, tc.rule.Metric = "r", "forward_rate"
			r := &Rule{AlertRule: tc.rule, Cond: func(string, int64) (float64, bool, bool) { return 1, cur.cond, cur.ok }}
			active := map[string]*Alert{}
			for _, s := range tc.steps {
				cur = s
				trs := evalRule(r, []string{"p"}, active, base.Add(s.at))
				state := ""
				if a := active["p"]; a != nil {
					state = a.State.String()
				}
				sent := ""
				if len(trs) == 1 {
					sent = trs[0].Status
					if trs[0].Renotify {
						sent = "renotify"
					}
				} else if len(trs) > 1 {
					t.Fatalf("at %v: %d transitions", s.at, len(trs))
				}
				if state != s.wantState || sent != s.wantSent {
					t.Fatalf("at %v: state %q sent %q, want %q %q", s.at, state, sent, s.wantState, s.wantSent)
				}
			}
		})
	}
}

func TestBucketQuantileMatchesPrometheus(t *testing.T) {
	bounds := latencyBoundsUs
	counts := make([]uint64, numLatencyBuckets)
	counts[7] = 990 // (500, 1000]
	counts[8] = 10  // (1000, 2500]
	v, _ := bucketQuantile(0.99, bounds, counts)
	if v != 1000 {
		t.Errorf("p99 with exactly 1%% above 1000 = %v, want 1000 (not above)", v)
	}
	counts[8] = 11
	v, _ = bucketQuantile(0.99, bounds, counts)
	if v <= 1000 {
		t.Errorf("p99 with 1.1%% above 1000 = %v, want > 1000", v)
	}
	counts = make([]uint64, numLatencyBuckets)
	counts[10] = 5 // all in +Inf
	if v, _ := bucketQuantile(0.5, bounds, counts); v != 5000 {
		t.Errorf("+Inf bucket quantile %v, want the top finite bound", v)
	}
	counts = make([]uint64, numLatencyBuckets)
	counts[0] = 10 // (0, 5]
	if v, _ := bucketQuantile(0.5, bounds, counts); v != 2.5 {
		t.Errorf("first bucket interpolates from 0: %v", v)
	}
}

func TestMessages(t *testing.T) {
	r := &Rule{AlertRule: config.AlertRule{Name: "slo_latency_p99", Metric: "latency_p99", Operator: ">", Threshold: 1000, Severity: "warning",
		Message: "SLO violation: P99 latency {value:.1f}µs exceeds {threshold:.0f}µs"}}
	if m, err := renderMessage(r, 1234.56, nil, nil); err != nil || m != "SLO violation: P99 latency 1234.6µs exceeds 1000µs" {
		t.Errorf("seed placeholders: %q %v", m, err)
	}
	r.Message = `{{ $labels.producer }}: p99 {{ printf "%.0f" $value }} > {{ $threshold }} ({value:.1%})`
	if m, err := renderMessage(r, 2.5, map[string]string{"producer": "tp0"}, nil); err != nil || m != "tp0: p99 2 > 1000 (250.0%)" {
		t.Errorf("go template: %q %v", m, err)
	}
	r.Message = ""
	if m, _ := renderMessage(r, 1500, nil, nil); m != "[WARNING] slo_latency_p99: latency_p99 = 1500.0000 > 1000.0" {
		t.Errorf("default message %q", m)
	}
	for _, bad := range []string{"{nope}", "{{ .Missing.Field }}", "{value:.1q}"} {
		r.Message = bad
		if _, err := renderMessage(r, 1, nil, nil); err == nil {
			t.Errorf("%q rendered without error", bad)
		}
	}
	_ = strings.ToUpper
	_ = fmt.Sprint
}
