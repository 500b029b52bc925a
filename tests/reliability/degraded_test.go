package reliability_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/testutil"
)

// agentProc is an agent binary started by a degraded-environment test.
type agentProc struct {
	cmd                    *exec.Cmd
	metrics, health, admin string // base URLs
	log                    *testutil.LockedBuffer
	exited                 chan struct{}
}

// startDegradedAgent runs the agent binary with every listener on
// loopback, wrapped by wrap (the fault injection: it returns the argv to
// run and may set SysProcAttr), and waits until /livez answers. The
// environment carries no AGAOBS_* variable, so each case's flags are the
// whole configuration.
func startDegradedAgent(t *testing.T, bin, dir string, flags []string, wrap func(argv []string) *exec.Cmd) *agentProc {
	t.Helper()
	mp, hp, ap := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	argv := append([]string{bin, "run", "--ring-dir", dir, "--state-path", "", "--audit-storage-path", filepath.Join(t.TempDir(), "audit.db"),
		"--admin-listen-address", "127.0.0.1:" + ap, "--prometheus-host", "127.0.0.1", "--prometheus-port", mp,
		"--health-enabled=true", "--health-host", "127.0.0.1", "--health-port", hp, "--log-enabled=false",
		"--ring-rescan-interval", "200ms"}, flags...)
	cmd := wrap(argv)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGAOBS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	a := &agentProc{cmd: cmd, metrics: "http://127.0.0.1:" + mp, health: "http://127.0.0.1:" + hp, admin: "http://127.0.0.1:" + ap,
		log: &testutil.LockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = a.log, a.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", cmd.Args, err)
	}
	go func() { cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-a.exited
		if t.Failed() {
			t.Logf("agent log:\n%s", a.log)
		}
	})
	testutil.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-a.exited:
			t.Fatalf("agent exited: %v\n%s", cmd.ProcessState, a.log)
		default:
		}
		code, _ := a.get("/livez")
		return code == http.StatusOK
	}, "agent /livez never answered")
	// Every wrapper execs the agent in place, so the started pid is the
	// agent's and /proc/<pid> shows the fault as the agent lives it.
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); exe != bin {
		t.Fatalf("pid %d runs %q, not the agent %s", cmd.Process.Pid, exe, bin)
	}
	return a
}

// get requests path of the health listener; 0 while it does not answer.
func (a *agentProc) get(path string) (int, []byte) {
	resp, err := http.Get(a.health + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// ring returns the producer's hot ring from the admin API (GET
// /api/v1/rings, what `agaobs-agent rings` prints).
func (a *agentProc) ring(producer string) (rings.RingInfo, bool) {
	resp, err := http.Get(a.admin + "/api/v1/rings")
	if err != nil {
		return rings.RingInfo{}, false
	}
	defer resp.Body.Close()
	var body agent.RingsResponse
	json.NewDecoder(resp.Body).Decode(&body)
	return hotRing(body.Rings, producer)
}

// scrape parses /metrics; nil while the agent does not answer.
func (a *agentProc) scrape() []*dto.MetricFamily {
	resp, err := http.Get(a.metrics + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	out := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		out = append(out, mf)
	}
	return out
}

// component returns one component of /health and the endpoint's code.
func (a *agentProc) component(name string) (int, map[string]any) {
	code, b := a.get("/health")
	var doc struct {
		Components map[string]map[string]any `json:"components"`
	}
	json.Unmarshal(b, &doc)
	return code, doc.Components[name]
}

// gaugeValue is the value of name{labels} and whether that series exists.
func gaugeValue(mfs []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	m := testutil.FindSeries(mfs, name, labels)
	if m == nil {
		return 0, false
	}
	return m.GetGauge().GetValue(), true
}

// forwardsExported sums aga_forward_total of a producer: the producer's
// records went through the pipeline into the exporter.
func forwardsExported(mfs []*dto.MetricFamily, producer string) float64 {
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "aga_forward_total" {
			continue
		}
		for _, m := range mf.Metric {
			if hasLabel(m, "producer", producer) {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// capEff is a process's effective capability set.
func capEff(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			c, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatalf("no CapEff in /proc/%d/status", pid)
	return 0
}

// Capability bits (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// traceMounts lists the tracefs and debugfs mounts a process sees.
func traceMounts(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		// "... - <fstype> <source> <options>"
		if _, post, ok := strings.Cut(l, " - "); ok {
			if f := strings.Fields(post); len(f) > 0 && (f[0] == "tracefs" || f[0] == "debugfs") {
				out = append(out, l)
			}
		}
	}
	return out
}

// The agent in the environments a node may give it: no GPU, no eBPF
// privilege, no tracefs. Each time it runs, consumes and exports a real
// producer, stays ready, and says what is missing and why where an
// operator looks (/health, the self-metrics).
func TestDegradedEnvironments(t *testing.T) {
	// The agent binary: the faults (capabilities, mount namespace) apply
	// to a whole process. Built once per run of this test (the package's
	// TestMain has no hook to remove a package-wide one).
	var bin testutil.Binary
	t.Cleanup(bin.Remove)
	cases := []struct {
		name  string
		fault string // for the report
		flags []string
		// needs skips (or fails, see testutil.SkipOrFail) where the fault
		// cannot be injected, before anything starts.
		needs func(t *testing.T)
		// wrap injects the fault around the agent's argv.
		wrap func(t *testing.T, argv []string) *exec.Cmd
		// injected checks, on the running agent, that the fault is real.
		injected func(t *testing.T, pid int)
		// check asserts the outcome and returns it for the report.
		check func(t *testing.T, a *agentProc, p *helperProc, producer string) string
	}{
		{
			name:  "no GPU",
			fault: "gpu_enabled on a machine without NVML (libnvidia-ml)",
			flags: []string{"--gpu-enabled=true", "--bpf-enabled=false"},
			wrap:  func(t *testing.T, argv []string) *exec.Cmd { return exec.Command(argv[0], argv[1:]...) },
			check: func(t *testing.T, a *agentProc, _ *helperProc, _ string) string {
				var st map[string]any
				testutil.Eventually(t, 30*time.Second, func() bool {
					_, st = a.component("gpu")
					return st != nil && st["reason"] != nil
				}, "no gpu health component with a reason: %v", lazyText(func() any { return st }))
				mfs := a.scrape()
				if up, ok := gaugeValue(mfs, "agaobs_gpu_up", nil); ok && up == 1 {
					t.Skip("NVML is present on this machine: the no-GPU case cannot be injected here")
				}
				reason := ""
				for _, r := range []string{"nvml_missing", "driver_not_loaded", "version_mismatch", "no_permission", "unknown"} {
					if v, ok := gaugeValue(mfs, "agaobs_gpu_up", map[string]string{"reason": r}); ok && v == 0 {
						reason = r
					}
				}
				if reason == "" {
					t.Fatalf("agaobs_gpu_up has no reason=... 0 series: %v", testutil.FindSeries(mfs, "agaobs_gpu_up", nil))
				}
				if v, ok := gaugeValue(mfs, "agaobs_gpu_collect_success", nil); !ok || v != 0 {
					t.Errorf("agaobs_gpu_collect_success = %v (present %v), want 0", v, ok)
				}
				// A node whose operator asked for GPUs and has none is a GPU
				// fault (unhealthy, the node-problem-detector's GPUUnhealthy),
				// but never a readiness or liveness failure.
				code, _ := a.get("/health")
				if st["status"] != "unhealthy" || !strings.Contains(fmt.Sprint(st["reason"]), reason) || code != http.StatusServiceUnavailable {
					t.Fatalf("/health %d, gpu component %v; want 503 with gpu unhealthy naming %s", code, st, reason)
				}
				return fmt.Sprintf("agaobs_gpu_up{reason=%q} 0, agaobs_gpu_collect_success 0; /health 503 with gpu unhealthy: %q", reason, st["reason"])
			},
		},
		{
			name:  "no BPF privilege",
			fault: "bpf_enabled, root with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN dropped from the bounding set (setpriv)",
			flags: []string{"--gpu-enabled=false", "--bpf-enabled=true"},
			needs: func(t *testing.T) {
				testutil.RequireRoot(t) // to drop capabilities root holds
				testutil.RequireTool(t, "setpriv")
			},
			wrap: func(t *testing.T, argv []string) *exec.Cmd {
				// Still uid 0 (so the rings and /proc stay readable); only the
				// capabilities eBPF needs are gone from the bounding set, hence
				// from everything the exec'd agent gets.
				setpriv := testutil.RequireTool(t, "setpriv")
				return exec.Command(setpriv, append([]string{"--inh-caps=-all", "--bounding-set=-bpf,-perfmon,-sys_admin"}, argv...)...)
			},
			injected: func(t *testing.T, pid int) {
				if c := capEff(t, pid); c&(1<<capBPF|1<<capPerfmon|1<<capSysAdmin) != 0 {
					t.Fatalf("agent CapEff %016x still holds CAP_BPF, CAP_PERFMON or CAP_SYS_ADMIN", c)
				}
			},
			check: func(t *testing.T, a *agentProc, _ *helperProc, producer string) string {
				var st map[string]any
				var code int
				testutil.Eventually(t, 30*time.Second, func() bool {
					code, st = a.component("bpf")
					return st != nil && st["status"] == "degraded"
				}, "bpf health component %v, want degraded", lazyText(func() any { return st }))
				// eBPF only enriches: its absence degrades, never fails, /health.
				if code != http.StatusOK {
					t.Fatalf("/health %d with eBPF unavailable, want 200", code)
				}
				reason := fmt.Sprint(st["reason"])
				for _, want := range []string{"not_permitted", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"} {
					if !strings.Contains(reason, want) {
						t.Fatalf("bpf health reason %q does not name %s", reason, want)
					}
				}
				mfs := a.scrape()
				if v, ok := gaugeValue(mfs, "agaobs_bpf_available", map[string]string{"reason": "not_permitted"}); !ok || v != 0 {
					t.Fatalf("agaobs_bpf_available{reason=\"not_permitted\"} = %v (present %v), want 0", v, ok)
				}
				if m := testutil.FindSeries(mfs, "agaobs_bpf_offcpu_seconds", map[string]string{"producer": producer}); m != nil {
					t.Fatalf("offcpu histogram without eBPF: %v", m)
				}
				if n := strings.Count(a.log.String(), "eBPF unavailable"); n != 1 {
					t.Errorf("%d 'eBPF unavailable' log lines, want 1", n)
				}
				return fmt.Sprintf("agaobs_bpf_available{reason=\"not_permitted\"} 0, no eBPF series; /health 200 with bpf degraded: %q, naming CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN", strings.SplitN(reason, " (", 2)[0])
			},
		},
		{
			name:  "no tracefs",
			fault: "bpf_enabled and bpf_require in a private mount namespace with every tracefs/debugfs mount removed",
			flags: []string{"--gpu-enabled=false", "--bpf-enabled=true", "--bpf-require=true"},
			needs: func(t *testing.T) {
				testutil.RequireRoot(t) // unshare a mount namespace, umount
				testutil.RequireBPF(t)
			},
			wrap: func(t *testing.T, argv []string) *exec.Cmd {
				// A private mount namespace (Go makes / private first, so
				// nothing propagates back) without tracefs or debugfs: lazily
				// unmount every one listed, deepest first (debug/tracing
				// before debug), then exec the agent in place. The host's
				// mounts are untouched.
				cmd := exec.Command("/bin/sh", append([]string{"-c",
					`grep -E ' - (tracefs|debugfs) ' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | while read -r m; do umount -l "$m"; done; exec "$@"`, "sh"},
					argv...)...)
				cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
				return cmd
			},
			injected: func(t *testing.T, pid int) {
				if m := traceMounts(t, pid); len(m) > 0 {
					t.Fatalf("the agent still sees tracefs/debugfs:\n%s", strings.Join(m, "\n"))
				}
				if s, err := os.Readlink("/proc/self/ns/mnt"); err == nil {
					if a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); a == s {
						t.Fatalf("the agent shares this test's mount namespace %s", s)
					}
				}
			},
			check: func(t *testing.T, a *agentProc, p *helperProc, producer string) string {
				offcpu := func() uint64 {
					m := testutil.FindSeries(a.scrape(), "agaobs_bpf_offcpu_seconds", map[string]string{"producer": producer, "reason": "sleep"})
					return m.GetHistogram().GetSampleCount()
				}
				testutil.Eventually(t, 30*time.Second, func() bool { return offcpu() > 0 },
					"no offcpu histogram for %s without tracefs", producer)
				// The probes really follow the producer: its off-CPU sleeps
				// over half a second equal the kernel's count of its
				// voluntary context switches.
				c0, v0 := offcpu(), voluntarySwitches(t, p.pid)
				time.Sleep(500 * time.Millisecond)
				c1, v1 := offcpu(), voluntarySwitches(t, p.pid)
				dc, dv := float64(c1-c0), float64(v1-v0)
				if dv < 50 || dc < 0.8*dv || dc > 1.2*dv {
					t.Fatalf("eBPF counted %v off-CPU sleeps of %s in 0.5 s, procfs %v voluntary switches", dc, producer, dv)
				}
				mfs := a.scrape()
				for _, p := range []string{"offcpu", "runqueue"} {
					if v, _ := gaugeValue(mfs, "agaobs_bpf_probe_attached", map[string]string{"probe": p}); v < 1 {
						t.Errorf("agaobs_bpf_probe_attached{probe=%q} = %v, want >= 1", p, v)
					}
				}
				for _, r := range []string{"not_supported", "not_permitted", "other"} {
					if m := testutil.FindSeries(mfs, "agaobs_bpf_probe_errors_total", map[string]string{"reason": r}); m.GetCounter().GetValue() > 0 {
						t.Errorf("probe errors without tracefs: %v", m)
					}
				}
				if v, ok := gaugeValue(mfs, "agaobs_bpf_available", nil); !ok || v != 1 {
					t.Fatalf("agaobs_bpf_available = %v (present %v), want 1", v, ok)
				}
				if _, st := a.component("bpf"); st["status"] != "healthy" {
					t.Fatalf("bpf health %v, want healthy", st)
				}
				return fmt.Sprintf("agaobs_bpf_available 1, bpf healthy, offcpu and runqueue attached with no errors; the producer's off-CPU sleeps counted by eBPF equal procfs's context switches (%v/%v in 0.5 s)", dc, dv)
			},
		},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if tc.needs != nil {
				tc.needs(t)
			}
			start := time.Now()
			dir := t.TempDir()
			producer := "degraded-" + strings.ReplaceAll(tc.name, " ", "-")
			a := startDegradedAgent(t, bin.Path(t, "../../cmd/agaobs-agent", "agaobs-agent"), dir, tc.flags, func(argv []string) *exec.Cmd { return tc.wrap(t, argv) })
			if tc.injected != nil {
				tc.injected(t, a.cmd.Process.Pid)
			}
			p := startHelper(t, dir, producer, "paced")
			// Whatever is missing, the producer is tracked, consumed and
			// exported.
			testutil.Eventually(t, 30*time.Second, func() bool {
				r, ok := a.ring(producer)
				return ok && r.State == "live" && r.HostPID == p.pid && r.Consumed > 0 && forwardsExported(a.scrape(), producer) > 0
			}, "producer %s (pid %d) not live, consumed and exported", producer, p.pid)
			got := tc.check(t, a, p, producer)
			for _, probe := range []string{"/readyz", "/livez"} {
				if code, body := a.get(probe); code != http.StatusOK {
					t.Fatalf("%s %d: %s", probe, code, body)
				}
			}
			select {
			case <-a.exited:
				t.Fatalf("agent exited: %v", a.cmd.ProcessState)
			default:
			}
			t.Logf("%s: %s (%v)", tc.name, got, time.Since(start).Round(time.Millisecond))
			report(t, "degraded node: "+tc.name, "agent binary, 1 paced producer; "+tc.fault,
				got+"; the producer consumed and exported, /readyz and /livez 200")
		})
	}
}
