package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// RingsCollector exports per-ring and per-producer counters from the ring
// consumer. Series exist (at 0) from the moment a ring is accepted and go
// away when its producer is forgotten.
type RingsCollector struct {
	Snapshot                             func() *pipeline.Snapshot
	events, dropped, lost, corrupt, fill *prometheus.Desc
	up, heartbeat, states, unknownDesc   *prometheus.Desc
	producerState                        *prometheus.Desc
	fams                                 *selfmetrics.Families
}

// NewRingsCollector returns a collector over the consumer's snapshots.
func NewRingsCollector(snapshot func() *pipeline.Snapshot) *RingsCollector {
	l := []string{"producer", "class"}
	f := new(selfmetrics.Families)
	return &RingsCollector{
		Snapshot:  snapshot,
		fams:      f,
		events:    f.Counter("agaobs_ring_events_total", "Records consumed from the ring by this agent process.", l...),
		dropped:   f.Counter("agaobs_ring_dropped_total", "Records the producer dropped because the ring was full (its own count, since the ring was created).", l...),
		lost:      f.Counter("agaobs_ring_lost_total", "Sequence gaps the consumer saw (equals dropped once the producer commits again or closes).", l...),
		corrupt:   f.Counter("agaobs_ring_corrupt_total", "Corrupt frames or bodies counted and skipped.", l...),
		fill:      f.Gauge("agaobs_ring_fill_ratio", "Share of the ring's data area holding unreleased records.", l...),
		up:        f.Gauge("agaobs_producer_up", "1 while the producer process is live, 0 once it closed or died (until producer_retention forgets it).", "producer"),
		heartbeat: f.Gauge("agaobs_producer_heartbeat_age_seconds", "Age of the producer's newest ring heartbeat.", "producer"),
		states:    f.Gauge("agaobs_rings", "Rings in the ring directory by state (live, closed, dead, rejected, quarantined, initialising).", "state"),
		producerState: f.Gauge("agaobs_producer_state",
			"1 for the producer's state, 0 for the others: live (a ring is live), dead (none is, and one's process exited without closing it), closed.",
			"producer", "state"),
	}
}

// Describe implements selfmetrics.Collector.
func (c *RingsCollector) Describe() []selfmetrics.Family { return *c.fams }

// Update implements selfmetrics.Collector.
func (c *RingsCollector) Update(ch chan<- prometheus.Metric) error {
	snap := c.Snapshot()
	for _, p := range snap.Producers {
		name := schema.LabelValue(p.Name) // const metrics panic on invalid UTF-8
		for _, r := range ringPerClass(p.Rings) {
			class := r.Class.String()
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(r.Consumed), name, class)
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(r.Dropped), name, class)
			ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(r.Lost), name, class)
			ch <- prometheus.MustNewConstMetric(c.corrupt, prometheus.CounterValue, float64(r.Corrupt), name, class)
			ch <- prometheus.MustNewConstMetric(c.fill, prometheus.GaugeValue, r.Fill, name, class)
		}
		up := 0.0
		if p.Up() {
			up = 1
		}
		age, _ := p.HeartbeatAge()
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(c.heartbeat, prometheus.GaugeValue, age, name)
		state := p.State()
		for _, st := range [...]pipeline.RingState{pipeline.RingStateLive, pipeline.RingStateClosed, pipeline.RingStateDead} {
			v := 0.0
			if st == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.producerState, prometheus.GaugeValue, v, name, st.String())
		}
	}
	for st, n := range snap.RingStates {
		ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, float64(n), pipeline.RingState(st).String())
	}
	return nil
}

// ringPerClass picks one ring per class for the {producer, class} series:
// a name taken over by a new incarnation has the dead one's rings too,
// and two rings under one label set would fail the scrape. The current
// incarnation's ring wins (live, then closed, then dead, then any other),
// so its counters continue the series; summing both would make the
// series drop, which rate() reads as a reset worth the whole live count.
func ringPerClass(rs []pipeline.RingStatus) []pipeline.RingStatus {
	rank := func(st pipeline.RingState) int {
		switch st {
		case pipeline.RingStateLive:
			return 0
		case pipeline.RingStateClosed:
			return 1
		case pipeline.RingStateDead:
			return 2
		}
		return 3
	}
	out := make([]pipeline.RingStatus, 0, 2)
	for _, r := range rs {
		i := 0
		for i < len(out) && out[i].Class != r.Class {
			i++
		}
		switch {
		case i == len(out):
			out = append(out, r)
		case rank(r.State) < rank(out[i].State):
			out[i] = r
		}
	}
	return out
}

// PipelineCollector exports the sinks' queue counters and event → sink
// latency.
type PipelineCollector struct {
	Stats func() []pipeline.SinkStats
	// AgentEvents, if set, reports the events the agent published
	// (pipeline.Dispatcher.AgentEventStats).
	AgentEvents                              func() (published, dropped uint64)
	depth, capacity, written, drop, err, lat *prometheus.Desc
	agentEvents, agentDropped                *prometheus.Desc
	fams                                     *selfmetrics.Families
}

// NewPipelineCollector returns a collector over stats().
func NewPipelineCollector(stats func() []pipeline.SinkStats) *PipelineCollector {
	l := []string{"sink"}
	f := new(selfmetrics.Families)
	return &PipelineCollector{
		Stats:    stats,
		fams:     f,
		depth:    f.Gauge("agaobs_sink_queue_depth", "Events waiting in the sink's queue.", l...),
		capacity: f.Gauge("agaobs_sink_queue_capacity", "Capacity of the sink's queue in events (sink_queue_size).", l...),
		written:  f.Counter("agaobs_sink_events_total", "Events handed to the sink.", l...),
		drop:     f.Counter("agaobs_sink_dropped_total", "Events dropped because the sink's queue was full (the ring consumer never waits for a sink).", l...),
		err:      f.Counter("agaobs_sink_errors_total", "Failed sink writes.", l...),
		lat: f.Histogram("agaobs_sink_event_latency_seconds",
			"Event → sink latency of the oldest event of each batch the sink received (an upper bound for the batch).", l...),
		agentEvents: f.Counter("agaobs_agent_events_total", "Events the agent made (config loaded or reloaded, alert and health transitions) accepted into the pipeline."),
		agentDropped: f.Counter("agaobs_agent_events_dropped_total",
			"Events the agent made that were dropped: more than 4096 waited for the next flush, or they were left when the pipeline closed."),
	}
}

// Describe implements selfmetrics.Collector.
func (c *PipelineCollector) Describe() []selfmetrics.Family { return *c.fams }

// Update implements selfmetrics.Collector.
func (c *PipelineCollector) Update(ch chan<- prometheus.Metric) error {
	bounds := pipeline.LatencyBounds()
	for _, s := range c.Stats() {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Depth), s.Name)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(s.Capacity), s.Name)
		ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(s.Written), s.Name)
		ch <- prometheus.MustNewConstMetric(c.drop, prometheus.CounterValue, float64(s.Dropped), s.Name)
		ch <- prometheus.MustNewConstMetric(c.err, prometheus.CounterValue, float64(s.Errors), s.Name)
		buckets := make(map[float64]uint64, len(bounds))
		var cum uint64
		for i, b := range bounds {
			cum += s.Latency.Buckets[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.lat, s.Latency.Count, s.Latency.Sum, buckets, s.Name)
	}
	if c.AgentEvents != nil {
		pub, dropped := c.AgentEvents()
		ch <- prometheus.MustNewConstMetric(c.agentEvents, prometheus.CounterValue, float64(pub))
		ch <- prometheus.MustNewConstMetric(c.agentDropped, prometheus.CounterValue, float64(dropped))
	}
	return nil
}

// producerGPUCollector attributes GPU memory to AGA producers: the GPU
// collector's running processes matched to the producers' host pids.
type producerGPUCollector struct {
	snapshot func() *pipeline.Snapshot
	mem      func(hostPID int) map[string]uint64
	desc     *prometheus.Desc
	fams     selfmetrics.Families
}

// NewProducerGPUCollector exports agaobs_producer_gpu_memory_bytes{producer,uuid}
// for live producers; mem returns a host pid's used bytes per GPU uuid.
func NewProducerGPUCollector(snapshot func() *pipeline.Snapshot, mem func(hostPID int) map[string]uint64) selfmetrics.Collector {
	c := &producerGPUCollector{snapshot: snapshot, mem: mem}
	c.desc = c.fams.Gauge("agaobs_producer_gpu_memory_bytes", "GPU memory used by the producer's process, per GPU (NVML running processes matched to the producer's host pid).",
		"producer", "uuid")
	return c
}

func (c *producerGPUCollector) Describe() []selfmetrics.Family { return c.fams }

func (c *producerGPUCollector) Update(ch chan<- prometheus.Metric) error {
	for _, p := range c.snapshot().Producers {
		pid := p.LiveHostPID() // one process, two rings: counted once
		if pid == 0 {
			continue
		}
		for uuid, used := range c.mem(pid) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(used), schema.LabelValue(p.Name), schema.LabelValue(uuid))
		}
	}
	return nil
}

// ConsumerCollector exports the ring consumer's own counters: liveness
// checks that could not decide, rejections by reason code, and the
// candidate-file cap.
type ConsumerCollector struct {
	Counters                                  func() pipeline.ConsumerCounters
	checkErrors, rejected, tracked, untracked *prometheus.Desc
	fams                                      *selfmetrics.Families
}

// NewConsumerCollector returns a collector over counters().
func NewConsumerCollector(counters func() pipeline.ConsumerCounters) *ConsumerCollector {
	f := new(selfmetrics.Families)
	return &ConsumerCollector{
		Counters:    counters,
		fams:        f,
		checkErrors: f.Counter("agaobs_producer_check_errors_total", "Producer liveness checks that could not decide (procfs errors other than no such process, e.g. EMFILE); the producer was kept and checked again."),
		rejected:    f.Counter("agaobs_rings_rejected_total", "Ring files turned away, by reason code (log lines and audit records are aggregated per uid and reason, one per minute).", "reason"),
		tracked:     f.Gauge("agaobs_ring_candidates_tracked", "Ring files of no accepted producer (initialising or rejected) that the consumer remembers, so a rescan does not look at them again."),
		untracked:   f.Gauge("agaobs_ring_candidates_untracked", "Ring files the last scan left unexamined because the tracked candidates reached their cap (16384)."),
	}
}

// Describe implements selfmetrics.Collector.
func (c *ConsumerCollector) Describe() []selfmetrics.Family { return *c.fams }

// Update implements selfmetrics.Collector.
func (c *ConsumerCollector) Update(ch chan<- prometheus.Metric) error {
	n := c.Counters()
	ch <- prometheus.MustNewConstMetric(c.checkErrors, prometheus.CounterValue, float64(n.CheckErrors))
	for reason, v := range n.Rejected {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(n.Candidates))
	ch <- prometheus.MustNewConstMetric(c.untracked, prometheus.GaugeValue, float64(n.Untracked))
	return nil
}
