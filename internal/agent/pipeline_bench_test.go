package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/shm"
)

// BenchmarkPipeline measures the full pipeline on one core (GOMAXPROCS=1):
// 8 rings pre-filled with 1.2 M records (forwards on 3 layers, one
// retrieval in 15), drained by the consumer, decoded and dispatched to
// every sink the agent builds from the default config (counter, audit
// store, metrics exporter, event log to a file, alert engine with anomaly
// detection, producer health, live view; GPU and eBPF are collectors, not
// sinks, and are off). One op = one event; the time runs until every sink
// has processed every event.
func BenchmarkPipeline(b *testing.B) { benchPipeline(b, 3, config.Default()) }

// BenchmarkPipelineOTLP is BenchmarkPipeline with OTLP off and on (every
// signal, default sampling; the collector's address refuses connections,
// so what the sink queues is dropped and counted): what OTLP adds per
// event on the consumer's core (the span decision, the sink's filter).
// -count interleaves the two.
func BenchmarkPipelineOTLP(b *testing.B) {
	for _, on := range []bool{false, true} {
		cfg := config.Default()
		cfg.OTLPEnabled, cfg.OTLPEndpoint, cfg.OTLPInsecure = on, "127.0.0.1:1", true
		b.Run(fmt.Sprintf("otlp=%v", on), func(b *testing.B) { benchPipeline(b, 3, cfg) })
	}
}

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

// BenchmarkPipelineFloor is BenchmarkPipeline with sinks taken away: all
// of them (as BenchmarkPipeline), then without the per-forward aggregating
// sinks (metrics, alert engine, live view), then without the event log
// too (the consumer, counter, audit store and producer health). Its last
// two rows are what any change to the aggregating sinks, or to the event
// log, can reach at most on the same machine and day.
func BenchmarkPipelineFloor(b *testing.B) {
	for _, tc := range []struct {
		name string
		off  func(*config.Config)
	}{
		{"sinks=all", func(*config.Config) {}},
		{"sinks=log", func(c *config.Config) {
			c.PrometheusEnabled, c.AlertEnabled, c.AdminListenAddress = false, false, ""
		}},
		{"sinks=none", func(c *config.Config) {
			c.PrometheusEnabled, c.AlertEnabled, c.AdminListenAddress, c.LogEnabled = false, false, "", false
		}},
	} {
		cfg := config.Default()
		tc.off(&cfg)
		b.Run(tc.name, func(b *testing.B) { benchPipeline(b, 3, cfg) })
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
			w, err := shm.CreateWriter(filepath.Join(dir, "rings"), shm.WriterOptions{Class: shm.ClassHot, Capacity: 16 << 20, Instance: uint32(r),
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
		a := benchAgent(b, cfg, dir)
		ctx, cancel := context.WithCancel(context.Background())
		doneC := make(chan error, 1)
		// Every record, plus one HELLO and one producer_appeared per ring.
		want := uint64(rings8 * (perRing + 2))
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		a.disp.Start()
		auditCtx, stopAudit := context.WithCancel(context.Background())
		auditDone := make(chan struct{})
		go func() { defer close(auditDone); _ = a.audit.Run(auditCtx) }()
		go func() { doneC <- a.consumer.Run(ctx) }()
		deadline := time.Now().Add(time.Minute)
		for counted(a) < want {
			if time.Now().After(deadline) {
				b.Fatalf("consumer did not finish: %d of %d counted; %+v", counted(a), want, a.disp.Stats())
			}
			time.Sleep(200 * time.Microsecond)
		}
		cancel()
		<-doneC
		// Close drains every queue (lingering ones included) and waits;
		// the audit writer stops after it, as in Agent.Run.
		a.audit.Closing()
		a.disp.Close()
		stopAudit()
		<-auditDone
		total += time.Since(start)
		events += rings8 * perRing
		b.StopTimer()
		for _, s := range a.disp.Stats() {
			if s.Dropped != 0 {
				b.Fatalf("sink %s dropped %d events", s.Name, s.Dropped)
			}
		}
		a.consumer.Close()
		for _, s := range a.servers {
			s.Close()
		}
		a.closeAll()
		os.RemoveAll(dir)
	}
	b.ReportMetric(float64(events)/total.Seconds(), "events/s")
}

// benchAgent builds (without running) an agent from cfg with its files
// under dir and its listeners on free loopback ports.
func benchAgent(b *testing.B, cfg config.Config, dir string) *Agent {
	cfg.RingDir = filepath.Join(dir, "rings")
	cfg.StatePath = filepath.Join(dir, "state.db")
	cfg.AuditStoragePath = filepath.Join(dir, "aga_audit.db")
	cfg.LogFile, cfg.LogStderr = filepath.Join(dir, "events.log"), false
	cfg.PrometheusHost, cfg.PrometheusPort = "127.0.0.1", 0
	cfg.HealthHost, cfg.HealthPort = "127.0.0.1", 0
	if cfg.AdminListenAddress != "" { // "" turns the admin listener and the live view off
		cfg.AdminListenAddress = "127.0.0.1:0"
	}
	cfg.GPUEnabled, cfg.BPFEnabled = false, false
	a, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// counted is polled every 200 µs while the timer runs: Total, not Counts,
// whose maps made about 9 % of the bytes allocated in the timed part
// (no change in events/s beyond the noise, measured).
func counted(a *Agent) uint64 { return a.counter.Total() }
