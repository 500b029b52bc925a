package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/agaobs/agaobs/internal/shm"
)

// ProducerOptions configures one synthetic producer process.
type ProducerOptions struct {
	Dir            string
	Rank           int
	WorldSize      int
	HotBytes       int64
	AuditBytes     int64
	AuditWait      time.Duration
	StatusInterval time.Duration
	// BurstEvery, if set, writes a burst far larger than the hot ring can
	// hold at that interval, so the demo shows drops (== sequence gaps).
	BurstEvery time.Duration
	Seed       uint64
	// Speed compresses the demo's timeline (scripted audit operations,
	// latency spike windows) for tests; default 1.
	Speed float64
}

const maxSlots = 256

// producer is the simulated AGA plugin state.
type producer struct {
	opts       ProducerOptions
	rng        *rand.Rand
	hot, audit *shm.Writer
	start      time.Time
	step       uint64
	count      int
	pinned     map[string]bool
	nextID     int
	slotChange float64
	slotWindow float64
	attached   bool
	emitted    uint64
	calls      uint64
	// layers are the hooked layers: aga-core's default of the last three
	// of a 32-layer model.
	layers [3]int32
}

// RunProducer runs one synthetic producer until ctx ends, then closes its
// rings.
func RunProducer(ctx context.Context, opts ProducerOptions) error {
	rank, ws := opts.Rank, opts.WorldSize
	hidden, bottleneck, slots := 4096, 64, maxSlots
	id := shm.Identity{
		Producer: fmt.Sprintf("demo-worker-tp%d", rank), Role: "demo-worker", Rank: &rank, WorldSize: &ws,
		Model: "demo-llama-7b", AGAVersion: "4.4.0", HiddenDim: &hidden, BottleneckDim: &bottleneck,
		MaxSlots: &slots, Device: fmt.Sprintf("cuda:%d", rank), Process: "agaobs-agent demo-producer", Client: "go/demo",
	}
	if opts.Speed <= 0 {
		opts.Speed = 1
	}
	p := &producer{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, uint64(rank))), pinned: map[string]bool{}, start: time.Now(), layers: [3]int32{29, 30, 31}}
	var err error
	p.hot, err = shm.CreateWriter(opts.Dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: uint64(opts.HotBytes), Identity: id})
	if err != nil {
		return err
	}
	defer p.hot.Close()
	p.audit, err = shm.CreateWriter(opts.Dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: uint64(opts.AuditBytes), AuditWait: opts.AuditWait, Identity: id})
	if err != nil {
		return err
	}
	defer p.audit.Close()
	return p.run(ctx)
}

func (p *producer) run(ctx context.Context) error {
	stepTick := time.NewTicker(5 * time.Millisecond)
	defer stepTick.Stop()
	hb := time.NewTicker(500 * time.Millisecond)
	defer hb.Stop()
	status := time.NewTicker(p.opts.StatusInterval)
	defer status.Stop()
	script := auditScript()
	var credit float64
	last := time.Now()
	nextBurst := time.Now().Add(p.opts.BurstEvery / 3)
	for {
		select {
		case <-ctx.Done():
			p.emitAudit("detach", map[string]any{"model_type": "llama", "hooks_removed": 3})
			return nil
		case <-hb.C:
			p.hot.Heartbeat()
			p.audit.Heartbeat()
		case <-status.C:
			p.emitStatus()
		case now := <-stepTick.C:
			el := time.Duration(float64(now.Sub(p.start)) * p.opts.Speed)
			for len(script) > 0 && el >= script[0].at {
				script[0].do(p)
				script = script[1:]
			}
			if len(script) == 0 && p.rng.Float64() < 0.01 {
				p.randomAudit()
			}
			// Decode steps per second: a slow wave between ~20 and ~100
			// with noise, so rates and queue fill vary.
			rate := 60 + 40*math.Sin(2*math.Pi*el.Seconds()/90) + 10*p.rng.NormFloat64()
			credit += max(rate, 5) * now.Sub(last).Seconds()
			last = now
			for ; credit >= 1; credit-- {
				p.decodeStep(el)
			}
			if p.opts.BurstEvery > 0 && now.After(nextBurst) {
				nextBurst = now.Add(p.opts.BurstEvery)
				p.burst()
			}
		}
	}
}

// latencyUs draws a forward latency: lognormal around 150 µs, with spike
// windows (8 s of every 40 s, from 15 s on) where 8 % of forwards take
// 6–9 ms, the SLO breaches the default alert rules look for. 8 % keeps
// the 30 s window's P99 clearly above 5 ms even on the first spike, when
// the window still holds the quiet start.
func (p *producer) latencyUs(el time.Duration) float64 {
	s := el.Seconds()
	if s > 15 && math.Mod(s-15, 40) < 8 && p.rng.Float64() < 0.08 {
		return 6000 + 3000*p.rng.Float64()
	}
	return math.Exp(math.Log(150) + 0.5*p.rng.NormFloat64())
}

func (p *producer) decodeStep(el time.Duration) {
	p.step++
	now := time.Now().UnixNano()
	for _, layer := range p.layers {
		gate := min(0.8, max(0, 0.35+0.2*p.rng.NormFloat64()))
		entropy := min(5, max(0, 2.2+0.8*p.rng.NormFloat64()))
		f := shm.Forward{GateMean: gate, EntropyMean: entropy, LatencyUs: p.latencyUs(el), Layer: layer,
			Fields: shm.FwdHasGate | shm.FwdHasEntropy | shm.FwdHasLatency | shm.FwdHasLayer}
		if gate >= 0.05 && p.count > 0 {
			f.Fields |= shm.FwdApplied
		} else {
			f.GateMean = min(gate, 0.04)
		}
		_ = p.hot.EmitForward(now, &f)
		p.emitted++
	}
	if p.step%5 == 0 && p.attached {
		p.retrieve(now)
	}
}

// retrieve simulates a retrieve-and-inject cycle on the first hooked layer.
func (p *producer) retrieve(now int64) {
	p.calls++
	results := 1 + p.rng.IntN(5)
	budget := 8
	injected := min(results, 1+p.rng.IntN(3))
	scores := make([]float64, injected)
	ids := make([]string, injected)
	for i := range scores {
		scores[i] = 0.5 + 0.5*p.rng.Float64()
		ids[i] = fmt.Sprintf("doc-%d", p.rng.IntN(100000))
	}
	before := p.count
	p.count = min(maxSlots, p.count+injected) // LRU eviction keeps it at max_slots
	p.slotChange += math.Abs(float64(p.count-before)) + float64(injected)
	p.slotWindow++
	if p.slotChange/p.slotWindow > 0.5 && p.rng.Float64() < 0.2 {
		p.slotChange, p.slotWindow = 0, 0 // aga-core resets the window when unstable
	}
	r := shm.Retrieval{Layer: p.layers[0], ResultsCount: int32(results), InjectedCount: int32(injected),
		BudgetRemaining: int32(budget - injected), Fields: shm.RetHasLayer | shm.RetHasResults | shm.RetHasInjected | shm.RetHasBudget}
	_ = p.hot.EmitRetrieval(now, &r, scores, ids)
	p.emitted++
}

// burst writes far more forwards than the hot ring holds, at once.
func (p *producer) burst() {
	f := shm.Forward{LatencyUs: 100, Layer: p.layers[0], Fields: shm.FwdHasLatency | shm.FwdHasLayer}
	now := time.Now().UnixNano()
	for range 100_000 {
		_ = p.hot.EmitForward(now, &f)
	}
}

type scripted struct {
	at time.Duration
	do func(*producer)
}

// auditScript emits every aga-core audit operation within the first 25 s,
// in the order aga-core would.
func auditScript() []scripted {
	at := func(s float64, f func(*producer)) scripted {
		return scripted{time.Duration(s * float64(time.Second)), f}
	}
	return []scripted{
		at(0.5, func(p *producer) {
			p.attached = true
			p.emitAudit("attach", map[string]any{"model_type": "llama", "layers": p.layers, "hooks": 3, "knowledge_count": p.count})
		}),
		at(1, func(p *producer) {
			for i := 0; i < 5; i++ {
				p.register(i < 2, "seed")
			}
			p.emitAudit("register_batch", map[string]any{"total": 5, "success": 5, "store_count": p.count})
		}),
		at(3, func(p *producer) {
			for i := 0; i < 20; i++ {
				p.register(false, "kb.jsonl")
			}
			p.emitAudit("load_from", map[string]any{"source": "/data/kb.jsonl", "type": "jsonl", "count": 20})
		}),
		at(6, func(p *producer) {
			p.emitAudit("streaming_session_start", map[string]any{"buffer_size": 1000, "knowledge_count": p.count})
		}),
		at(8, func(p *producer) {
			id := p.register(false, "stream")
			p.emitAudit("streaming_knowledge_update", map[string]any{"id": id, "reliability": 0.8, "step": p.step})
		}),
		at(10, func(p *producer) {
			id := p.unregister()
			p.emitAudit("streaming_knowledge_remove", map[string]any{"id": id, "step": p.step})
		}),
		at(12, func(p *producer) { p.unregister() }),
		at(14, func(p *producer) {
			el := time.Since(p.start).Seconds()
			p.emitAudit("streaming_session_end", map[string]any{"total_steps": p.step, "injection_count": p.calls,
				"injection_rate": 0.6, "elapsed_seconds": el})
		}),
		at(16, func(p *producer) {
			p.count = max(0, p.count-10)
			p.emitAudit("clear", map[string]any{"namespace": "scratch", "store_count": p.count})
		}),
		at(18, func(p *producer) {
			p.attached = false
			p.emitAudit("detach", map[string]any{"model_type": "llama", "hooks_removed": 3})
		}),
		at(19, func(p *producer) {
			p.attached = true
			p.emitAudit("attach", map[string]any{"model_type": "llama", "layers": p.layers, "hooks": 3, "knowledge_count": p.count})
		}),
	}
}

func (p *producer) register(pinned bool, source string) string {
	p.nextID++
	id := fmt.Sprintf("k-%d-%d", p.opts.Rank, p.nextID)
	p.count = min(maxSlots, p.count+1)
	if pinned {
		p.pinned[id] = true
	}
	p.emitAudit("register", map[string]any{"id": id, "reliability": 0.9, "pinned": pinned,
		"metadata": map[string]any{"source": source}, "store_count": p.count})
	return id
}

func (p *producer) unregister() string {
	id := fmt.Sprintf("k-%d-%d", p.opts.Rank, max(1, p.nextID-p.rng.IntN(3)))
	delete(p.pinned, id)
	p.count = max(0, p.count-1)
	p.emitAudit("unregister", map[string]any{"id": id, "store_count": p.count})
	return id
}

func (p *producer) randomAudit() {
	if p.rng.IntN(2) == 0 {
		p.register(p.rng.IntN(10) == 0, "api")
	} else {
		p.unregister()
	}
}

func (p *producer) emitAudit(op string, details map[string]any) {
	now := time.Now()
	b, _ := json.Marshal(map[string]any{"operation": op, "details": details, "success": true, "error": nil,
		"timestamp": float64(now.UnixNano()) / 1e9})
	_ = p.audit.EmitAudit(now.UnixNano(), b)
}

func (p *producer) emitStatus() {
	util := float64(p.count) / maxSlots
	rate := 0.0
	if p.slotWindow > 0 {
		rate = p.slotChange / p.slotWindow
	}
	st := map[string]any{
		"bound":            true,
		"kv_store":         map[string]any{"count": p.count, "max_slots": maxSlots, "utilization": util, "pinned": len(p.pinned)},
		"slot_change_rate": rate,
		"attachment":       map[string]any{"attached": p.attached, "model_type": "llama", "hooks": 3},
		"gate_system":      map[string]any{"finite": true, "param_count": 4},
		"retriever":        map[string]any{"type": "KVStoreRetriever", "stats": map[string]any{"call_count": p.calls}},
		"event_bus":        map[string]any{"total_emitted": p.emitted, "buffer_capacity": 10000, "enabled": true},
		"build":            map[string]any{"version": "4.4.0", "hidden_dim": 4096, "bottleneck_dim": 64, "max_slots": maxSlots, "device": fmt.Sprintf("cuda:%d", p.opts.Rank)},
	}
	b, _ := json.Marshal(st)
	_ = p.hot.EmitStatus(time.Now().UnixNano(), b)
}
