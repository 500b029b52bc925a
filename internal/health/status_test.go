package health

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestStatusRankAndMetricValue(t *testing.T) {
	cases := []struct {
		s      Status
		rank   int
		metric float64
	}{
		{Healthy, 0, 0},
		{Degraded, 1, 1},
		{Unhealthy, 2, 2},
		{Disabled, 0, -1},
		{Closed, 0, 0},
		{"starting", 0, 0}, // unknown counts as healthy, as in the seed
		{"", 0, 0},
		{"UNHEALTHY", 0, 0}, // statuses are case-sensitive
	}
	for _, tc := range cases {
		if got := tc.s.Rank(); got != tc.rank {
			t.Errorf("%q.Rank() = %d, want %d", tc.s, got, tc.rank)
		}
		if got := tc.s.MetricValue(); got != tc.metric {
			t.Errorf("%q.MetricValue() = %v, want %v", tc.s, got, tc.metric)
		}
	}
}

// The overall status is the worst component's; disabled, closed and
// unknown statuses never worsen it, and no components is healthy.
func TestEvaluateAggregation(t *testing.T) {
	cases := []struct {
		name  string
		comps []Status
		want  Status
	}{
		{"none", nil, Healthy},
		{"all healthy", []Status{Healthy, Healthy}, Healthy},
		{"one degraded", []Status{Healthy, Degraded, Healthy}, Degraded},
		{"unhealthy beats degraded", []Status{Degraded, Unhealthy, Healthy}, Unhealthy},
		{"only disabled", []Status{Disabled, Disabled}, Healthy},
		{"only closed", []Status{Closed}, Healthy},
		{"disabled and closed with degraded", []Status{Disabled, Closed, Degraded}, Degraded},
		{"unknown counts healthy", []Status{"starting", "weird"}, Healthy},
		{"unknown next to unhealthy", []Status{"weird", Unhealthy}, Unhealthy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]Component{}
			for i, s := range tc.comps {
				m[string(rune('a'+i))] = Component{Status: s}
			}
			h := New(Options{Sources: []Source{SourceFunc(func(time.Time) map[string]Component { return m })}})
			res := h.Evaluate(time.Unix(1700000000, 500000000))
			if res.Status != tc.want {
				t.Errorf("overall %q, want %q", res.Status, tc.want)
			}
			if len(res.Components) != len(tc.comps) {
				t.Errorf("%d components, want %d", len(res.Components), len(tc.comps))
			}
			if res.Timestamp != 1700000000.5 {
				t.Errorf("timestamp %v, want 1700000000.5", res.Timestamp)
			}
		})
	}
}

// Sources are merged (a later source wins a name), and a panicking source
// is an unhealthy component of its own rather than a crash or a silent gap.
func TestEvaluateMergesSourcesAndSurvivesPanics(t *testing.T) {
	h := New(Options{Sources: []Source{
		SourceFunc(func(time.Time) map[string]Component {
			return map[string]Component{"gpu": {Status: Unhealthy}, "tp0/ring": {Status: Healthy}}
		}),
		SourceFunc(func(time.Time) map[string]Component { return map[string]Component{"gpu": {Status: Disabled}} }),
		SourceFunc(func(time.Time) map[string]Component { panic("boom") }),
	}})
	res := h.Evaluate(time.Now())
	if res.Components["gpu"].Status != Disabled || res.Components["tp0/ring"].Status != Healthy {
		t.Errorf("merged components %v", res.Components)
	}
	c, ok := res.Components["health_source2"]
	if !ok || c.Status != Unhealthy || res.Status != Unhealthy {
		t.Fatalf("panicking source: %v, overall %q", res.Components, res.Status)
	}
	if e, _ := c.Fields["error"].(string); e != "source panicked: boom" {
		t.Errorf("error field %q", e)
	}
}

func TestComponentMarshalJSON(t *testing.T) {
	cases := []struct {
		name string
		c    Component
		want string
	}{
		{"status only", Component{Status: Healthy}, `{"status":"healthy"}`},
		{"flat fields after status", Component{Status: Degraded, Fields: map[string]any{"utilization": 0.96, "count": 96}},
			`{"status":"degraded","count":96,"utilization":0.96}`},
		{"status wins over a status field", Component{Status: Unhealthy, Fields: map[string]any{"status": "healthy", "error": "x"}},
			`{"status":"unhealthy","error":"x"}`},
		{"non-finite floats", Component{Status: Healthy, Fields: map[string]any{"a": math.NaN(), "b": math.Inf(1), "c": float32(math.Inf(-1))}},
			`{"status":"healthy","a":"NaN","b":"+Inf","c":"-Inf"}`},
		{"nested non-finite", Component{Status: Healthy, Fields: map[string]any{
			"m": map[string]any{"x": math.NaN()}, "s": []any{1.5, math.Inf(1)}, "f": []float64{math.NaN(), 2}}},
			`{"status":"healthy","f":["NaN",2],"m":{"x":"NaN"},"s":[1.5,"+Inf"]}`},
		{"named float NaN falls back to text", Component{Status: Healthy, Fields: map[string]any{"r": ratio(math.NaN())}},
			`{"status":"healthy","r":"NaN"}`},
		{"empty status", Component{}, `{"status":""}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
	// A value encoding/json rejects (a func) becomes its fmt form.
	b, err := json.Marshal(Component{Status: Healthy, Fields: map[string]any{"f": func() {}}})
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil || m["status"] != "healthy" {
		t.Fatalf("func field: %s, %v", b, err)
	}
	if _, ok := m["f"].(string); !ok {
		t.Errorf("func field not a string: %s", b)
	}
	// Inside a Result (a map of Components) the encoding still succeeds.
	if _, err := json.Marshal(Result{Components: map[string]Component{"a": {Status: Healthy, Fields: map[string]any{"x": math.NaN()}}}}); err != nil {
		t.Errorf("result with NaN: %v", err)
	}
}

type ratio float64
