package demo

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/testutil"
)

type auditOps struct {
	mu     sync.Mutex
	ops    map[string]int
	layers map[int32]bool
	kinds  map[pipeline.Kind]int
	status *pipeline.Status
}

func (a *auditOps) Name() string             { return "ops" }
func (a *auditOps) Kinds() pipeline.KindMask { return pipeline.AllKinds }
func (a *auditOps) Write(_ context.Context, b []pipeline.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ev := range b {
		a.kinds[ev.Kind]++
		switch ev.Kind {
		case pipeline.KindAudit:
			a.ops[ev.Audit.Operation]++
		case pipeline.KindForward:
			a.layers[ev.Forward.Layer()] = true
		case pipeline.KindStatus:
			a.status = ev.Status
		}
	}
	return nil
}

// The demo producer emits every aga-core audit operation, forwards on three
// layers, retrievals and status snapshots (its timeline compressed 20×).
func TestProducerEmitsEverything(t *testing.T) {
	dir := t.TempDir()
	disp := pipeline.NewDispatcher(nil)
	sink := &auditOps{ops: map[string]int{}, layers: map[int32]bool{}, kinds: map[pipeline.Kind]int{}}
	disp.Register(sink, pipeline.SinkOptions{})
	disp.Register(pipeline.AckSink{}, pipeline.SinkOptions{Lossless: true})
	disp.Start()
	c, err := rings.New(rings.Options{Dir: dir, Group: -1, Dispatcher: disp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.Run(ctx) }()
	go func() {
		defer wg.Done()
		err := RunProducer(ctx, ProducerOptions{Dir: dir, Rank: 0, WorldSize: 2, HotBytes: 1 << 20, AuditBytes: 1 << 18,
			AuditWait: 200 * time.Microsecond, StatusInterval: 200 * time.Millisecond, Speed: 20, Seed: 1})
		if err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); wg.Wait(); disp.Close(); c.Close() }()
	want := []string{"register", "register_batch", "unregister", "load_from", "clear", "attach", "detach",
		"streaming_session_start", "streaming_knowledge_update", "streaming_knowledge_remove", "streaming_session_end"}
	testutil.Eventually(t, 30*time.Second, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, op := range want {
			if sink.ops[op] == 0 {
				return false
			}
		}
		return len(sink.layers) == 3 && sink.kinds[pipeline.KindRetrieval] > 0 && sink.status != nil
	}, "demo producer did not emit everything: %v", sink.ops)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if s := sink.status; s.KVStore == nil || s.KVStore.Count == nil || *s.KVStore.Count <= 0 || s.Build == nil {
		t.Errorf("status snapshot %+v", s)
	}
}
