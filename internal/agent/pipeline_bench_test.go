package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/eventlog"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/shm"
)

// BenchmarkPipeline measures the full pipeline on one core (GOMAXPROCS=1):
// 8 rings pre-filled with 1.2 M records (forwards on 3 layers, one
// retrieval in 15), drained by the consumer, decoded, dispatched to the
// metrics exporter, the event log (level INFO: forwards are not formatted)
// the counter sink and the alert engine. One op = one event; the time runs until every
// sink has processed every event.
func BenchmarkPipeline(b *testing.B) { benchPipeline(b, 3, config.Default()) }

// BenchmarkPipelineAnomaly is BenchmarkPipeline with forwards on 96
// layers, with the anomaly detector off and on (issue #18: <= 5 % more
// CPU per event); -count interleaves the two.
func BenchmarkPipelineAnomaly(b *testing.B) {
	for _, on := range []bool{false, true} {
		cfg := config.Default()
		cfg.AnomalyEnabled = on
		b.Run(fmt.Sprintf("anomaly=%v", on), func(b *testing.B) { benchPipeline(b, 96, cfg) })
	}
}

func benchPipeline(b *testing.B, layers int, cfg config.Config) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const rings8, perRing = 8, 150_000
	var total time.Duration
	var events int
	for done := 0; done < b.N; done += rings8 * perRing {
		b.StopTimer()
		dir, err := os.MkdirTemp("/dev/shm", "agaobs-pipe-")
		if err != nil {
			b.Fatal(err)
		}
		for r := 0; r < rings8; r++ {
			w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 16 << 20, Instance: uint32(r),
				Identity: shm.Identity{Producer: "bench-" + string(rune('a'+r))}})
			if err != nil {
				b.Fatal(err)
			}
			f := shm.Forward{GateMean: 0.4, EntropyMean: 1.5, LatencyUs: 180, Fields: 31}
			ret := shm.Retrieval{Layer: 29, ResultsCount: 3, InjectedCount: 2, Fields: 15}
			scores := []float64{0.9, 0.7}
			for i := 0; i < perRing; i++ {
				if i%15 == 14 {
					if err := w.EmitRetrieval(time.Now().UnixNano(), &ret, scores, nil); err != nil {
						b.Fatal(err)
					}
					continue
				}
				f.Layer = int32(29 + i%layers)
				if layers > 3 {
					f.Layer = int32(i % layers)
				}
				if err := w.EmitForward(time.Now().UnixNano(), &f); err != nil {
					b.Fatal(err)
				}
			}
			w.Close()
		}
		disp := pipeline.NewDispatcher(nil)
		exp := metrics.New(metrics.Options{})
		logSink, _ := eventlog.New(eventlog.Options{Level: "INFO", Out: io.Discard})
		disp.Register(exp, pipeline.SinkOptions{QueueSize: 1 << 16})
		disp.Register(logSink, pipeline.SinkOptions{QueueSize: 1 << 16})
		disp.Register(pipeline.NewCounter(), pipeline.SinkOptions{QueueSize: 1 << 16})
		alerts, err := alerting.New(alerting.Options{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		disp.Register(alerts, pipeline.SinkOptions{QueueSize: 1 << 16})
		disp.Start()
		c, err := rings.New(rings.Options{Dir: dir, Group: -1, Dispatcher: disp, Tunables: rings.Tunables{Retention: time.Hour}})
		if err != nil {
			b.Fatal(err)
		}
		// What each sink must have written: every record, plus one HELLO
		// (counter only) and one producer_appeared event per ring.
		want := map[string]uint64{
			"counter":  rings8 * (perRing + 2),
			"metrics":  rings8 * (perRing + 1),
			"log":      rings8 * perRing,
			"alerting": rings8 * (perRing + 1),
		}
		ctx, cancel := context.WithCancel(context.Background())
		doneC := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { doneC <- c.Run(ctx) }()
		deadline := time.Now().Add(time.Minute)
		for finished := false; !finished; {
			if time.Now().After(deadline) {
				b.Fatalf("sinks did not finish: %+v", disp.Stats())
			}
			finished = true
			for _, s := range disp.Stats() {
				if s.Written < want[s.Name] {
					finished = false
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
		total += time.Since(start)
		events += rings8 * perRing
		b.StopTimer()
		cancel()
		<-doneC
		disp.Close()
		c.Close()
		for _, s := range disp.Stats() {
			if s.Dropped != 0 {
				b.Fatalf("sink %s dropped %d events", s.Name, s.Dropped)
			}
		}
		os.RemoveAll(dir)
	}
	b.ReportMetric(float64(events)/total.Seconds(), "events/s")
}
