package health

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/pipeline/pipelinetest"
)

func ptr[T any](v T) *T { return &v }

type ringRow = pipelinetest.Ring

type fakeRings struct{ list []ringRow }

func (f *fakeRings) get() *pipeline.Snapshot { return pipelinetest.Snapshot(f.list...) }

func newTracker(list ...ringRow) (*Producers, *fakeRings) {
	fr := &fakeRings{list: list}
	return NewProducers(ProducerOptions{Snapshot: fr.get, KVUtilizationDegraded: 0.95, DropRateDegraded: 0.01,
		HeartbeatStale: 5 * time.Second}), fr
}

func liveRing(producer, class string) ringRow {
	return ringRow{Producer: producer, Class: class, State: "live", HostPID: 42, HeartbeatAge: 0.3}
}

func statusEvent(producer string, st pipeline.Status) pipeline.Event {
	return pipeline.Event{Kind: pipeline.KindStatus, Status: &st,
		Producer: pipeline.NewProducer(producer, producer, 42, 42, "r", pipeline.Identity{Producer: producer})}
}

// Each plugin component follows the reference's rules, with the fixes
// the issue asks for (retriever stats never overwrite the status).
func TestProducerComponents(t *testing.T) {
	cases := []struct {
		name      string
		st        pipeline.Status
		component string
		want      Status
		field     string // a field that must be present
	}{
		{"kv below threshold", pipeline.Status{KVStore: &pipeline.KVStoreStatus{Count: ptr(95.0), MaxSlots: ptr(100.0), Utilization: ptr(0.95)}}, "kv_store", Healthy, "utilization"},
		{"kv above threshold", pipeline.Status{KVStore: &pipeline.KVStoreStatus{Count: ptr(96.0), MaxSlots: ptr(100.0), Utilization: ptr(0.96)}}, "kv_store", Degraded, "count"},
		{"kv read failed", pipeline.Status{KVStore: &pipeline.KVStoreStatus{Error: "RuntimeError: cuda"}}, "kv_store", Unhealthy, "error"},
		{"gate finite", pipeline.Status{GateSystem: &pipeline.GateSystem{Finite: ptr(true), ParamCount: ptr(4)}}, "gate_system", Healthy, "param_count"},
		{"gate non-finite", pipeline.Status{GateSystem: &pipeline.GateSystem{Finite: ptr(false), ParamCount: ptr(4)}}, "gate_system", Unhealthy, "error"},
		{"gate not checked", pipeline.Status{GateSystem: &pipeline.GateSystem{ParamCount: ptr(4)}}, "gate_system", Healthy, "checked"},
		{"retriever stats", pipeline.Status{Retriever: &pipeline.RetrieverStatus{Type: "HNSW", Stats: json.RawMessage(`{"status":"broken","queries":7}`)}}, "retriever", Healthy, "queries"},
		{"retriever error", pipeline.Status{Retriever: &pipeline.RetrieverStatus{Type: "HNSW", Error: "ValueError: offline"}}, "retriever", Degraded, "error"},
		{"attached", pipeline.Status{Attachment: &pipeline.Attachment{Attached: ptr(true), ModelType: ptr("llama"), Hooks: ptr(3)}}, "attachment", Healthy, "hooks_count"},
		{"not attached", pipeline.Status{Attachment: &pipeline.Attachment{Attached: ptr(false)}}, "attachment", Degraded, "attached"},
		{"attachment failed", pipeline.Status{Attachment: &pipeline.Attachment{Error: "RuntimeError: no"}}, "attachment", Unhealthy, "error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newTracker(liveRing("tp0", "hot"))
			if err := p.Write(context.Background(), []pipeline.Event{statusEvent("tp0", tc.st)}); err != nil {
				t.Fatal(err)
			}
			c, ok := p.Components(time.Now())["tp0/"+tc.component]
			if !ok || c.Status != tc.want {
				t.Fatalf("%s: %+v (present %v), want %s", tc.component, c, ok, tc.want)
			}
			if _, ok := c.Fields[tc.field]; !ok {
				t.Fatalf("field %q missing: %+v", tc.field, c.Fields)
			}
			b, _ := json.Marshal(c)
			if !strings.Contains(string(b), `"status":"`+string(tc.want)+`"`) {
				t.Fatalf("JSON %s does not carry the computed status", b)
			}
		})
	}
}

func TestProducerLiveness(t *testing.T) {
	cases := []struct {
		name  string
		rings []ringRow
		want  Status
	}{
		{"live", []ringRow{liveRing("tp0", "hot"), liveRing("tp0", "audit")}, Healthy},
		{"stale heartbeat", []ringRow{{Producer: "tp0", Class: "hot", State: "live", HeartbeatAge: 6}}, Unhealthy},
		{"died without closing", []ringRow{{Producer: "tp0", Class: "hot", State: "dead"}}, Unhealthy},
		{"closed cleanly", []ringRow{{Producer: "tp0", Class: "hot", State: "closed"}, {Producer: "tp0", Class: "audit", State: "closed"}}, Closed},
		{"a new incarnation took the name over", []ringRow{{Producer: "tp0", Class: "hot", State: "dead"}, liveRing("tp0", "hot")}, Healthy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newTracker(tc.rings...)
			if c := p.Components(time.Now())["tp0/liveness"]; c.Status != tc.want {
				t.Fatalf("liveness %+v, want %s", c, tc.want)
			}
		})
	}
}

// A full ring that drains is healthy; the drop rate over the last minute
// decides, and old drops age out.
func TestProducerRingDropRate(t *testing.T) {
	r := ringRow{Producer: "tp0", Class: "hot", State: "live", Fill: 0.99, Consumed: 1000}
	p, fr := newTracker(r)
	t0 := time.Unix(1_000_000, 0)
	if c := p.Components(t0)["tp0/ring"]; c.Status != Healthy || c.Fields["hot_fill_ratio"] != 0.99 {
		t.Fatalf("full, draining ring: %+v", c)
	}
	// 30 s later: 10 000 more consumed, 50 dropped (0.5 %).
	r.Consumed, r.Dropped = 11000, 50
	fr.list = []ringRow{r}
	if c := p.Components(t0.Add(30 * time.Second))["tp0/ring"]; c.Status != Healthy {
		t.Fatalf("0.5%% drops: %+v", c)
	}
	// Then 300 more drops in 10 s: 350 of 10 350 over the minute (3.4 %).
	r.Dropped = 350
	fr.list = []ringRow{r}
	c := p.Components(t0.Add(40 * time.Second))["tp0/ring"]
	if c.Status != Degraded || math.Abs(c.Fields["drop_rate_1m"].(float64)-0.034) > 0.001 {
		t.Fatalf("3.4%% drops: %+v", c)
	}
	// Two quiet minutes later (no new drops) the window no longer holds them.
	r.Consumed = 20000
	fr.list = []ringRow{r}
	p.Components(t0.Add(100 * time.Second))
	if c := p.Components(t0.Add(170 * time.Second))["tp0/ring"]; c.Status != Healthy {
		t.Fatalf("drops older than a minute still count: %+v", c)
	}
	fr.list = []ringRow{{Producer: "tp0", Class: "hot", State: "quarantined", Reason: "bad frame"}}
	if c := p.Components(t0.Add(171 * time.Second))["tp0/ring"]; c.Status != Unhealthy {
		t.Fatalf("quarantined ring: %+v", c)
	}
}

// A forgotten producer's components go away with its status snapshot.
func TestProducerForgotten(t *testing.T) {
	p, fr := newTracker(liveRing("tp0", "hot"))
	p.Write(context.Background(), []pipeline.Event{statusEvent("tp0", pipeline.Status{KVStore: &pipeline.KVStoreStatus{Utilization: ptr(0.5)}})})
	if _, ok := p.Components(time.Now())["tp0/kv_store"]; !ok {
		t.Fatal("no kv_store component")
	}
	ev := statusEvent("tp0", pipeline.Status{})
	ev.Kind, ev.Status, ev.Lifecycle = pipeline.KindLifecycle, nil, &pipeline.Lifecycle{Type: pipeline.ProducerForgotten}
	p.Write(context.Background(), []pipeline.Event{ev})
	fr.list = nil
	if cs := p.Components(time.Now()); len(cs) != 0 {
		t.Fatalf("components of a forgotten producer: %v", cs)
	}
}
