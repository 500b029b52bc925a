package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/alerting/anomaly/replay"
)

// anomalyKindJSON is one line of `agaobs-bench anomaly --json`.
type anomalyKindJSON struct {
	Side               string   `json:"side"` // detector or static
	Kind               string   `json:"kind"`
	Recall             float64  `json:"recall"`
	MedianDelaySeconds *float64 `json:"median_delay_seconds"`
	P90DelaySeconds    *float64 `json:"p90_delay_seconds"`
	Incidents          int      `json:"incidents"`
}

type anomalySummaryJSON struct {
	Side                      string  `json:"side"`
	FalseAlertsPerProducerDay float64 `json:"false_alerts_per_producer_day"`
	FalseAlerts               int     `json:"false_alerts"`
	ProducerDays              float64 `json:"producer_days"`
	ElapsedSeconds            float64 `json:"elapsed_seconds"`
}

func num(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// anomalyBench replays the labelled scenario (internal/alerting/anomaly/replay)
// and prints per incident kind the detector's and the static rules'
// recall and delays, and their false alerts per producer-day.
func anomalyBench(args []string) error {
	fs := pflag.NewFlagSet("anomaly", pflag.ContinueOnError)
	cfg := replay.Full
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "scenario seed")
	fs.IntVar(&cfg.Days, "days", cfg.Days, "simulated days")
	fs.IntVar(&cfg.Layers, "layers", cfg.Layers, "layers per producer")
	fs.IntVar(&cfg.PerKind, "per-kind", cfg.PerKind, "incidents per kind")
	asJSON := fs.Bool("json", false, "one JSON object per incident kind and side, then one summary per side")
	verbose := fs.BoolP("verbose", "v", false, "list false alerts and missed incidents")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := replay.Run(cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		for _, side := range []replay.Side{res.Detector, res.Static} {
			for _, k := range side.Kinds {
				if err := enc.Encode(anomalyKindJSON{Side: side.Name, Kind: k.Kind, Recall: k.Recall, Incidents: k.Total,
					MedianDelaySeconds: num(k.MedianDelay), P90DelaySeconds: num(k.P90Delay)}); err != nil {
					return err
				}
			}
		}
		for _, side := range []replay.Side{res.Detector, res.Static} {
			if err := enc.Encode(anomalySummaryJSON{Side: side.Name, FalseAlertsPerProducerDay: side.FalsePerProducerDay,
				FalseAlerts: side.FalseAlerts, ProducerDays: side.ProducerDays, ElapsedSeconds: res.Elapsed.Seconds()}); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Printf("Replay: seed %d, %d days, %d models x %d ranks, %d layers, %d incidents per kind; %.1f s, longest detector minute %v\n\n",
		cfg.Seed, cfg.Days, cfg.Models, cfg.Ranks, cfg.Layers, cfg.PerKind, res.Elapsed.Seconds(), res.EvalMax.Round(time.Microsecond))
	fmt.Println("| incident kind | detector recall | median delay | p90 delay | static rules recall | median delay | goal |")
	fmt.Println("|---|---|---|---|---|---|---|")
	ok := true
	for i, k := range res.Detector.Kinds {
		s := res.Static.Kinds[i]
		goal := replay.MaxMedianDelay(k.Kind)
		met := k.Recall >= replay.MinRecall && k.MedianDelay <= goal.Seconds()
		ok = ok && met
		fmt.Printf("| %s | %.2f (%d/%d) | %s | %s | %.2f (%d/%d) | %s | recall >= %.1f, median <= %v %s |\n", k.Kind, k.Recall, k.Detected,
			k.Total, delay(k.MedianDelay), delay(k.P90Delay), s.Recall, s.Detected, s.Total, delay(s.MedianDelay), replay.MinRecall, goal, mark(met))
	}
	fa := res.Detector.FalsePerProducerDay <= replay.MaxFalsePerProducerDay
	ok = ok && fa
	fmt.Printf("| false alerts per producer-day | %.2f (%d over %.1f) | | | %.2f (%d over %.1f) | | <= %.1f %s |\n",
		res.Detector.FalsePerProducerDay, res.Detector.FalseAlerts, res.Detector.ProducerDays,
		res.Static.FalsePerProducerDay, res.Static.FalseAlerts, res.Static.ProducerDays, replay.MaxFalsePerProducerDay, mark(fa))
	if *verbose {
		for _, side := range []replay.Side{res.Detector, res.Static} {
			for _, f := range side.FalseList {
				fmt.Printf("%s false alert: %s\n", side.Name, f)
			}
			for _, m := range side.Missed {
				fmt.Printf("%s missed: %s\n", side.Name, m)
			}
		}
	}
	if !ok {
		return fmt.Errorf("a goal was missed")
	}
	return nil
}

func delay(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return (time.Duration(s) * time.Second).String()
}

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

// anomalyCostResult is the detector's CPU cost in the agent.
type anomalyCostResult struct {
	Producers   int       `json:"producers"`
	Layers      int       `json:"layers"`
	Rate        int       `json:"rate_total"`
	WindowSec   float64   `json:"window_seconds"`
	OnCPUPerM   []float64 `json:"on_cpu_seconds_per_million"`
	OffCPUPerM  []float64 `json:"off_cpu_seconds_per_million"`
	PairRatios  []float64 `json:"pair_ratios"` // on / off of each adjacent pair
	Ratio       float64   `json:"ratio"`       // the median of PairRatios
	MinuteMaxMs float64   `json:"minute_max_ms"`
}

// anomalyCost runs one agent under load and switches anomaly_enabled on
// and off (SIGHUP with the other config file) window by window: agent
// CPU-seconds per million events consumed, with and without the detector,
// in the same run.
func anomalyCost(args []string) error {
	fs := pflag.NewFlagSet("anomaly-cost", pflag.ContinueOnError)
	agentBin := fs.String("agent", "bin/agaobs-agent", "agent binary")
	producers := fs.Int("producers", 8, "producer processes")
	layers := fs.Int("layers", 96, "layers each producer's forwards cycle through")
	rate := fs.Int("rate", 100000, "forward events per second, all producers together")
	window := fs.Duration("window", 5*time.Second, "one measurement window")
	pairs := fs.Int("pairs", 24, "window pairs, interleaved on-off, off-on, ... (ABBA)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	null := fs.Bool("null", false, "calibration: keep the detector on in both windows of a pair (the pair ratios' spread is the measurement's noise)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The config file the SIGHUPs switch; it lives beside the agent's
	// work directory, which does not exist before the agent.
	cfgDir, err := os.MkdirTemp("", "agaobs-bench-anomaly-cfg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cfgDir)
	cfgPath := filepath.Join(cfgDir, "agaobs.yaml")
	writeCfg := func(on bool) error {
		return os.WriteFile(cfgPath, fmt.Appendf(nil, "anomaly_enabled: %v\n", on), 0o644)
	}
	if err := writeCfg(true); err != nil {
		return err
	}
	ag, err := startPacedAgent(*agentBin, "anomaly", 18290, "--config", cfgPath)
	if err != nil {
		return err
	}
	defer ag.Close()
	if err := ag.Load(*producers, *rate / *producers, *layers, time.Duration(2**pairs)*(*window+2*time.Second)+30*time.Second); err != nil {
		return err
	}
	metrics := ag.metrics
	time.Sleep(5 * time.Second) // producers attached, queues warm
	res := anomalyCostResult{Producers: *producers, Layers: *layers, Rate: *rate, WindowSec: window.Seconds()}
	measure := func() (float64, error) {
		e0 := counterSum(scrapeBody(metrics), "agaobs_ring_events_total")
		c0, err := procCPU(ag.Pid())
		if err != nil {
			return 0, err
		}
		time.Sleep(*window)
		c1, err := procCPU(ag.Pid())
		if err != nil {
			return 0, err
		}
		e1 := counterSum(scrapeBody(metrics), "agaobs_ring_events_total")
		if e1 <= e0 {
			return 0, fmt.Errorf("no events consumed in a window")
		}
		return (c1 - c0).Seconds() / ((e1 - e0) / 1e6), nil
	}
	for i := range *pairs {
		// ABBA: every other pair measures off first, so that whatever the
		// first window after a reload costs falls on both sides alike.
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, on := range order {
			if err := writeCfg(on || *null); err != nil {
				return err
			}
			if err := ag.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				return err
			}
			time.Sleep(2 * time.Second) // the reload applied
			v, err := measure()
			if err != nil {
				return err
			}
			if on {
				res.OnCPUPerM = append(res.OnCPUPerM, v)
				res.MinuteMaxMs = max(res.MinuteMaxMs, 1e3*counterSum(scrapeBody(metrics), "agaobs_anomaly_minute_duration_seconds"))
			} else {
				res.OffCPUPerM = append(res.OffCPUPerM, v)
			}
		}
	}
	// Windows of one mode vary by up to 2x (how the consumer's wake-ups
	// fall against the producers' 1 ms batches; --null measures it): each
	// pair's ratio, then their median.
	for i := range res.OnCPUPerM {
		res.PairRatios = append(res.PairRatios, res.OnCPUPerM[i]/res.OffCPUPerM[i])
	}
	res.Ratio = median(res.PairRatios)
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("| producers × layers | rate | window × pairs | agent CPU-s per 1M events, anomaly off | on | ratio | detector minute (last, max seen) |\n|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d × %d | %d/s | %v × %d | %.3f | %.3f | %.3f (median of pairs %v; goal <= 1.05) %s | %.2f ms |\n", res.Producers, res.Layers, res.Rate,
		*window, *pairs, mean(res.OffCPUPerM), mean(res.OnCPUPerM), res.Ratio, res.PairRatios, mark(res.Ratio <= 1.05), res.MinuteMaxMs)
	return nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
