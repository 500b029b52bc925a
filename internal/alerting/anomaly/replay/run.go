package replay

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/config"
)

// Epoch is the replay's simulated start: a Monday, 00:00 UTC.
var Epoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// grace is how long after an incident ends a first firing still counts as
// its detection; quiet is how long after it ends a firing is still blamed
// on it rather than counted as false.
const (
	grace = 5
	quiet = 60
)

// KindResult is one incident kind's score, for the detector or the static
// rules.
type KindResult struct {
	Kind     string  `json:"kind"`
	Total    int     `json:"incidents"`
	Detected int     `json:"detected"`
	Recall   float64 `json:"recall"`
	// Delays are from the incident's start to the first firing alert
	// (NaN in JSON as null when nothing was detected).
	MedianDelay float64 `json:"median_delay_seconds"`
	P90Delay    float64 `json:"p90_delay_seconds"`
}

// Side is one detector's results over the replay.
type Side struct {
	Name                string       `json:"name"`
	Kinds               []KindResult `json:"kinds"`
	FalseAlerts         int          `json:"false_alerts"`
	ProducerDays        float64      `json:"producer_days"`
	FalsePerProducerDay float64      `json:"false_alerts_per_producer_day"`
	// FalseList describes each false alert (rule, producer, when), Missed
	// each incident not detected.
	FalseList []string `json:"-"`
	Missed    []string `json:"-"`
}

// Result is a replay's outcome.
type Result struct {
	Config   Config        `json:"config"`
	Detector Side          `json:"detector"`
	Static   Side          `json:"static"`
	Elapsed  time.Duration `json:"-"`
	// EvalMax is the longest detector minute (Observe) in the replay.
	EvalMax time.Duration `json:"-"`
}

// BenchRules are the detector rules the replay evaluates: the default
// anomaly rules plus an entropy rule (no default rule watches entropy;
// docs/anomaly.md shows it as an example).
func BenchRules() []config.AlertRule {
	rules := promrules.AnomalyRules()
	var r config.AlertRule
	r.SetDefaults()
	r.Name, r.Metric, r.Signal, r.Sensitivity, r.For = "anomaly_entropy_shift", "anomaly", "entropy_mean", "medium", config.Duration(3*time.Minute)
	return append(rules, r)
}

// Run replays cfg through the engine with the bench rules and through the
// seed's four static rules, and scores both.
func Run(cfg Config) (*Result, error) {
	sc, err := NewScenario(cfg)
	if err != nil {
		return nil, err
	}
	ecfg := config.Default()
	ecfg.AlertUseDefaultRules = false
	ecfg.AlertRules = BenchRules()
	ecfg.AnomalyEnabled = true
	var det []alerting.AuditTransition
	eng, err := alerting.New(alerting.Options{Config: ecfg, Logger: slog.New(slog.DiscardHandler),
		OnTransition: func(t alerting.AuditTransition) { det = append(det, t) }})
	if err != nil {
		return nil, fmt.Errorf("replay: engine: %w", err)
	}
	// The static rules see each producer's minute values.
	var current map[string]*anomaly.Sample
	static := alerting.NewStaticEvaluator(promrules.DefaultRules(), func(metric, producer string) (float64, bool) {
		s := current[producer]
		if s == nil {
			return 0, false
		}
		var v anomaly.Value
		switch metric {
		case "latency_p99":
			v = s.Values[anomaly.LatencyP99]
		case "knowledge_utilization":
			v = s.Values[anomaly.KVUtilization]
		case "slot_change_rate":
			v = s.Values[anomaly.SlotChangeRate]
		}
		return v.V, v.OK
	})
	names := make([]string, cfg.Producers())
	for p := range names {
		names[p] = sc.Name(p)
	}
	var st []alerting.AuditTransition
	start := time.Now()
	res := &Result{Config: cfg}
	var samples []anomaly.Sample
	base := Epoch.Unix() / 60
	for m := int64(0); m < cfg.Minutes(); m++ {
		samples = sc.Minute(m, samples)
		t0 := time.Now()
		eng.ObserveMinute(base+m, samples)
		res.EvalMax = max(res.EvalMax, time.Since(t0))
		now := Epoch.Add(time.Duration(m+1) * time.Minute)
		eng.Eval(now)
		current = make(map[string]*anomaly.Sample, len(samples))
		for i := range samples {
			current[samples[i].Producer] = &samples[i]
		}
		st = append(st, static.Eval(now, names)...)
	}
	res.Elapsed = time.Since(start)
	learning := int64(config.Default().AnomalyLearningPeriod) / int64(time.Minute)
	res.Detector = score("detector", sc, det, learning, true)
	res.Static = score("static", sc, st, 0, false)
	return res, nil
}

// firing is one alert's firing interval, in replay minutes.
type firing struct {
	rule       string
	start, end int64
}

// score turns transitions into per-kind detection and false alerts.
func score(name string, sc *Scenario, trs []alerting.AuditTransition, skip int64, detector bool) Side {
	byProducer := map[string][]firing{}
	open := map[string]int{} // rule|producer -> index in byProducer
	base := Epoch.Unix() / 60
	for _, t := range trs {
		m := t.At.Unix()/60 - base - 1 // Eval runs one minute after the minute it scores
		key := t.Rule + "|" + t.Producer
		switch t.State {
		case "firing":
			byProducer[t.Producer] = append(byProducer[t.Producer], firing{rule: t.Rule, start: m, end: math.MaxInt64})
			open[key] = len(byProducer[t.Producer]) - 1
		case "resolved":
			if i, ok := open[key]; ok {
				byProducer[t.Producer][i].end = m
				delete(open, key)
			}
		}
	}
	side := Side{Name: name}
	for _, kind := range Kinds() {
		kr := KindResult{Kind: kind}
		var delays []float64
		for _, in := range sc.Incidents {
			if in.Kind != kind {
				continue
			}
			kr.Total++
			best := int64(-1)
			for _, f := range byProducer[sc.Name(in.Producer)] {
				if detector && kind == KindStraggler && f.rule != "anomaly_straggler_rank" {
					continue
				}
				// Firing at some minute in [start, end+grace].
				if f.start <= in.End+grace && f.end > in.Start {
					at := max(f.start, in.Start)
					if best < 0 || at < best {
						best = at
					}
				}
			}
			if best >= 0 {
				kr.Detected++
				delays = append(delays, float64(best-in.Start)*60)
			} else {
				side.Missed = append(side.Missed, fmt.Sprintf("%s %s layer %d day %d %02d:%02d", kind, sc.Name(in.Producer), in.Layer,
					in.Start/1440+1, in.Start%1440/60, in.Start%60))
			}
		}
		kr.Recall = float64(kr.Detected) / float64(max(kr.Total, 1))
		kr.MedianDelay, kr.P90Delay = quantile(delays, 0.5), quantile(delays, 0.9)
		side.Kinds = append(side.Kinds, kr)
	}
	// False alerts: a firing that starts outside every incident window
	// of its producer (start to end + quiet), after the learning period.
	total := sc.Cfg.Minutes()
	for p := range sc.producers {
		covered := int64(0)
		for _, in := range sc.Incidents {
			if in.Producer == p {
				covered += in.End + quiet - in.Start
			}
		}
		side.ProducerDays += float64(total-skip-covered) / 1440
		for _, f := range byProducer[sc.Name(p)] {
			if f.start < skip {
				continue
			}
			blamed := slices.ContainsFunc(sc.Incidents, func(in Incident) bool {
				return in.Producer == p && f.start >= in.Start && f.start < in.End+quiet
			})
			if !blamed {
				side.FalseAlerts++
				side.FalseList = append(side.FalseList, fmt.Sprintf("%s %s day %d %02d:%02d", f.rule, sc.Name(p),
					f.start/1440+1, f.start%1440/60, f.start%60))
			}
		}
	}
	side.FalsePerProducerDay = float64(side.FalseAlerts) / side.ProducerDays
	return side
}

// quantile is the nearest-rank quantile (NaN for none).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// The goals, which the benchmark prints and TestGoals holds.
const (
	MinRecall              = 0.9
	MaxFalsePerProducerDay = 0.5
)

// MaxMedianDelay is the goal for a kind's median detection delay: 5
// minutes, 3 hours for a drift.
func MaxMedianDelay(kind string) time.Duration {
	if kind == KindDrift {
		return 3 * time.Hour
	}
	return 5 * time.Minute
}
