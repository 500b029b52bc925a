package health

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// ProducerOptions configure the producer components.
type ProducerOptions struct {
	// Snapshot is the ring consumer's view of the producers (ring
	// states, fill, counters, heartbeat ages).
	Snapshot func() *pipeline.Snapshot
	// KVUtilizationDegraded (health_kv_utilization_degraded), DropRateDegraded
	// (health_drop_rate_degraded) and HeartbeatStale
	// (health_heartbeat_stale_seconds) are the thresholds.
	KVUtilizationDegraded float64
	DropRateDegraded      float64
	HeartbeatStale        time.Duration
}

// dropWindow is the span the ring component's drop rate is measured over.
const dropWindow = time.Minute

// Producers is the health sink: it keeps each producer's latest status
// snapshot (the pipeline delivers them) and turns them, with the ring
// table, into the components `<producer>/kv_store`, `gate_system`,
// `retriever`, `attachment`, `ring` and `liveness`. It is also the Source
// that reports them.
type Producers struct {
	opts ProducerOptions

	mu      sync.Mutex
	status  map[string]*pipeline.Status
	samples map[string][]dropSample // per producer, oldest first
}

type dropSample struct {
	at time.Time
	pipeline.DropCounts
}

// NewProducers returns an empty tracker.
func NewProducers(opts ProducerOptions) *Producers {
	return &Producers{opts: opts, status: map[string]*pipeline.Status{}, samples: map[string][]dropSample{}}
}

// Name implements pipeline.Sink.
func (p *Producers) Name() string { return "health" }

// Kinds implements pipeline.Sink: status snapshots, and lifecycle events
// to forget a producer.
func (p *Producers) Kinds() pipeline.KindMask {
	return pipeline.KindStatus.Mask() | pipeline.KindLifecycle.Mask()
}

// Write implements pipeline.Sink.
func (p *Producers) Write(_ context.Context, batch []pipeline.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range batch {
		ev := &batch[i]
		if ev.Producer == nil {
			continue
		}
		name := ev.Producer.Name
		switch ev.Kind {
		case pipeline.KindStatus:
			s := *ev.Status // the event's pointer is not ours to keep mutating
			p.status[name] = &s
		case pipeline.KindLifecycle:
			if ev.Lifecycle.Type == pipeline.ProducerForgotten {
				delete(p.status, name)
				delete(p.samples, name)
			}
		}
	}
	return nil
}

// Components implements Source.
func (p *Producers) Components(now time.Time) map[string]Component {
	snap := p.opts.Snapshot()
	known := make(map[string]bool, len(snap.Producers))
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]Component{}
	for i := range snap.Producers {
		ps := &snap.Producers[i]
		name := ps.Name
		known[name] = true
		out[name+"/liveness"] = p.liveness(ps.Rings)
		out[name+"/ring"] = p.ring(ps, now)
		st := p.status[name]
		if st == nil {
			continue // no snapshot yet: nothing the plugin reported to judge
		}
		if st.KVStore != nil {
			out[name+"/kv_store"] = p.kvStore(st.KVStore)
		}
		if st.GateSystem != nil {
			out[name+"/gate_system"] = gateSystem(st.GateSystem)
		}
		if st.Retriever != nil {
			out[name+"/retriever"] = retriever(st.Retriever)
		}
		if st.Attachment != nil {
			out[name+"/attachment"] = attachment(st.Attachment)
		}
	}
	for name := range p.samples {
		if !known[name] {
			delete(p.samples, name)
		}
	}
	return out
}

// liveness: dead without closing, or a heartbeat older than the threshold,
// is unhealthy; a clean close is "closed". A live ring that took a dead
// predecessor's name over decides.
func (p *Producers) liveness(rs []pipeline.RingStatus) Component {
	var live, closed, dead []pipeline.RingStatus
	for _, r := range rs {
		switch r.State {
		case pipeline.RingStateLive:
			live = append(live, r)
		case pipeline.RingStateClosed:
			closed = append(closed, r)
		case pipeline.RingStateDead:
			dead = append(dead, r)
		}
	}
	switch {
	case len(live) > 0:
		age := 0.0
		for _, r := range live {
			age = max(age, r.HeartbeatAge)
		}
		f := map[string]any{"state": "live", "heartbeat_age_seconds": round3(age), "host_pid": live[0].HostPID}
		if age > p.opts.HeartbeatStale.Seconds() {
			f["reason"] = fmt.Sprintf("heartbeat %.1fs old (limit %.1fs)", age, p.opts.HeartbeatStale.Seconds())
			return Component{Status: Unhealthy, Fields: f}
		}
		return Component{Status: Healthy, Fields: f}
	case len(dead) > 0:
		return Component{Status: Unhealthy, Fields: map[string]any{"state": "dead", "host_pid": dead[0].HostPID,
			"reason": "the process exited without closing its rings"}}
	case len(closed) > 0:
		return Component{Status: Closed, Fields: map[string]any{"state": "closed"}}
	}
	return Component{Status: Unhealthy, Fields: map[string]any{"state": rs[0].State.String(), "reason": rs[0].Reason}}
}

// ring: a full ring that drains is fine; records dropped faster than the
// threshold over the last minute (pipeline.DropCounts.Rate, the rate the
// alert rules use), or a quarantined ring, are not.
func (p *Producers) ring(ps *pipeline.ProducerStatus, now time.Time) Component {
	name := ps.Name
	cur := dropSample{at: now, DropCounts: ps.Drops()}
	f := map[string]any{}
	status := Healthy
	for _, r := range ps.Rings {
		f[r.Class.String()+"_fill_ratio"] = round3(r.Fill)
		if r.State == pipeline.RingStateQuarantined || r.State == pipeline.RingStateRejected {
			status = Unhealthy
			f["reason"] = fmt.Sprintf("%s ring %s: %s", r.Class, r.State, r.Reason)
		}
	}
	f["dropped_total"] = cur.Dropped
	ss := p.samples[name]
	// Keep one sample older than the window as the baseline.
	for len(ss) > 1 && now.Sub(ss[1].at) >= dropWindow {
		ss = ss[1:]
	}
	if n := len(ss); n == 0 || now.Sub(ss[n-1].at) >= time.Second {
		ss = append(ss, cur)
	}
	p.samples[name] = ss
	rate := 0.0
	if d, ok := cur.Since(ss[0].DropCounts); ok {
		rate, _ = d.Rate()
	}
	f["drop_rate_1m"] = round3(rate)
	if status == Healthy && rate > p.opts.DropRateDegraded {
		status = Degraded
		f["reason"] = fmt.Sprintf("%.1f%% of records dropped over the last minute (limit %.1f%%)", 100*rate, 100*p.opts.DropRateDegraded)
	}
	return Component{Status: status, Fields: f}
}

func (p *Producers) kvStore(k *pipeline.KVStoreStatus) Component {
	f := map[string]any{}
	put := func(key string, v *float64) {
		if v != nil {
			f[key] = *v
		}
	}
	put("count", k.Count)
	put("max_slots", k.MaxSlots)
	put("utilization", k.Utilization)
	put("pinned", k.Pinned)
	if k.Error != "" {
		f["error"] = k.Error
		return Component{Status: Unhealthy, Fields: f}
	}
	if k.Utilization != nil && *k.Utilization > p.opts.KVUtilizationDegraded {
		return Component{Status: Degraded, Fields: f}
	}
	return Component{Status: Healthy, Fields: f}
}

func gateSystem(g *pipeline.GateSystem) Component {
	f := map[string]any{}
	if g.ParamCount != nil {
		f["param_count"] = *g.ParamCount
	}
	switch {
	case g.Error != "":
		f["error"] = g.Error
		return Component{Status: Unhealthy, Fields: f}
	case g.Finite == nil:
		f["checked"] = false // the producer's gate check is off (status_gate_check_seconds 0)
	case !*g.Finite:
		f["error"] = "gate parameters contain NaN or Inf"
		return Component{Status: Unhealthy, Fields: f}
	}
	return Component{Status: Healthy, Fields: f}
}

// retriever: the type and the retriever's own stats; a stats key named
// "status" cannot overwrite the component's status (the seed's did).
func retriever(r *pipeline.RetrieverStatus) Component {
	f := map[string]any{}
	for k, v := range r.StatsMap() {
		f[k] = v
	}
	if r.Type != "" {
		f["type"] = r.Type
	}
	if r.Error != "" {
		f["error"] = r.Error
		return Component{Status: Degraded, Fields: f}
	}
	return Component{Status: Healthy, Fields: f}
}

func attachment(a *pipeline.Attachment) Component {
	f := map[string]any{}
	if a.Attached != nil {
		f["attached"] = *a.Attached
	}
	if a.ModelType != nil {
		f["model_type"] = *a.ModelType
	}
	if a.Hooks != nil {
		f["hooks_count"] = *a.Hooks
	}
	switch {
	case a.Error != "":
		f["error"] = a.Error
		return Component{Status: Unhealthy, Fields: f}
	case a.Attached == nil || !*a.Attached:
		return Component{Status: Degraded, Fields: f}
	}
	return Component{Status: Healthy, Fields: f}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
