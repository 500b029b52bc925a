package selfmetrics

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/schema"
)

// Type is a family's metric type (client_golang's Desc does not keep
// it): the schema's, so self-metrics and AGA families share one enum.
type Type = schema.MetricType

// The metric types.
const (
	Counter   = schema.Counter
	Gauge     = schema.Gauge
	Histogram = schema.Histogram
)

// Family is one metric family a collector can emit: its descriptor plus
// what the descriptor does not expose (type, label names), for docs and
// tests.
type Family struct {
	Desc   *prometheus.Desc
	Name   string
	Help   string
	Type   Type
	Labels []string // variable labels, in the order Update passes values
}

// Families builds a collector's families: each method returns the
// descriptor to emit metrics with and records the family.
type Families []Family

// Counter adds a counter family.
func (f *Families) Counter(name, help string, labels ...string) *prometheus.Desc {
	return f.add(name, help, Counter, labels)
}

// Gauge adds a gauge family.
func (f *Families) Gauge(name, help string, labels ...string) *prometheus.Desc {
	return f.add(name, help, Gauge, labels)
}

// Histogram adds a histogram family.
func (f *Families) Histogram(name, help string, labels ...string) *prometheus.Desc {
	return f.add(name, help, Histogram, labels)
}

func (f *Families) add(name, help string, t Type, labels []string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, labels, nil)
	*f = append(*f, Family{Desc: d, Name: name, Help: help, Type: t, Labels: slices.Clone(labels)})
	return d
}

// Collector is one source of agent self-metrics.
type Collector interface {
	// Describe returns every family Update can emit, whatever the
	// configuration or the data: the registry rejects the others.
	Describe() []Family
	// Update sends the current metrics. An error is reported as
	// agaobs_collector_success 0 and never fails the scrape; ErrNoData
	// is not a failure.
	Update(ch chan<- prometheus.Metric) error
}

// ErrNoData marks a collector with nothing to report; it is not a failure.
var ErrNoData = errors.New("collector has no data")

// Set runs named Collectors on every scrape. It is the prometheus.Collector
// the registry holds; add every collector before registering it.
type Set struct {
	names    []string
	cols     map[string]Collector
	own      Families // success and duration
	success  *prometheus.Desc
	duration *prometheus.Desc
	// described is set by Describe: the registry knows the descriptors
	// from then on, so a later Add would emit undescribed metrics.
	described atomic.Bool
}

// NewSet returns an empty set.
func NewSet() *Set {
	s := &Set{cols: map[string]Collector{}}
	s.success = s.own.Gauge("agaobs_collector_success", "Whether the collector's last scrape succeeded (1) or failed (0).", "collector")
	s.duration = s.own.Gauge("agaobs_collector_duration_seconds", "Duration of the collector's last scrape.", "collector")
	return s
}

// Add adds a collector under name (its collector label). It panics on a
// name added twice or once the set was registered (described).
func (s *Set) Add(name string, c Collector) {
	if s.described.Load() {
		panic(fmt.Sprintf("selfmetrics: collector %q added after the set was registered", name))
	}
	if _, ok := s.cols[name]; ok {
		panic(fmt.Sprintf("selfmetrics: collector %q added twice", name))
	}
	s.names = append(s.names, name)
	sort.Strings(s.names)
	s.cols[name] = c
}

// Families returns the set's own families and every collector's, in
// collector name order.
func (s *Set) Families() []Family {
	out := append([]Family(nil), s.own...)
	for _, name := range s.names {
		out = append(out, s.cols[name].Describe()...)
	}
	return out
}

// Describe implements prometheus.Collector: every collector's descriptors
// and the set's own two.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	s.described.Store(true)
	for _, f := range s.Families() {
		ch <- f.Desc
	}
}

// Collect implements prometheus.Collector.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	for _, name := range s.names {
		start := time.Now()
		err := s.cols[name].Update(ch)
		ok := 1.0
		if err != nil && !errors.Is(err, ErrNoData) {
			ok = 0
		}
		ch <- prometheus.MustNewConstMetric(s.duration, prometheus.GaugeValue, time.Since(start).Seconds(), name)
		ch <- prometheus.MustNewConstMetric(s.success, prometheus.GaugeValue, ok, name)
	}
}
