package alerting

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/selfmetrics"
	"github.com/agaobs/agaobs/internal/state"
)

// world drives an engine with events minute by minute: four TP ranks of
// one model, four layers each, retrievals, in simulated time.
type world struct {
	h      *harness
	minute int64 // unix minute being written
	names  []string
	// What each producer does; tests change these between minutes.
	latency map[string]func(layer int) float64
	gate    map[string]float64
	results map[string]int32
}

func newWorld(t *testing.T, cfg config.Config, st *state.Store) *world {
	names := []string{"tp0", "tp1", "tp2", "tp3"}
	w := &world{h: newHarness(t, cfg, st, names...), minute: base.Unix()/60 + 1, names: names,
		latency: map[string]func(int) float64{}, gate: map[string]float64{}, results: map[string]int32{}}
	ws := 4
	for _, n := range names {
		w.h.prods[n].SetIdentity(pipeline.Identity{Producer: n, Model: "llama", WorldSize: &ws})
		w.latency[n] = func(layer int) float64 { return float64(100 + 20*layer) }
		w.gate[n], w.results[n] = 0.5, 8
	}
	w.h.e.Eval(time.Unix(w.minute*60, 0)) // starts the first minute
	return w
}

// run writes n minutes of events and evaluates at each minute's end.
func (w *world) run(n int) {
	for range n {
		at := time.Unix(w.minute*60+10, 0)
		var evs []pipeline.Event
		for _, p := range w.names {
			for layer := range 4 {
				for i := range 50 {
					lat := w.latency[p](layer) * (1 + float64(i%10)/100) // a little spread
					evs = append(evs, pipeline.Event{Kind: pipeline.KindForward, Producer: w.h.prods[p], RecvNs: at.UnixNano(),
						Forward: pipeline.Forward{}.WithLatency(lat).WithGate(w.gate[p]).WithEntropy(2).WithLayer(int32(layer)).WithApplied(i%3 != 0)})
				}
			}
			for range 5 {
				evs = append(evs, pipeline.Event{Kind: pipeline.KindRetrieval, Producer: w.h.prods[p], RecvNs: at.UnixNano(),
					Retrieval: retrieval(pipeline.Retrieval{}.WithLayer(0).WithResults(w.results[p]).WithInjected(w.results[p] / 2))})
			}
		}
		w.h.write(evs...)
		w.minute++
		w.h.e.Eval(time.Unix(w.minute*60, 0))
		w.h.e.Eval(time.Unix(w.minute*60+30, 0))
	}
}

func anomalyConfig() config.Config {
	cfg := defaults()
	cfg.AnomalyLearningPeriod = config.Duration(10 * time.Minute)
	return cfg
}

// The default anomaly rules fire from events: a slower layer, a gate
// collapse, retrieval returning nothing, and a slow rank among its peers;
// each only for the producer concerned, with the detector's placeholders
// in the message.
func TestAnomalyRulesFireFromEvents(t *testing.T) {
	w := newWorld(t, anomalyConfig(), nil)
	w.run(15) // past the learning period
	if n := len(w.h.rec.got); n != 0 {
		t.Fatalf("%d notifications on steady traffic: %+v", n, w.h.rec.got)
	}
	// The fastest layer 40 % slower: the producer's p99 (set by its
	// slowest layer) does not move, the layer's ratio to it does.
	w.latency["tp0"] = func(layer int) float64 {
		if layer == 0 {
			return 1.4 * float64(100+20*layer)
		}
		return float64(100 + 20*layer)
	}
	w.gate["tp1"] = 0.05
	w.results["tp2"] = 0
	w.latency["tp3"] = func(layer int) float64 { return 1.3 * float64(100+20*layer) }
	w.run(6)
	want := map[string]string{
		"anomaly_latency_regression":   "tp0",
		"anomaly_gate_collapse":        "tp1",
		"anomaly_retrieval_starvation": "tp2",
		"anomaly_straggler_rank":       "tp3",
	}
	for rule, producer := range want {
		found := false
		for _, a := range w.h.rec.got {
			if a.Name != rule || a.Status != "firing" {
				continue
			}
			// The slow rank is slower than it was, too.
			if a.Producer != producer && !(rule == "anomaly_latency_regression" && a.Producer == "tp3") {
				t.Errorf("%s fired for %s, want only %s", rule, a.Producer, producer)
			}
			if a.Producer == producer {
				found = true
				if strings.Contains(a.Message, "error expanding") || strings.Contains(a.Message, "NaN") {
					t.Errorf("%s message %q", rule, a.Message)
				}
				t.Logf("%s %s: %s", rule, producer, a.Message)
			}
		}
		if !found {
			t.Errorf("%s did not fire for %s", rule, producer)
		}
	}
	for _, a := range w.h.rec.got {
		if a.Name == "anomaly_latency_regression" && a.Producer == "tp0" && !strings.Contains(a.Message, "layer 0)") {
			t.Errorf("latency regression message does not name layer 0: %q", a.Message)
		}
	}
	// Back to normal: the episodes resolve.
	w.latency["tp0"] = w.latency["tp1"]
	w.gate["tp1"], w.results["tp2"] = 0.5, 8
	w.latency["tp3"] = w.latency["tp1"]
	w.run(8)
	for rule, producer := range want {
		if s := w.h.state(rule, producer); s == "firing" || s == "pending" {
			t.Errorf("%s for %s still %s after recovery", rule, producer, s)
		}
	}
}

// Nothing alerts while the series learn, whatever the traffic does.
func TestAnomalyLearningPeriodAlertsNothing(t *testing.T) {
	w := newWorld(t, anomalyConfig(), nil)
	w.run(3)
	w.gate["tp1"] = 0.01
	w.latency["tp0"] = func(int) float64 { return 5000 }
	w.run(5)
	for _, a := range w.h.rec.got {
		if strings.HasPrefix(a.Name, "anomaly_") {
			t.Errorf("%s fired for %s during the learning period", a.Name, a.Producer)
		}
	}
	got := w.h.e.Anomalies(anomaly.Filter{Producer: "tp1", Signal: "gate_mean"})
	if len(got.Anomalies) == 0 || !got.Anomalies[0].Learning {
		t.Fatalf("want a learning gate_mean series for tp1, got %+v", got.Anomalies)
	}
}

func gather(t *testing.T, e *Engine) map[string][]*dto.Metric {
	t.Helper()
	set := selfmetrics.NewSet()
	set.Add("alerting", e.Collector("aga"))
	if err := selfmetrics.Check(set); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, f := range fams {
		out[f.GetName()] = f.GetMetric()
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// The scores, flags and the admin API's view after a straggler appears.
func TestAnomalyMetricsAndAPI(t *testing.T) {
	w := newWorld(t, anomalyConfig(), nil)
	w.run(12)
	w.latency["tp3"] = func(layer int) float64 { return 1.4 * float64(100+20*layer) }
	w.run(2)
	fams := gather(t, w.h.e)
	scores := fams["aga_anomaly_score"]
	layersSeen := map[string]bool{}
	for _, m := range scores {
		l := labels(m)
		if l["producer"] == "tp0" && l["signal"] == "latency_p99" {
			layersSeen[l["layer"]] = true
		}
	}
	for _, l := range []string{"", "0", "1", "2", "3"} {
		if !layersSeen[l] {
			t.Errorf("no aga_anomaly_score{producer=tp0,signal=latency_p99,layer=%q}", l)
		}
	}
	flag := func(fam, producer, signal string) float64 {
		for _, m := range fams[fam] {
			if l := labels(m); l["producer"] == producer && l["signal"] == signal {
				return m.GetGauge().GetValue()
			}
		}
		t.Errorf("no %s{producer=%s,signal=%s}", fam, producer, signal)
		return -1
	}
	if v := flag("aga_straggler", "tp3", "latency_p99"); v != 1 {
		t.Errorf("aga_straggler{tp3} = %v, want 1", v)
	}
	if v := flag("aga_straggler", "tp0", "latency_p99"); v != 0 {
		t.Errorf("aga_straggler{tp0} = %v, want 0", v)
	}
	if v := flag("aga_anomaly", "tp3", "latency_p99"); v != 1 {
		t.Errorf("aga_anomaly{tp3,latency_p99} = %v, want 1", v)
	}
	if v := flag("aga_anomaly", "tp0", "gate_mean"); v != 0 {
		t.Errorf("aga_anomaly{tp0,gate_mean} = %v, want 0", v)
	}
	if len(fams["agaobs_anomaly_series"]) != 1 || fams["agaobs_anomaly_series"][0].GetGauge().GetValue() < 4*(5*5) {
		t.Errorf("agaobs_anomaly_series = %v", fams["agaobs_anomaly_series"])
	}

	a := w.h.e.Anomalies(anomaly.Filter{Producer: "tp3"})
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Enabled    bool `json:"enabled"`
		Stragglers []struct {
			Producer   string  `json:"producer"`
			Signal     string  `json:"signal"`
			Straggling bool    `json:"straggling"`
			Ratio      float64 `json:"ratio"`
			Since      string  `json:"since"`
		} `json:"stragglers"`
		Anomalies []struct {
			Signal   string  `json:"signal"`
			Layer    string  `json:"layer"`
			Baseline float64 `json:"baseline"`
			Value    float64 `json:"value"`
			Score    float64 `json:"score"`
			At       string  `json:"at"`
		} `json:"anomalies"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Enabled || len(back.Anomalies) == 0 {
		t.Fatalf("API view %s", b)
	}
	found := false
	for _, s := range back.Stragglers {
		if s.Signal == "latency_p99" {
			found = s.Straggling && s.Ratio > 1.3 && s.Since != ""
		}
	}
	if !found {
		t.Errorf("the API does not show tp3 straggling on latency_p99 since a time: %s", b)
	}
	for _, x := range back.Anomalies {
		if x.Signal == "latency_p99" && x.Layer == "" && !(x.Value > x.Baseline && x.Score > 5 && x.At != "") {
			t.Errorf("tp3 latency_p99: %+v", x)
		}
	}
}

// Baselines survive a restart through the state file: the new engine
// needs no learning period and still sees a shift; a producer that takes
// the name over (a new process) keeps them.
func TestAnomalyBaselinesSurviveRestart(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := newWorld(t, anomalyConfig(), st)
	w.run(15)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.h.e.Run(ctx) // saves on the way out

	w2 := newWorld(t, anomalyConfig(), st)
	w2.minute = w.minute
	w2.h.e.Eval(time.Unix(w2.minute*60, 0))
	a := w2.h.e.Anomalies(anomaly.Filter{Producer: "tp1", Signal: "gate_mean"})
	if a.Series < 4*25 {
		t.Fatalf("restored %d series, want every producer's", a.Series)
	}
	// New processes under the old names: one minute of data, no learning.
	for _, n := range w2.names {
		w2.h.prods[n] = pipeline.NewProducer(n, n+"-2", 2, 2, "r2", *w.h.prods[n].Identity())
	}
	w2.gate["tp1"] = 0.05
	w2.run(4)
	if w2.h.rec.sent("anomaly_gate_collapse", "firing") == 0 {
		got := w2.h.e.Anomalies(anomaly.Filter{Producer: "tp1", Signal: "gate_mean"})
		t.Fatalf("gate collapse after the restart did not fire: %+v", got.Anomalies)
	}
}

// anomaly_enabled false: no detector, no anomaly rules or series; a
// reload switches it on.
func TestAnomalyDisabled(t *testing.T) {
	cfg := anomalyConfig()
	cfg.AnomalyEnabled = false
	w := newWorld(t, cfg, nil)
	w.run(3)
	for _, r := range w.h.e.rules {
		if strings.HasPrefix(r.Name, "anomaly_") {
			t.Errorf("rule %s loaded with anomaly_enabled false", r.Name)
		}
	}
	if fams := gather(t, w.h.e); len(fams["aga_anomaly_score"]) != 0 || len(fams["agaobs_anomaly_series"]) != 0 {
		t.Errorf("anomaly series exported while disabled")
	}
	if a := w.h.e.Anomalies(anomaly.Filter{}); a.Enabled || len(a.Anomalies) != 0 {
		t.Errorf("API: %+v", a)
	}
	cfg.AnomalyEnabled = true
	w.h.e.Reload(cfg)
	w.run(2)
	if a := w.h.e.Anomalies(anomaly.Filter{}); !a.Enabled || a.Series == 0 {
		t.Errorf("after the reload: %+v", a)
	}
}

// A producer's hostile layer indexes and values cost bounded memory and
// never break the minute.
func TestAnomalyHostileLayers(t *testing.T) {
	w := newWorld(t, anomalyConfig(), nil)
	at := time.Unix(w.minute*60+5, 0)
	var evs []pipeline.Event
	for _, l := range []int32{-1, 255, 256, 1 << 30, -(1 << 30)} {
		evs = append(evs, pipeline.Event{Kind: pipeline.KindForward, Producer: w.h.prods["tp0"], RecvNs: at.UnixNano(),
			Forward: pipeline.Forward{}.WithLatency(1e300).WithGate(-5).WithLayer(l)})
	}
	w.h.write(evs...)
	w.run(2)
	acc := w.h.e.targets["tp0"].acc
	if len(acc.layers) > anomaly.DefaultMaxLayers {
		t.Fatalf("%d layer accumulators", len(acc.layers))
	}
}

// A producer's extreme but finite values (one forward a minute with gate
// 1.7e308, then -1.7e308) overflow a baseline's difference: the API still
// encodes, the metrics still gather.
func TestAnomalyExtremeValuesStayEncodable(t *testing.T) {
	cfg := anomalyConfig()
	cfg.AnomalyLearningPeriod = config.Duration(time.Minute)
	h := newHarness(t, cfg, nil, "tp0")
	minute := base.Unix()/60 + 1
	h.e.Eval(time.Unix(minute*60, 0))
	for i := range 6 {
		g := 1.7e308
		if i%2 == 1 {
			g = -1.7e308
		}
		h.write(pipeline.Event{Kind: pipeline.KindForward, Producer: h.prods["tp0"], RecvNs: time.Unix(minute*60+1, 0).UnixNano(),
			Forward: pipeline.Forward{}.WithLatency(100).WithGate(g).WithLayer(0)})
		minute++
		h.e.Eval(time.Unix(minute*60, 0))
	}
	a := h.e.Anomalies(anomaly.Filter{Producer: "tp0", Signal: "gate_mean", AllLayers: true})
	if len(a.Anomalies) == 0 {
		t.Fatal("no gate_mean series for tp0")
	}
	if _, err := json.Marshal(a); err != nil {
		t.Fatalf("the API view does not encode: %v", err)
	}
	gather(t, h.e)
}
