package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
)

// Options configures the demo supervisor.
type Options struct {
	// Exe is the agaobs-agent binary the producers re-execute.
	Exe string
	// ChildArgs are passed to every `demo-producer` child (config flags).
	ChildArgs []string
	Producers int // default 2 (two tensor-parallel ranks)
	// The last rank is SIGKILLed first after KillFirst, then every
	// KillEvery, and restarted after RestartAfter.
	KillFirst, KillEvery, RestartAfter time.Duration
	SummaryEvery                       time.Duration
	// FirstSummary is when the first table is printed (default 2s, or
	// SummaryEvery if that is shorter).
	FirstSummary time.Duration
	// BurstEvery is the victim rank's overload burst interval (default 30s).
	BurstEvery time.Duration
	Out        io.Writer
	Logger     *slog.Logger
	Rings      func() []rings.RingInfo
	Counter    *pipeline.Counter
}

func (o *Options) fill() {
	if o.Producers <= 0 {
		o.Producers = 2
	}
	if o.KillFirst <= 0 {
		o.KillFirst = 40 * time.Second
	}
	if o.KillEvery <= 0 {
		o.KillEvery = 3 * time.Minute
	}
	if o.RestartAfter <= 0 {
		o.RestartAfter = 2 * time.Second
	}
	if o.BurstEvery <= 0 {
		o.BurstEvery = 30 * time.Second
	}
	if o.SummaryEvery <= 0 {
		o.SummaryEvery = 5 * time.Second
	}
	if o.FirstSummary <= 0 {
		o.FirstSummary = min(2*time.Second, o.SummaryEvery)
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run supervises the producers and prints the summary until ctx ends, then
// stops the producers (SIGTERM, so they close their rings) and returns.
func Run(ctx context.Context, opts Options) error {
	opts.fill()
	var wg sync.WaitGroup
	defer wg.Wait()
	for rank := 0; rank < opts.Producers; rank++ {
		victim := rank == opts.Producers-1
		wg.Add(1)
		go func() {
			defer wg.Done()
			superviseRank(ctx, opts, rank, victim)
		}()
	}
	// The first table comes early (FirstSummary), so a newcomer sees it
	// within seconds of the start; then one every SummaryEvery.
	start := time.Now()
	next := time.NewTimer(opts.FirstSummary)
	defer next.Stop()
	var prev map[string]map[string]uint64
	last := start
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-next.C:
			prev = printSummary(opts, now.Sub(start), now.Sub(last), prev)
			last = now
			next.Reset(opts.SummaryEvery)
		}
	}
}

// superviseRank keeps one rank running; the victim rank is SIGKILLed on a
// schedule so the demo shows producer death and identity take-over.
func superviseRank(ctx context.Context, opts Options, rank int, victim bool) {
	killAt := time.Now().Add(opts.KillFirst)
	for ctx.Err() == nil {
		args := append([]string{"demo-producer", "--rank", strconv.Itoa(rank), "--world-size", strconv.Itoa(opts.Producers)}, opts.ChildArgs...)
		if victim {
			// A small hot ring and periodic bursts: drops (== gaps).
			args = append(args, "--ring-hot-bytes", "262144", "--burst-every", opts.BurstEvery.String())
		}
		exited := make(chan error, 1)
		var cmd *exec.Cmd
		started := make(chan error, 1)
		go func() {
			// Pdeathsig belongs to the thread that forked: keep it alive
			// until the child exits.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cmd = exec.Command(opts.Exe, args...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				started <- err
				return
			}
			started <- nil
			exited <- cmd.Wait()
		}()
		if err := <-started; err != nil {
			opts.Logger.Error("demo producer failed to start", "rank", rank, "err", err)
			return
		}
		var kill <-chan time.Time
		if victim {
			kill = time.After(time.Until(killAt))
		}
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			return
		case <-kill:
			fmt.Fprintf(opts.Out, "demo: SIGKILL producer rank %d (pid %d); it restarts in %v and takes its name over\n", rank, cmd.Process.Pid, opts.RestartAfter)
			_ = cmd.Process.Kill()
			<-exited
			killAt = time.Now().Add(opts.KillEvery)
		case err := <-exited:
			opts.Logger.Warn("demo producer exited", "rank", rank, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(opts.RestartAfter):
		}
	}
}

// printSummary prints the table; the rates are over since, the time since
// the previous table (or the start).
func printSummary(opts Options, el, since time.Duration, prev map[string]map[string]uint64) map[string]map[string]uint64 {
	counts := opts.Counter.Counts()
	w := tabwriter.NewWriter(opts.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\n== agaobs demo, %v ==\n", el.Round(time.Second))
	fmt.Fprintln(w, "PRODUCER\tCLASS\tSTATE\tHOST PID\tFILL\tWRITTEN\tDROPPED\tLOST\tCORRUPT\tEVENTS/S (fwd/ret/audit)")
	secs := max(since.Seconds(), 0.001)
	for _, ri := range opts.Rings() {
		rate := ""
		if ri.Class == "hot" {
			c, p := counts[ri.Producer], prev[ri.Producer]
			rate = fmt.Sprintf("%.0f/%.1f/%.1f", float64(c["forward"]-p["forward"])/secs,
				float64(c["retrieval"]-p["retrieval"])/secs, float64(c["audit"]-p["audit"])/secs)
		}
		state := ri.State
		if ri.Reason != "" {
			state += " (" + ri.Reason + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%.1f%%\t%d\t%d\t%d\t%d\t%s\n", ri.Producer, ri.Class, state, ri.HostPID,
			100*ri.Fill, ri.Written, ri.Dropped, ri.Lost, ri.Corrupt, rate)
	}
	lat := opts.Counter.Latency()
	fmt.Fprintf(w, "event → sink latency: p50 %v, p99 %v (%d forwards)\n", lat.Quantile(0.5), lat.Quantile(0.99), lat.Count)
	w.Flush()
	return counts
}
