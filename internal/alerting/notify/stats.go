package notify

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Results counted per channel.
const (
	ResultSuccess = "success" // delivered
	ResultFailed  = "failed"  // gave up: out of attempts, permanent error, or shutdown
	ResultRetried = "retried" // one per retry attempt
	ResultDropped = "dropped" // the channel's queue was full (or the dispatcher had stopped)
)

// results lists the results in the order Stats reports them.
var results = [...]string{ResultSuccess, ResultFailed, ResultRetried, ResultDropped}

// ChannelStats is one counter: deliveries of one channel with one result.
type ChannelStats struct {
	Channel string
	Result  string
	Count   uint64
}

// counters holds one channel's counts, indexed like results.
type counters [len(results)]atomic.Uint64

const (
	idxSuccess = iota
	idxFailed
	idxRetried
	idxDropped
)

func (c *counters) success() { c[idxSuccess].Add(1) }
func (c *counters) failed()  { c[idxFailed].Add(1) }
func (c *counters) retried() { c[idxRetried].Add(1) }
func (c *counters) dropped() { c[idxDropped].Add(1) }

// Stats returns every channel's counts, zeros included, in channel order
// (log, webhook, alertmanager, exec; configured channels only) and result
// order (success, failed, retried, dropped).
func (d *Dispatcher) Stats() []ChannelStats {
	out := make([]ChannelStats, 0, len(d.channels)*len(results))
	for _, ch := range d.channels {
		for i, r := range results {
			out = append(out, ChannelStats{Channel: ch.name, Result: r, Count: ch.counts[i].Load()})
		}
	}
	return out
}

// Collector exports the counters as agaobs_alert_notifications_total.
func (d *Dispatcher) Collector() selfmetrics.Collector {
	c := &collector{d: d}
	c.desc = c.fams.Counter("agaobs_alert_notifications_total",
		"Alert notification deliveries by channel and result (success, failed after retries, retried attempts, dropped on a full queue).",
		"channel", "result")
	return c
}

type collector struct {
	d    *Dispatcher
	desc *prometheus.Desc
	fams selfmetrics.Families
}

func (c *collector) Describe() []selfmetrics.Family { return c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	for _, s := range c.d.Stats() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(s.Count), s.Channel, s.Result)
	}
	return nil
}
