package reliability_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// The helper processes of this file. TestMain (reliability_test.go) knows
// the older kinds; these run from init, before it.
func init() {
	switch os.Getenv("AGAOBS_RELIABILITY_HELPER") {
	case "hostile-counted":
		countedProducer()
		os.Exit(0)
	case "hostile-truncate":
		truncatingProducer()
		os.Exit(0)
	case "hostile-hello":
		helloProducer()
		os.Exit(0)
	}
}

const (
	hostileCap     = 1 << 16
	offConsumerPID = 0x20C // format §2: the agent's pid, stored once it consumes the ring
	// Bounds on waits for the agent and the helpers: generous, since a
	// loaded 2-vCPU machine can stall a process for seconds, and only a
	// failure waits them out.
	hostileStartLimit = 60 * time.Second
	hostileWait       = 30 * time.Second
)

func helperFail(format string, a ...any) {
	fmt.Printf("error "+format+"\n", a...)
	os.Exit(1)
}

// countedProducer writes forward records (about 8 a millisecond) until its
// stdin closes, then closes its ring and prints "done <written> <dropped>":
// the agent must count exactly what it committed.
func countedProducer() {
	id := shm.Identity{Producer: os.Getenv("AGAOBS_PRODUCER"), Role: "counted"}
	w, err := shm.CreateWriter(os.Getenv("AGAOBS_RING_DIR"), shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 20, Identity: id})
	if err != nil {
		helperFail("%v", err)
	}
	fmt.Println("ready", w.Path())
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	for i := 0; ; i++ {
		select {
		case <-stop:
			st := w.Stats()
			w.Close()
			fmt.Println("done", st.Written, st.Dropped)
			return
		default:
		}
		f := shm.Forward{GateMean: float64(i), LatencyUs: 2 * float64(i), Fields: 31}
		_ = w.EmitForward(time.Now().UnixNano(), &f)
		if i%8 == 0 {
			w.Heartbeat()
			time.Sleep(time.Millisecond) // pacing, not synchronisation
		}
	}
}

// truncatingProducer creates a ring, writes into it until the agent has
// accepted it (the agent's pid appears in the consumer block), waits
// AGAOBS_HOSTILE_DELAY more while still writing, then shrinks the file as
// AGAOBS_HOSTILE_MODE says. It exits at once or lingers until its stdin
// closes (AGAOBS_HOSTILE_EXIT).
func truncatingProducer() {
	mode := os.Getenv("AGAOBS_HOSTILE_MODE")
	delay, _ := time.ParseDuration(os.Getenv("AGAOBS_HOSTILE_DELAY"))
	id := shm.Identity{Producer: os.Getenv("AGAOBS_PRODUCER"), Role: "hostile"}
	w, err := shm.CreateWriter(os.Getenv("AGAOBS_RING_DIR"), shm.WriterOptions{Class: shm.ClassHot, Capacity: hostileCap, Identity: id})
	if err != nil {
		helperFail("%v", err)
	}
	f, err := os.OpenFile(w.Path(), os.O_RDWR, 0)
	if err != nil {
		helperFail("%v", err)
	}
	fmt.Println("ready", w.Path())
	var mu sync.Mutex
	stopped := false
	go func() {
		for i := 0; ; i++ {
			mu.Lock()
			if stopped {
				mu.Unlock()
				return // our own mapping is gone too
			}
			fw := shm.Forward{GateMean: float64(i), Fields: 31}
			_ = w.EmitForward(time.Now().UnixNano(), &fw)
			if i%8 == 0 {
				w.Heartbeat()
			}
			mu.Unlock()
			if i%8 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	deadline := time.Now().Add(hostileStartLimit)
	for {
		var b [4]byte
		if _, err := f.ReadAt(b[:], offConsumerPID); err != nil {
			helperFail("read consumer block: %v", err)
		}
		if binary.LittleEndian.Uint32(b[:]) != 0 {
			break
		}
		if time.Now().After(deadline) {
			helperFail("not accepted within %v", hostileStartLimit)
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(delay) // the random instant
	full := int64(shm.HeaderSize + hostileCap)
	mu.Lock()
	stopped = true
	switch mode {
	case "truncate-0": // truncate -s 0 <ring>
		err = os.Truncate(w.Path(), 0)
	case "truncate-half": // truncate -s 50%: inside a page
		err = os.Truncate(w.Path(), full/2)
	case "ftruncate-0":
		err = f.Truncate(0)
	case "ftruncate-half": // at a page boundary in the data area
		err = f.Truncate(full / 2 &^ 4095)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	mu.Unlock()
	if err != nil {
		helperFail("%s: %v", mode, err)
	}
	fmt.Println("truncated", mode)
	if os.Getenv("AGAOBS_HOSTILE_EXIT") == "1" {
		os.Exit(0)
	}
	io.Copy(io.Discard, os.Stdin)
}

// helloProducer sends a 400 KB HELLO, then one with an over-long role of
// invalid UTF-8, then one forward record, and lingers until stdin closes.
func helloProducer() {
	id := shm.Identity{Producer: os.Getenv("AGAOBS_PRODUCER"), Role: "hello", Model: "header-model"}
	w, err := shm.CreateWriter(os.Getenv("AGAOBS_RING_DIR"), shm.WriterOptions{Class: shm.ClassHot, Capacity: 4 << 20, Identity: id})
	if err != nil {
		helperFail("%v", err)
	}
	huge := `{"producer":"x","model":"` + strings.Repeat("m", 400<<10) + `"}`
	dirty := `{"producer":"x","role":"` + strings.Repeat("r", 300) + "\xff\xfe" + `","model":"m` + "\xc3" + `"}`
	for _, b := range []string{huge, dirty} {
		if err := w.Emit(shm.TypeHello, 0, time.Now().UnixNano(), []byte(b)); err != nil {
			helperFail("hello: %v", err)
		}
	}
	f := shm.Forward{Fields: 31}
	_ = w.EmitForward(time.Now().UnixNano(), &f)
	fmt.Println("ready", w.Path())
	io.Copy(io.Discard, os.Stdin)
	w.Close()
}

// hostileProc is a helper process of this file: stdout lines arrive on
// lines; closing stdin ends the lingering kinds.
type hostileProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	path  string
	// diag, if set, logs what the agent knows when the helper fails.
	diag func()
}

func startHostileHelper(t *testing.T, dir, name, kind string, env ...string) *hostileProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "AGAOBS_RELIABILITY_HELPER="+kind, "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER="+name), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &hostileProc{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 8)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range p.lines { // read to EOF before Wait closes the pipe
		}
		cmd.Wait()
	})
	p.path = p.expect(t, "ready", hostileStartLimit)
	return p
}

// expect waits for the next stdout line, which must start with word, and
// returns the rest of it.
func (p *hostileProc) expect(t *testing.T, word string, timeout time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		rest, found := strings.CutPrefix(line, word+" ")
		if !ok || !found {
			if p.diag != nil {
				p.diag()
			}
			t.Fatalf("%s: want %q, got %q (open %v)", p.name, word, line, ok)
		}
		return rest
	case <-time.After(timeout):
		if p.diag != nil {
			p.diag()
		}
		t.Fatalf("%s: no %q within %v", p.name, word, timeout)
	}
	return ""
}

// perProducerSink counts forward events per producer and quarantines per
// ring.
type perProducerSink struct {
	mu          sync.Mutex
	forwards    map[string]uint64
	quarantined map[string]string // ring path → reason
}

func newPerProducerSink() *perProducerSink {
	return &perProducerSink{forwards: map[string]uint64{}, quarantined: map[string]string{}}
}

func (s *perProducerSink) Name() string { return "hostile-count" }
func (s *perProducerSink) Kinds() pipeline.KindMask {
	return pipeline.KindForward.Mask() | pipeline.KindLifecycle.Mask()
}

func (s *perProducerSink) Write(_ context.Context, batch []pipeline.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		ev := &batch[i]
		switch {
		case ev.Kind == pipeline.KindForward && ev.Producer != nil:
			s.forwards[ev.Producer.Name]++
		case ev.Kind == pipeline.KindLifecycle && ev.Lifecycle.Type == pipeline.RingQuarantined:
			s.quarantined[ev.Lifecycle.Ring] = ev.Lifecycle.Reason
		}
	}
	return nil
}

func (s *perProducerSink) count(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forwards[name]
}

func (s *perProducerSink) reason(path string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.quarantined[path]
	return r, ok
}

// sinkDropped is how many events the dispatcher shed for the named sink.
func sinkDropped(a *agent.Agent, name string) uint64 {
	for _, s := range a.Dispatcher().Stats() {
		if s.Name == name {
			return s.Dropped
		}
	}
	return 0
}

// withMetrics serves the agent's /metrics on a free loopback port.
func withMetrics(t *testing.T) (string, func(*config.Config)) {
	addr := testutil.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	return "http://" + addr + "/metrics", func(c *config.Config) {
		c.PrometheusEnabled, c.PrometheusHost = true, host
		c.PrometheusPort, _ = strconv.Atoi(port)
	}
}

func familyList(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, mf := range m {
		out = append(out, mf)
	}
	return out
}

// Producers that shrink their own ring file after the agent accepted it
// (truncate -s 0, truncate to half, ftruncate), at random instants while
// the agent polls and /metrics is scraped: the agent stays up, each such
// ring is quarantined with the reason "truncated" (ring table, lifecycle
// event, audit trail, agaobs_rings{state="quarantined"}), and two honest
// producers writing throughout lose nothing: the agent counts exactly the
// records they committed.
func TestHostileRingTruncation(t *testing.T) {
	if hostileRaceBuild {
		// With -race, sync/atomic on the mapping runs in the race runtime on
		// the system stack, where the in-process agent cannot recover a
		// fault; the agent binary is never built so.
		t.Skip("the in-process agent cannot recover a concurrent truncation in a -race build")
	}
	rounds := size(10, 100)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	sink := newPerProducerSink()
	metricsURL, metricsOn := withMetrics(t)
	a := inProcessAgent(t, dir, []pipeline.Sink{sink}, metricsOn)
	testutil.Eventually(t, hostileWait, func() bool { _, err := testutil.Scrape(metricsURL); return err == nil }, "/metrics never answered")

	// /metrics reads every ring's counters on HTTP goroutines throughout.
	scrapeStop := make(chan struct{})
	scrapeDone := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-scrapeStop:
				scrapeDone <- n
				return
			case <-tick.C:
				if _, err := testutil.Scrape(metricsURL); err == nil {
					n++
				}
			}
		}
	}()

	honest := []*hostileProc{
		startHostileHelper(t, dir, "honest-a", "hostile-counted"),
		startHostileHelper(t, dir, "honest-b", "hostile-counted"),
	}
	modes := []string{"truncate-0", "truncate-half", "ftruncate-0", "ftruncate-half"}
	const batch = 5 // hostile producers alive at once, each truncating at its own instant
	var hostile []*hostileProc
	for i := 0; i < rounds; i += batch {
		var ps []*hostileProc
		for j := i; j < i+batch && j < rounds; j++ {
			mode := modes[j%len(modes)]
			exit := (j/len(modes))%2 == 0
			delay := time.Duration(rng.IntN(40_000)) * time.Microsecond
			env := []string{"AGAOBS_HOSTILE_MODE=" + mode, "AGAOBS_HOSTILE_DELAY=" + delay.String(), "AGAOBS_HOSTILE_EXIT=0"}
			if exit {
				env[2] = "AGAOBS_HOSTILE_EXIT=1"
			}
			p := startHostileHelper(t, dir, fmt.Sprintf("hostile-%d", j), "hostile-truncate", env...)
			p.diag = func() {
				t.Logf("consumer: %d passes, last %v ago", a.Consumer().Passes(), time.Since(a.Consumer().LastPass()))
				for _, r := range a.Consumer().Rings() {
					if r.Path == p.path {
						t.Logf("%s ring: %+v", p.name, r)
					}
				}
			}
			ps = append(ps, p)
		}
		for _, p := range ps {
			p.expect(t, "truncated", hostileStartLimit+10*time.Second)
		}
		for _, p := range ps {
			testutil.Eventually(t, hostileWait, func() bool {
				for _, r := range a.Consumer().Rings() {
					if r.Path == p.path {
						return r.State == "quarantined" && r.Reason == shm.QuarantineTruncated
					}
				}
				return false
			}, "%s: ring %s not quarantined as truncated: %+v", p.name, p.path, a.Consumer().Rings())
		}
		hostile = append(hostile, ps...)
	}

	// The honest producers stop, close their rings and say what they
	// committed; the agent must have counted exactly that.
	for _, p := range honest {
		p.stdin.Close()
	}
	for _, p := range honest {
		var written, dropped uint64
		fmt.Sscan(p.expect(t, "done", hostileWait), &written, &dropped)
		if written < 2 {
			t.Fatalf("%s committed %d records", p.name, written)
		}
		forwards := written - 1 // HELLO
		var ring struct {
			state               string
			consumed, lost, bad uint64
		}
		testutil.Eventually(t, hostileWait, func() bool {
			r, ok := ringOf(a, p.name)
			ring.state, ring.consumed, ring.lost, ring.bad = r.State, r.Consumed, r.Lost, r.Corrupt
			return ok && r.State == "closed"
		}, "%s: ring not closed: %+v", p.name, ring)
		// The agent's own count is exact.
		if ring.consumed != written || ring.lost != dropped || ring.bad != 0 {
			t.Fatalf("%s: committed %d (dropped %d); agent: %d records consumed, %d lost, %d corrupt",
				p.name, written, dropped, ring.consumed, ring.lost, ring.bad)
		}
		// So is what reached the sinks, unless the dispatcher says it shed
		// events for our sink (a full queue), which it may by design.
		if sinkDropped(a, sink.Name()) == 0 {
			testutil.Eventually(t, hostileWait, func() bool { return sink.count(p.name) == forwards },
				"%s: %d forward events reached the sink, producer committed %d", p.name, sink.count(p.name), forwards)
		}
		t.Logf("%s: %d records committed, %d dropped, all counted", p.name, written, dropped)
	}

	close(scrapeStop)
	scrapes := <-scrapeDone
	if sinkDropped(a, sink.Name()) == 0 {
		for _, p := range hostile {
			if r, ok := sink.reason(p.path); !ok || r != shm.QuarantineTruncated {
				t.Errorf("%s: ring_quarantined event %q (seen %v)", p.name, r, ok)
			}
		}
	}
	// The audit trail has one ring_quarantined record per hostile ring,
	// with the reason.
	want := map[string]bool{}
	for _, p := range hostile {
		want[p.path] = true
	}
	var page audit.Page
	testutil.Eventually(t, hostileWait, func() bool {
		var err error
		page, err = audit.QueryPage(a.AuditStore(), audit.Filter{Operation: string(pipeline.RingQuarantined)})
		if err != nil {
			return false
		}
		n := 0
		for _, rec := range page.Records {
			var d struct{ Ring, Reason string }
			json.Unmarshal(rec.Details, &d)
			if want[d.Ring] && d.Reason == shm.QuarantineTruncated {
				n++
			}
		}
		return n == len(want)
	}, "ring_quarantined audit records: %d, want %d with reason truncated", len(page.Records), len(want))
	mfs, err := testutil.Scrape(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	m := testutil.FindSeries(familyList(mfs), "agaobs_rings", map[string]string{"state": "quarantined"})
	if m == nil || int(m.GetGauge().GetValue()) != len(hostile) {
		t.Fatalf("agaobs_rings{state=\"quarantined\"} = %v, want %d", m, len(hostile))
	}
	if err := a.Consumer().DirError(); err != nil {
		t.Fatal(err)
	}
	if time.Since(a.Consumer().LastPass()) > 5*time.Second {
		t.Fatal("the consumer stopped passing")
	}
	t.Logf("%d hostile rings truncated (%v), all quarantined as truncated; %d /metrics scrapes meanwhile", len(hostile), modes, scrapes)
	report(t, "producer truncates its own ring after acceptance",
		fmt.Sprintf("%d rings shrunk (truncate -s 0, to half, ftruncate) at random instants, 2 honest producers writing, /metrics scraped every 20 ms", len(hostile)),
		"agent up; every shrunk ring quarantined (reason truncated) with a ring_quarantined audit record and agaobs_rings{state=\"quarantined\"}; honest producers' counts exact")
}

// A HELLO beyond the identity limit (a 400 KB model name) is counted
// corrupt and the identity stays; a HELLO with over-long, invalid UTF-8
// fields is cleaned: nothing over 256 bytes or invalid reaches /metrics.
func TestHostileHello(t *testing.T) {
	dir := t.TempDir()
	metricsURL, metricsOn := withMetrics(t)
	a := inProcessAgent(t, dir, nil, metricsOn)
	p := startHostileHelper(t, dir, "hello-hostile", "hostile-hello")
	testutil.Eventually(t, hostileWait, func() bool { r, ok := ringOf(a, p.name); return ok && r.Consumed >= 3 }, "hello ring not consumed")
	r, _ := ringOf(a, p.name)
	if r.Corrupt != 1 {
		t.Errorf("corrupt %d, want 1 (the 400 KB HELLO)", r.Corrupt)
	}
	id := r.Identity
	if id == nil || id.Producer != p.name || id.Model != "m\uFFFD" || id.Role != strings.Repeat("r", 256) {
		t.Fatalf("identity after the hostile HELLOs: %+v", id)
	}
	var mfs map[string]*dto.MetricFamily
	testutil.Eventually(t, hostileWait, func() bool {
		var err error
		mfs, err = testutil.Scrape(metricsURL)
		return err == nil && strings.Contains(fmt.Sprint(mfs), p.name)
	}, "producer not on /metrics")
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if v := l.GetValue(); len(v) > shm.MaxIdentityField || !utf8.ValidString(v) {
					t.Errorf("%s{%s}: label value of %d bytes (valid UTF-8 %v)", mf.GetName(), l.GetName(), len(v), utf8.ValidString(v))
				}
			}
		}
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), strings.Repeat("m", 1000)) {
		t.Fatal("the 400 KB model reached /metrics")
	}
	report(t, "hostile HELLO records", "a 400 KB HELLO, then one with a 300-byte role of invalid UTF-8",
		"oversized HELLO counted corrupt, identity kept; fields cut to 256 bytes and made valid UTF-8; no label over 256 bytes on /metrics")
}
