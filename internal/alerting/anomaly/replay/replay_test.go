package replay

import (
	"fmt"
	"math"
	"reflect"
	"testing"
)

// TestGoals replays the small scenario and holds the detector to issue
// #18's goals; the full size runs in `agaobs-bench anomaly` (make perf).
func TestGoals(t *testing.T) {
	res, err := Run(Small)
	if err != nil {
		t.Fatal(err)
	}
	logSide(t, res.Detector)
	logSide(t, res.Static)
	if g := res.Detector.FalsePerProducerDay; g > MaxFalsePerProducerDay {
		t.Errorf("detector: %.2f false alerts per producer-day, goal <= %.1f: %v", g, MaxFalsePerProducerDay, res.Detector.FalseList)
	}
	for i, k := range res.Detector.Kinds {
		if k.Total == 0 {
			t.Errorf("%s: no incident placed", k.Kind)
			continue
		}
		if k.Recall < MinRecall {
			t.Errorf("%s: recall %.2f, goal >= %.1f (missed %v)", k.Kind, k.Recall, MinRecall, res.Detector.Missed)
		}
		if goal := MaxMedianDelay(k.Kind); !(k.MedianDelay <= goal.Seconds()) {
			t.Errorf("%s: median delay %.0fs, goal <= %v", k.Kind, k.MedianDelay, goal)
		}
		if s := res.Static.Kinds[i]; s.Recall > k.Recall {
			t.Errorf("%s: the static rules found more (%.2f) than the detector (%.2f)", k.Kind, s.Recall, k.Recall)
		}
	}
}

func logSide(t *testing.T, side Side) {
	t.Logf("%s: %d false alerts over %.1f producer-days = %.2f", side.Name, side.FalseAlerts, side.ProducerDays, side.FalsePerProducerDay)
	for _, k := range side.Kinds {
		t.Logf("  %-16s %2d/%-2d recall %.2f median %5.0fs p90 %5.0fs", k.Kind, k.Detected, k.Total, k.Recall, k.MedianDelay, k.P90Delay)
	}
}

// TestDeterministic: the same seed gives the same scores, another seed
// another scenario.
func TestDeterministic(t *testing.T) {
	cfg := Small
	cfg.Days, cfg.Layers = 3, 4
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Run(cfg)
	// Compared as text: a kind nothing detected has NaN delays.
	if fmt.Sprintf("%+v %+v", a.Detector, a.Static) != fmt.Sprintf("%+v %+v", b.Detector, b.Static) {
		t.Fatalf("two runs of seed %d differ:\n%+v\n%+v", cfg.Seed, a.Detector, b.Detector)
	}
	s1, _ := NewScenario(cfg)
	cfg.Seed++
	s2, _ := NewScenario(cfg)
	if reflect.DeepEqual(s1.Incidents, s2.Incidents) {
		t.Fatal("seeds 1 and 2 placed the same incidents")
	}
}

// TestScenarioLabels checks the generator against its own labels: every
// kind is placed, within the replay and after day 1, never two incidents
// on one producer within two hours, and an incident changes what it says.
func TestScenarioLabels(t *testing.T) {
	sc, err := NewScenario(Small)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i, in := range sc.Incidents {
		count[in.Kind]++
		if in.Start < 1440 || in.End > Small.Minutes() || in.End <= in.Start {
			t.Errorf("incident %+v outside days 2..%d", in, Small.Days)
		}
		for _, o := range sc.Incidents[i+1:] {
			if o.Producer == in.Producer && o.Start < in.End+120 && in.Start < o.End+120 {
				t.Errorf("incidents %+v and %+v overlap on one producer", in, o)
			}
		}
	}
	for _, k := range Kinds() {
		if count[k] == 0 {
			t.Errorf("kind %s not placed", k)
		}
	}
	// The injection is visible in the generated aggregates.
	var straggler, gate *Incident
	for i := range sc.Incidents {
		switch sc.Incidents[i].Kind {
		case KindStraggler:
			straggler = &sc.Incidents[i]
		case KindGateCollapse:
			gate = &sc.Incidents[i]
		}
	}
	e := sc.effects(straggler.Producer, straggler.Start)
	if math.Abs(e.lat-1.25) > 1e-9 {
		t.Errorf("straggler effect %v, want latency x1.25", e.lat)
	}
	if e := sc.effects(gate.Producer, gate.Start+1); e.gateTo != 0.05 {
		t.Errorf("gate collapse effect %+v", e)
	}
	if e := sc.effects(gate.Producer, gate.End); e.gateTo != 0 {
		t.Errorf("gate collapse lasts past its end: %+v", e)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{{Days: 1, Models: 1, Ranks: 4, Layers: 1, PerKind: 1}, {Days: 3, Models: 1, Ranks: 2, Layers: 1, PerKind: 1}} {
		if _, err := NewScenario(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
