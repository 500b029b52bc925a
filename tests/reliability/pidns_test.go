package reliability_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/testutil"
)

// nsProducer is a paced producer running as pid 1 of its own pid and mount
// namespace (unshare --pid --fork --mount-proc), as in a container: its
// /proc is its namespace's, so the ring header carries pid 1 and that
// namespace's inode, not anything the host sees.
type nsProducer struct {
	name    string
	unshare *exec.Cmd // the host-side parent; its exit reaps the producer
	hostPID int       // the producer, as the host sees it
	pidns   uint64    // inode of its pid namespace
	killed  time.Time
}

// startInPidNS starts the "paced" helper of this test binary in a new pid
// namespace and finds its host pid through the host's procfs: the only
// child of unshare, whose NSpid must be "<host> 1".
func startInPidNS(t *testing.T, unshare, dir, name string) *nsProducer {
	t.Helper()
	// --kill-child: if the test dies, unshare's death takes the namespace
	// down with it instead of leaving an orphaned pid 1 writing a ring.
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "--kill-child", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AGAOBS_RELIABILITY_HELPER=paced", "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// unshare reports a child killed by a signal on stderr; shown only when
	// the test fails.
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && stderr.String() != "" {
			t.Logf("%s (unshare %d) stderr:\n%s", name, cmd.Process.Pid, stderr)
		}
	})
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("%s in a new pid namespace: %q\n%s", name, line, stderr)
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(children))
	if len(f) != 1 {
		t.Fatalf("unshare %d has children %q, want exactly the producer", cmd.Process.Pid, f)
	}
	p := &nsProducer{name: name, unshare: cmd}
	p.hostPID, _ = strconv.Atoi(f[0])
	if got := pidsInNamespaces(t, p.hostPID); len(got) != 2 || got[1] != "1" {
		t.Fatalf("%s: NSpid %q, want \"%d 1\" (pid 1 of a child pid namespace)", name, got, p.hostPID)
	}
	p.pidns = pidNSInode(t, p.hostPID)
	return p
}

// kill SIGKILLs the namespace's init, which ends the namespace; unshare
// then reaps it and exits, as a container runtime would.
func (p *nsProducer) kill(t *testing.T) {
	p.killed = time.Now()
	if err := syscall.Kill(p.hostPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (host pid %d): %v", p.name, p.hostPID, err)
	}
	p.unshare.Wait()
}

// pidsInNamespaces returns the NSpid line of a host pid: its pid in each
// pid namespace from the host's down to its own.
func pidsInNamespaces(t *testing.T, hostPID int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hostPID))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("no NSpid in /proc/%d/status", hostPID)
	return nil
}

// voluntarySwitches sums voluntary_ctxt_switches over a process's threads.
func voluntarySwitches(t *testing.T, hostPID int) uint64 {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", hostPID))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", hostPID, err)
	}
	var n uint64
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

func pidNSInode(t *testing.T, hostPID int) uint64 {
	t.Helper()
	st, err := os.Stat(fmt.Sprintf("/proc/%d/ns/pid", hostPID))
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// lifeSink timestamps every lifecycle event by producer, so a test can
// tell died from closed and count them.
type lifeSink struct {
	mu     sync.Mutex
	events map[string][]lifeEvent
}

type lifeEvent struct {
	typ pipeline.LifecycleType
	at  time.Time
}

func (s *lifeSink) Name() string             { return "pidns-lifecycle" }
func (s *lifeSink) Kinds() pipeline.KindMask { return pipeline.KindLifecycle.Mask() }
func (s *lifeSink) Write(_ context.Context, batch []pipeline.Event) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		if ev := &batch[i]; ev.Producer != nil {
			s.events[ev.Producer.Name] = append(s.events[ev.Producer.Name], lifeEvent{ev.Lifecycle.Type, now})
		}
	}
	return nil
}

// of returns the events of one type for a producer.
func (s *lifeSink) of(name string, typ pipeline.LifecycleType) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, e := range s.events[name] {
		if e.typ == typ {
			out = append(out, e.at)
		}
	}
	return out
}

// adminRings is GET /api/v1/rings of an agent: what `agaobs-agent rings`
// and an operator see.
func adminRings(t *testing.T, a *agent.Agent) []rings.RingInfo {
	t.Helper()
	resp, err := http.Get("http://" + a.AdminAddr() + "/api/v1/rings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body agent.RingsResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Rings
}

// hotRing returns producer name's hot ring from a ring table.
func hotRing(rs []rings.RingInfo, name string) (rings.RingInfo, bool) {
	for _, r := range rs {
		if r.Producer == name && r.Class == "hot" {
			return r, true
		}
	}
	return rings.RingInfo{}, false
}

// gathered returns the agent's metric families (what /metrics serves).
func gathered(t *testing.T, a *agent.Agent) []*dto.MetricFamily {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func offcpuCount(mfs []*dto.MetricFamily, name string) uint64 {
	m := testutil.FindSeries(mfs, "agaobs_bpf_offcpu_seconds", map[string]string{"producer": name, "reason": "sleep"})
	if m == nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// Two producers, each pid 1 of its own pid namespace (as two containers
// are): the agent maps each ring's (pid namespace, pid 1) to the right
// host pid, not to host pid 1 and not to each other; the scheduler probes
// follow each by its host pid; SIGKILLing one namespace's init is seen as
// a death within 5 s while the other, with the same in-namespace pid,
// stays live and probed; a restart in a fresh namespace under the same
// name is tracked as a new process.
func TestPidNamespaceProducer(t *testing.T) {
	testutil.RequireRoot(t) // new pid namespaces need CAP_SYS_ADMIN
	testutil.RequireBPF(t)
	unshare := testutil.RequireTool(t, "unshare")
	dir := t.TempDir()
	life := &lifeSink{events: map[string][]lifeEvent{}}
	a := inProcessAgent(t, dir, []pipeline.Sink{life}, func(c *config.Config) {
		c.BPFEnabled, c.BPFRequire = true, true
		c.PrometheusEnabled, c.PrometheusHost, c.PrometheusPort = true, "127.0.0.1", 0
		c.AdminListenAddress = "127.0.0.1:0"
		c.RingRescanInterval = config.Duration(200 * time.Millisecond)
	})
	start := time.Now()
	pa, pb := startInPidNS(t, unshare, dir, "ns-a"), startInPidNS(t, unshare, dir, "ns-b")
	if pa.pidns == pb.pidns {
		t.Fatalf("both producers in pid namespace %d", pa.pidns)
	}

	// Host pid resolution, as the admin API shows it.
	var rs []rings.RingInfo
	testutil.Eventually(t, 30*time.Second, func() bool {
		rs = adminRings(t, a)
		_, okA := hotRing(rs, "ns-a")
		_, okB := hotRing(rs, "ns-b")
		return okA && okB
	}, "namespaced producers not live in the ring table: %v", ringTable{a})
	for _, p := range []*nsProducer{pa, pb} {
		r, _ := hotRing(rs, p.name)
		if r.State != "live" || r.HostPID != p.hostPID || r.PID != 1 {
			t.Fatalf("%s: ring %s state %s host_pid %d pid %d; want live, host pid %d, pid 1", p.name, filepath.Base(r.Path), r.State, r.HostPID, r.PID, p.hostPID)
		}
		// The ring name carries the producer's own view: pid 1 and its
		// namespace, so the header really is the in-namespace one.
		if want := fmt.Sprintf("agaobs-1-%d-", p.pidns); !strings.HasPrefix(filepath.Base(r.Path), want) {
			t.Fatalf("%s: ring %s, want %s*", p.name, filepath.Base(r.Path), want)
		}
		if m := testutil.FindSeries(gathered(t, a), "aga_producer_info", map[string]string{"producer": p.name}); m == nil ||
			!hasLabel(m, "pid", strconv.Itoa(p.hostPID)) {
			t.Fatalf("%s: aga_producer_info %v, want pid=%d", p.name, m, p.hostPID)
		}
	}
	mapped := time.Since(start)

	// Probes: the scheduler histograms are keyed by host tgid in the
	// kernel, so a wrong host pid would leave them empty.
	var attach time.Duration
	testutil.Eventually(t, 30*time.Second, func() bool {
		mfs := gathered(t, a)
		return offcpuCount(mfs, "ns-a") > 0 && offcpuCount(mfs, "ns-b") > 0 &&
			testutil.FindSeries(mfs, "agaobs_bpf_runqueue_latency_seconds", map[string]string{"producer": "ns-a"}) != nil &&
			testutil.FindSeries(mfs, "agaobs_bpf_runqueue_latency_seconds", map[string]string{"producer": "ns-b"}) != nil
	}, "no offcpu/runqueue histograms for the namespaced producers; ring table %v", ringTable{a})
	attach = time.Since(start)
	// The histograms count these very processes: over half a second each
	// producer's off-CPU sleeps match the voluntary context switches the
	// kernel counted for its threads. A probe following another pid (host
	// pid 1, say) would not.
	type sample struct{ bpf, procfs uint64 }
	snap := func() map[string]sample {
		mfs := gathered(t, a)
		out := map[string]sample{}
		for _, p := range []*nsProducer{pa, pb} {
			out[p.name] = sample{offcpuCount(mfs, p.name), voluntarySwitches(t, p.hostPID)}
		}
		return out
	}
	s0 := snap()
	time.Sleep(500 * time.Millisecond)
	s1 := snap()
	var switches []string
	for _, p := range []*nsProducer{pa, pb} {
		dc, dv := float64(s1[p.name].bpf-s0[p.name].bpf), float64(s1[p.name].procfs-s0[p.name].procfs)
		switches = append(switches, fmt.Sprintf("%s %v/%v", p.name, dc, dv))
		if dv < 50 || dc < 0.8*dv || dc > 1.2*dv {
			t.Fatalf("%s (host pid %d): eBPF counted %v off-CPU sleeps in 0.5 s, procfs %v voluntary switches", p.name, p.hostPID, dc, dv)
		}
	}

	// Kill ns-a's namespace init and restart it in a fresh namespace, again
	// and again: each death is reported died (not closed) within 5 s and
	// its probes detached; each restart (pid 1 again, the same name, a
	// namespace whose inode the kernel may recycle from the dead one's) is
	// a new process with its own host pid, not the dead one revived; ns-b,
	// pid 1 as well, is never taken for ns-a nor for dead.
	kills := size(3, 20)
	var detect []time.Duration
	recycled := 0
	cur := pa
	for i := 0; i < kills; i++ {
		cur.kill(t)
		testutil.Eventually(t, 30*time.Second, func() bool { return len(life.of("ns-a", pipeline.ProducerDied)) > i },
			"ns-a (host pid %d): death %d not detected within 5 s of SIGKILL", cur.hostPID, i+1)
		detect = append(detect, life.of("ns-a", pipeline.ProducerDied)[i].Sub(cur.killed))
		if n := len(life.of("ns-a", pipeline.ProducerClosed)); n != 0 {
			t.Fatalf("ns-a reported closed %d times; it was killed", n)
		}
		if r, _ := hotRing(adminRings(t, a), "ns-a"); r.State != "dead" || r.HostPID != cur.hostPID {
			t.Fatalf("ns-a after SIGKILL: ring state %q host pid %d, want dead %d", r.State, r.HostPID, cur.hostPID)
		}
		if r, _ := hotRing(adminRings(t, a), "ns-b"); r.State != "live" || r.HostPID != pb.hostPID {
			t.Fatalf("ns-b after ns-a's death: %s host pid %d, want live %d", r.State, r.HostPID, pb.hostPID)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { return offcpuCount(gathered(t, a), "ns-a") == 0 },
			"ns-a's offcpu series still exported after its death")

		next := startInPidNS(t, unshare, dir, "ns-a")
		if next.pidns == cur.pidns {
			recycled++
		}
		testutil.Eventually(t, 30*time.Second, func() bool {
			r, ok := hotRing(adminRings(t, a), "ns-a")
			return ok && r.State == "live" && r.HostPID == next.hostPID && r.PID == 1
		}, "restarted ns-a (host pid %d, pid namespace %d) not tracked: %v", next.hostPID, next.pidns, ringTable{a})
		testutil.Eventually(t, 30*time.Second, func() bool { return offcpuCount(gathered(t, a), "ns-a") > 0 },
			"restarted ns-a (host pid %d) not probed", next.hostPID)
		cur = next
	}
	if n := len(life.of("ns-a", pipeline.ProducerDied)); n != kills {
		t.Fatalf("ns-a died %d times, killed %d", n, kills)
	}
	if n := len(life.of("ns-b", pipeline.ProducerDied)) + len(life.of("ns-b", pipeline.ProducerClosed)); n != 0 {
		t.Fatalf("ns-b ended %d times, still running", n)
	}
	before := offcpuCount(gathered(t, a), "ns-b")
	testutil.Eventually(t, 30*time.Second, func() bool { return offcpuCount(gathered(t, a), "ns-b") > before },
		"ns-b's offcpu histogram stopped growing")

	sort.Slice(detect, func(i, j int) bool { return detect[i] < detect[j] })
	p50, worst := detect[len(detect)/2].Round(time.Millisecond), detect[len(detect)-1].Round(time.Millisecond)
	t.Logf("ns-a host pid %d (pidns %d), ns-b host pid %d (pidns %d), both pid 1; %d restarts, %d in a recycled pid namespace inode",
		pa.hostPID, pa.pidns, pb.hostPID, pb.pidns, kills, recycled)
	t.Logf("mapped %v, probed %v after start; off-CPU sleeps eBPF/procfs in 0.5 s: %s; death detected p50 %v, max %v after SIGKILL",
		mapped.Round(time.Millisecond), attach.Round(time.Millisecond), strings.Join(switches, ", "), p50, worst)
	report(t, "producer in its own pid namespace (container)",
		fmt.Sprintf("2 producers, each pid 1 of its own pid+mount namespace; one SIGKILLed and restarted in a new namespace %d times", kills),
		fmt.Sprintf("each mapped to its host pid (admin API, producer_info); per-producer off-CPU counts equal procfs context switches (%s in 0.5 s); died (never closed) p50 %v max %v (≤ 5 s); the other pid-1 producer never confused; %d/%d restarts reused the dead namespace's inode and were still tracked as new processes",
			strings.Join(switches, ", "), p50, worst, recycled, kills))
}

// ringTable prints an agent's ring table when a failure message is
// formatted, not when the wait starts.
type ringTable struct{ a *agent.Agent }

func (r ringTable) String() string {
	var b strings.Builder
	for _, ri := range r.a.Consumer().Rings() {
		fmt.Fprintf(&b, "\n  %s producer=%q state=%s host_pid=%d pid=%d reason=%q", filepath.Base(ri.Path), ri.Producer, ri.State, ri.HostPID, ri.PID, ri.Reason)
	}
	return b.String()
}

// lazyText formats f's value when a failure message is printed: Eventually
// evaluates its arguments before polling.
type lazyText func() any

func (l lazyText) String() string { return fmt.Sprint(l()) }

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}
