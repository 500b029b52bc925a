package alerting

import (
	"time"

	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/config"
)

// The agent's own alerts (promrules.SelfAlerts) that the engine raises
// itself, because it sees their cause without Prometheus: a producer that
// died without closing its rings (from the ring consumer's snapshot), the
// audit store refusing writes (Options.AuditWritable) and events dropped
// at full sink queues (Options.SinkDropped). Their name, severity, for,
// summary, runbook_url and labels (alertname, severity, node, producer for
// AgaobsProducerDied, the prometheus_labels) are those of the generated
// rule file's agaobs-self group, so Alertmanager keeps one alert when
// both send it. The others (agent down, ring drops over 5m, GPU and eBPF)
// are left to Prometheus. A configured rule with the same name replaces
// the built-in one.

// counterSample is one reading of a counter.
type counterSample struct {
	sec int64
	v   uint64
}

// counterRate keeps the readings of a counter over the last window, one
// per second at most, for its rate.
type counterRate struct {
	window  time.Duration
	samples []counterSample
}

// observe records v at sec and returns the rate over the window (per
// second since the oldest reading in it); ok is false until two readings
// a second apart exist.
func (c *counterRate) observe(sec int64, v uint64) (rate float64, ok bool) {
	if n := len(c.samples); n == 0 || c.samples[n-1].sec < sec {
		c.samples = append(c.samples, counterSample{sec, v})
	}
	cut := 0
	for cut < len(c.samples)-1 && c.samples[cut].sec < sec-int64(c.window/time.Second) {
		cut++
	}
	c.samples = c.samples[cut:]
	first, last := c.samples[0], c.samples[len(c.samples)-1]
	if last.sec == first.sec {
		return 0, false
	}
	if last.v < first.v { // a counter that went back: start over
		c.samples = c.samples[len(c.samples)-1:]
		return 0, false
	}
	return float64(last.v-first.v) / float64(last.sec-first.sec), true
}

// selfRules compiles the self alerts the engine can evaluate, but those
// whose name a configured rule takes.
func (e *Engine) selfRules(taken map[string]bool) []*Rule {
	var out []*Rule
	for _, a := range promrules.SelfAlerts() {
		var cond func(string, int64) (float64, bool, bool)
		metric, op, threshold := "", "==", 1.0
		switch a.Name {
		case promrules.AlertProducerDied:
			metric = "producer_dead"
			cond = func(producer string, _ int64) (float64, bool, bool) {
				dead, ok := e.dead[producer]
				return b2f(dead), dead, ok
			}
		case promrules.AlertAuditStoreUnwritable:
			if e.opts.AuditWritable == nil {
				continue
			}
			metric, threshold = "audit_store_up", 0
			cond = func(string, int64) (float64, bool, bool) {
				up := e.opts.AuditWritable()
				return b2f(up), !up, true
			}
		case promrules.AlertSinkDrops:
			if e.opts.SinkDropped == nil {
				continue
			}
			metric, op, threshold = "sink_dropped_rate", ">", 0
			rate := &counterRate{window: promrules.SelfRateWindow}
			cond = func(_ string, sec int64) (float64, bool, bool) {
				v, ok := rate.observe(sec, e.opts.SinkDropped())
				return v, ok && v > 0, ok
			}
		default:
			continue
		}
		if taken[a.Name] {
			continue
		}
		var rc config.AlertRule
		rc.SetDefaults()
		rc.Name, rc.Metric, rc.Operator, rc.Threshold = a.Name, metric, op, threshold
		rc.Severity, rc.For, rc.PerProducer, rc.Message = a.Severity, config.Duration(a.For), a.PerProducer, a.Summary
		rc.Annotations = map[string]string{"runbook_url": promrules.RunbookURL("", a.Name)}
		out = append(out, &Rule{AlertRule: rc, Cond: cond, Fingerprint: "self|" + a.Name})
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
