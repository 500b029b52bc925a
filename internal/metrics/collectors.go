package metrics

import (
	"errors"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
)

// Collector is one source of agent self-metrics. A failing Update is
// reported as agaobs_collector_success{collector} 0 and never fails the
// scrape (node_exporter's pattern).
type Collector interface {
	Update(ch chan<- prometheus.Metric) error
}

// Collectors runs named Collectors on every scrape.
type Collectors struct {
	names    []string
	cols     map[string]Collector
	success  *prometheus.Desc
	duration *prometheus.Desc
}

// NewCollectors returns an empty set.
func NewCollectors() *Collectors {
	return &Collectors{
		cols: map[string]Collector{},
		success: prometheus.NewDesc("agaobs_collector_success", "Whether the collector's last scrape succeeded (1) or failed (0).",
			[]string{"collector"}, nil),
		duration: prometheus.NewDesc("agaobs_collector_duration_seconds", "Duration of the collector's last scrape.",
			[]string{"collector"}, nil),
	}
}

// Add registers a collector under name.
func (c *Collectors) Add(name string, col Collector) {
	c.names = append(c.names, name)
	sort.Strings(c.names)
	c.cols[name] = col
}

// Describe sends nothing: the set is an unchecked collector, its series
// depend on what the agent sees.
func (c *Collectors) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collectors) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.names {
		start := time.Now()
		err := c.cols[name].Update(ch)
		ok := 1.0
		if err != nil && !errors.Is(err, ErrNoData) {
			ok = 0
		}
		ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, time.Since(start).Seconds(), name)
		ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, ok, name)
	}
}

// RingsCollector exports per-ring and per-producer counters from the ring
// consumer. Series exist (at 0) from the moment a ring is accepted and go
// away when its producer is forgotten.
type RingsCollector struct {
	Rings func() []rings.RingInfo
	// States, if set, counts rings by state for agaobs_rings; Rings then
	// only needs the producers' rings (the directory may hold thousands
	// of rejected files, which a scrape should not list one by one).
	States                               func() map[string]int
	events, dropped, lost, corrupt, fill *prometheus.Desc
	up, heartbeat, states, unknownDesc   *prometheus.Desc
}

// NewRingsCollector returns a collector over rings().
func NewRingsCollector(ringsFn func() []rings.RingInfo) *RingsCollector {
	l := []string{"producer", "class"}
	return &RingsCollector{
		Rings:     ringsFn,
		events:    prometheus.NewDesc("agaobs_ring_events_total", "Records consumed from the ring by this agent process.", l, nil),
		dropped:   prometheus.NewDesc("agaobs_ring_dropped_total", "Records the producer dropped because the ring was full (its own count, since the ring was created).", l, nil),
		lost:      prometheus.NewDesc("agaobs_ring_lost_total", "Sequence gaps the consumer saw (equals dropped once the producer commits again or closes).", l, nil),
		corrupt:   prometheus.NewDesc("agaobs_ring_corrupt_total", "Corrupt frames or bodies counted and skipped.", l, nil),
		fill:      prometheus.NewDesc("agaobs_ring_fill_ratio", "Share of the ring's data area holding unreleased records.", l, nil),
		up:        prometheus.NewDesc("agaobs_producer_up", "1 while the producer process is live, 0 once it closed or died (until producer_retention forgets it).", []string{"producer"}, nil),
		heartbeat: prometheus.NewDesc("agaobs_producer_heartbeat_age_seconds", "Age of the producer's newest ring heartbeat.", []string{"producer"}, nil),
		states:    prometheus.NewDesc("agaobs_rings", "Rings in the ring directory by state (live, closed, dead, rejected, quarantined, initialising).", []string{"state"}, nil),
	}
}

// Update implements Collector.
func (c *RingsCollector) Update(ch chan<- prometheus.Metric) error {
	list := c.Rings()
	states := map[string]int{"live": 0, "closed": 0, "dead": 0, "rejected": 0, "quarantined": 0, "initialising": 0}
	type prod struct {
		up  bool
		age float64
		set bool
	}
	prods := map[string]*prod{}
	for _, r := range list {
		states[r.State]++
		if r.Producer == "" || r.Class == "" {
			continue
		}
		name := LabelValue(r.Producer) // const metrics panic on invalid UTF-8
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(r.Consumed), name, r.Class)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(r.Dropped), name, r.Class)
		ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(r.Lost), name, r.Class)
		ch <- prometheus.MustNewConstMetric(c.corrupt, prometheus.CounterValue, float64(r.Corrupt), name, r.Class)
		ch <- prometheus.MustNewConstMetric(c.fill, prometheus.GaugeValue, r.Fill, name, r.Class)
		p := prods[name]
		if p == nil {
			p = &prod{}
			prods[name] = p
		}
		p.up = p.up || r.State == "live"
		if !p.set || r.HeartbeatAgeSeconds < p.age {
			p.age, p.set = r.HeartbeatAgeSeconds, true
		}
	}
	for name, p := range prods {
		up := 0.0
		if p.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(c.heartbeat, prometheus.GaugeValue, p.age, name)
	}
	if c.States != nil {
		states = c.States()
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(c.states, prometheus.GaugeValue, float64(n), s)
	}
	return nil
}

// PipelineCollector exports the sinks' queue counters and event → sink
// latency.
type PipelineCollector struct {
	Stats                                    func() []pipeline.SinkStats
	depth, capacity, written, drop, err, lat *prometheus.Desc
}

// NewPipelineCollector returns a collector over stats().
func NewPipelineCollector(stats func() []pipeline.SinkStats) *PipelineCollector {
	l := []string{"sink"}
	return &PipelineCollector{
		Stats:    stats,
		depth:    prometheus.NewDesc("agaobs_sink_queue_depth", "Events waiting in the sink's queue.", l, nil),
		capacity: prometheus.NewDesc("agaobs_sink_queue_capacity", "Capacity of the sink's queue in events (sink_queue_size).", l, nil),
		written:  prometheus.NewDesc("agaobs_sink_events_total", "Events handed to the sink.", l, nil),
		drop:     prometheus.NewDesc("agaobs_sink_dropped_total", "Events dropped because the sink's queue was full (the ring consumer never waits for a sink).", l, nil),
		err:      prometheus.NewDesc("agaobs_sink_errors_total", "Failed sink writes.", l, nil),
		lat: prometheus.NewDesc("agaobs_sink_event_latency_seconds",
			"Event → sink latency of the oldest event of each batch the sink received (an upper bound for the batch).", l, nil),
	}
}

// Update implements Collector.
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
	return nil
}

// FuncCollector adapts a function to Collector.
type FuncCollector func(ch chan<- prometheus.Metric) error

// Update implements Collector.
func (f FuncCollector) Update(ch chan<- prometheus.Metric) error { return f(ch) }

// ErrNoData marks a collector with nothing to report; it is not a failure.
var ErrNoData = errors.New("collector has no data")

// producerGPUCollector attributes GPU memory to AGA producers: the GPU
// collector's running processes matched to the producers' host pids.
type producerGPUCollector struct {
	rings func() []rings.RingInfo
	mem   func(hostPID int) map[string]uint64
	desc  *prometheus.Desc
}

// NewProducerGPUCollector exports agaobs_producer_gpu_memory_bytes{producer,uuid}
// for live producers; mem returns a host pid's used bytes per GPU uuid.
func NewProducerGPUCollector(list func() []rings.RingInfo, mem func(hostPID int) map[string]uint64) Collector {
	return &producerGPUCollector{rings: list, mem: mem,
		desc: prometheus.NewDesc("agaobs_producer_gpu_memory_bytes", "GPU memory used by the producer's process, per GPU (NVML running processes matched to the producer's host pid).",
			[]string{"producer", "uuid"}, nil)}
}

func (c *producerGPUCollector) Update(ch chan<- prometheus.Metric) error {
	seen := map[string]bool{}
	for _, r := range c.rings() {
		if r.Producer == "" || r.State != "live" || r.HostPID == 0 || seen[r.Producer] {
			continue
		}
		seen[r.Producer] = true // one process, two rings: count it once
		for uuid, used := range c.mem(r.HostPID) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(used), LabelValue(r.Producer), LabelValue(uuid))
		}
	}
	return nil
}

// ConsumerCollector exports the ring consumer's own counters: liveness
// checks that could not decide, rejections by reason code, and the
// candidate-file cap.
type ConsumerCollector struct {
	Counters                                  func() rings.Counters
	checkErrors, rejected, tracked, untracked *prometheus.Desc
}

// NewConsumerCollector returns a collector over counters().
func NewConsumerCollector(counters func() rings.Counters) *ConsumerCollector {
	return &ConsumerCollector{
		Counters:    counters,
		checkErrors: prometheus.NewDesc("agaobs_producer_check_errors_total", "Producer liveness checks that could not decide (procfs errors other than no such process, e.g. EMFILE); the producer was kept and checked again.", nil, nil),
		rejected:    prometheus.NewDesc("agaobs_rings_rejected_total", "Ring files turned away, by reason code (log lines and audit records are aggregated per uid and reason, one per minute).", []string{"reason"}, nil),
		tracked:     prometheus.NewDesc("agaobs_ring_candidates_tracked", "Ring files of no accepted producer (initialising or rejected) that the consumer remembers, so a rescan does not look at them again.", nil, nil),
		untracked:   prometheus.NewDesc("agaobs_ring_candidates_untracked", "Ring files the last scan left unexamined because the tracked candidates reached their cap (16384).", nil, nil),
	}
}

// Update implements Collector.
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
