package fleet_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

// fleetNodes is N: 3 in `make test`, 16 in `make e2e` (AGAOBS_FLEET_NODES).
func fleetNodes(t *testing.T) int {
	n := 3
	if s := os.Getenv("AGAOBS_FLEET_NODES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 3 {
			t.Fatalf("AGAOBS_FLEET_NODES=%q: want a number >= 3", s)
		}
		n = v
	}
	return n
}

// The alerts both the agents' engines and Prometheus raise; the others
// (GPU, agent down) only Prometheus can see.
var shared = map[string]bool{"fleet_latency_p99": true, "fleet_kv_pressure": true,
	"AgaobsProducerDied": true, "AgaobsAuditStoreUnwritable": true}

// only keeps the alerts named in names.
func only(m map[alertKey]bool, names ...string) map[alertKey]bool {
	out := map[alertKey]bool{}
	for k := range m {
		for _, n := range names {
			if k.name == n {
				out[k] = true
			}
		}
	}
	return out
}

func equalKeys(a, b map[alertKey]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// agreement waits until the agents' engines and Prometheus both have
// exactly want firing (of the shared rules) and returns how far apart
// they got there. The window is 2 × (scrape + evaluation interval).
func (f *fleet) agreement(t *testing.T, step string, names []string, want map[alertKey]bool, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	var agentAt, promAt time.Duration
	var lastAgent, lastProm map[alertKey]bool
	ok := testutil.WaitFor(timeout, func() bool {
		a, err := f.agentFiring()
		if err != nil {
			return false
		}
		p, err := f.promFiring()
		if err != nil {
			return false
		}
		lastAgent, lastProm = only(a, names...), only(p, names...)
		if agentAt == 0 && equalKeys(lastAgent, want) {
			agentAt = time.Since(start)
		}
		if promAt == 0 && equalKeys(lastProm, want) {
			promAt = time.Since(start)
		}
		return agentAt > 0 && promAt > 0
	})
	if !ok {
		f.diagnose(t, timeout)
		t.Fatalf("%s: want %v firing; agents %v, Prometheus %v", step, keysOf(want), keysOf(lastAgent), keysOf(lastProm))
	}
	window := 2 * (f.scrape + time.Second) // evaluation interval: 1 s on both sides
	gap := agentAt - promAt
	if gap < 0 {
		gap = -gap
	}
	t.Logf("%s: agents after %v, Prometheus after %v", step, agentAt.Round(10*time.Millisecond), promAt.Round(10*time.Millisecond))
	if gap > window {
		// A wall-clock comparison: asserted in the full-size run (make e2e
		// sets AGAOBS_FLEET_REPORT), reported in make test, where a loaded
		// machine can delay Prometheus's rule evaluation by a minute.
		if os.Getenv("AGAOBS_FLEET_REPORT") != "" {
			t.Errorf("%s: agents and Prometheus %v apart (window %v)", step, gap.Round(10*time.Millisecond), window)
		} else {
			t.Logf("%s: agents and Prometheus %v apart (window %v; asserted in make e2e)", step, gap.Round(10*time.Millisecond), window)
		}
	}
}

// amOne checks Alertmanager holds exactly one active alert for each key
// of want (the agent's and Prometheus's copies deduplicated) and none for
// another (node, producer) of the same rules.
func (f *fleet) amOne(t *testing.T, step string, names []string, want map[alertKey]bool) {
	t.Helper()
	var last []string
	ok := testutil.WaitFor(30*time.Second, func() bool {
		as, err := f.amAlerts()
		if err != nil {
			return false
		}
		count := map[alertKey]int{}
		last = last[:0]
		for _, a := range as {
			if a.Status.State != "active" || len(only(map[alertKey]bool{{a.Labels["alertname"], "", ""}: true}, names...)) == 0 {
				continue
			}
			k := alertKey{a.Labels["alertname"], a.Labels["node"], a.Labels["producer"]}
			count[k]++
			last = append(last, fmt.Sprint(a.Labels))
		}
		if len(count) != len(want) {
			return false
		}
		for k, n := range count {
			if !want[k] || n != 1 {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Errorf("%s: Alertmanager does not hold exactly one alert each for %v: %v", step, keysOf(want), last)
	}
}

func TestFleet(t *testing.T) {
	testutil.RequireRoot(t)
	n := fleetNodes(t)
	f := startFleet(t, n)
	a, b, c := f.nodes[0], f.nodes[1], f.nodes[2]
	workload := []string{"fleet_latency_p99", "fleet_kv_pressure"}

	// Every producer of every node is seen, under its own node.
	testutil.Eventually(t, 60*time.Second, func() bool {
		v, err := f.query(`count(aga_producer_info) by (node)`)
		if err != nil || len(v) != n {
			return false
		}
		for _, s := range v {
			if s.value != 2 {
				return false
			}
		}
		return true
	}, "Prometheus did not see 2 producers on each of %d nodes", n)
	f.agreement(t, "quiet fleet", workload, map[alertKey]bool{}, 30*time.Second)

	// The slow faults first: their alerts have a `for` of 1–2 minutes,
	// which runs while the quick steps do.
	// A producer of node C is SIGKILLed.
	victim := c.producers["inference-tp1"]
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()
	// Node A's audit store fills its disk (the next audit record fails).
	fillDisk(t, filepath.Dir(a.auditDB))

	// 1. A latency spike on one producer of node B only.
	f.setControl(b.producers["inference-tp0"], 5000, 0.5)
	want := map[alertKey]bool{{"fleet_latency_p99", b.name, "inference-tp0"}: true}
	f.agreement(t, "latency spike on node B", workload, want, 60*time.Second)
	f.amOne(t, "latency spike on node B", workload, want)

	// 2. KV pressure on node A.
	f.setControl(a.producers["inference-tp1"], 100, 0.97)
	want[alertKey{"fleet_kv_pressure", a.name, "inference-tp1"}] = true
	f.agreement(t, "KV pressure on node A", workload, want, 60*time.Second)
	f.amOne(t, "KV pressure on node A", workload, want)

	// 3. The node probe node-problem-detector runs for node C reports
	// the death: exit 1, naming the producer.
	bin := agentBin.Path(t, root+"/cmd/agaobs-agent", "agaobs-agent")
	var out string
	var code int
	if !testutil.WaitFor(30*time.Second, func() bool {
		cmd := exec.Command(bin, "health", "--strict", "--url", "http://"+c.health)
		b, _ := cmd.CombinedOutput()
		out, code = string(b), cmd.ProcessState.ExitCode()
		return code == 1 && strings.Contains(out, "inference-tp1")
	}) {
		t.Errorf("node probe for node C: exit %d, %q; want exit 1 naming inference-tp1", code, out)
	}
	// ... and both the agent and Prometheus raise AgaobsProducerDied.
	died := map[alertKey]bool{{"AgaobsProducerDied", c.name, "inference-tp1"}: true}
	f.agreement(t, "producer SIGKILLed on node C", []string{"AgaobsProducerDied"}, died, 3*time.Minute)
	f.amOne(t, "producer SIGKILLed on node C", []string{"AgaobsProducerDied"}, died)

	// 4. Node A's audit store is unwritable.
	audit := map[alertKey]bool{{"AgaobsAuditStoreUnwritable", a.name, ""}: true}
	f.agreement(t, "audit store of node A unwritable", []string{"AgaobsAuditStoreUnwritable"}, audit, 4*time.Minute)
	f.amOne(t, "audit store of node A unwritable", []string{"AgaobsAuditStoreUnwritable"}, audit)

	// 5. A critical XID on node C's GPU 0 (only Prometheus sees the
	// fixture's GPUs).
	xid := map[alertKey]bool{{"AgaobsGPUXidCritical", c.name, ""}: true}
	var lastXID map[alertKey]bool
	if !testutil.WaitFor(3*time.Minute, func() bool {
		p, err := f.promFiring()
		lastXID = only(p, "AgaobsGPUXidCritical")
		return err == nil && equalKeys(lastXID, xid)
	}) {
		t.Errorf("critical XID on node C: Prometheus fires %v, want %v", keysOf(lastXID), keysOf(xid))
	}
	f.amOne(t, "critical XID on node C", []string{"AgaobsGPUXidCritical"}, xid)

	// Nothing else fired anywhere (the workload alerts of the steps above
	// are still on, the recovery is not part of this scenario).
	all := map[alertKey]bool{}
	for _, m := range []map[alertKey]bool{want, died, audit, xid} {
		for k := range m {
			all[k] = true
		}
	}
	p, err := f.promFiring()
	if err != nil {
		t.Fatal(err)
	}
	delete(p, alertKey{}) // no empty key
	for k := range p {
		if !all[k] {
			t.Errorf("Prometheus fires %v, which no step caused", k)
		}
	}

	f.checkFleetRules(t)
	f.checkDashboards(t)
	f.checkLongTermStore(t)
	f.report(t)
}

// diagnose logs what Prometheus saw of the agents over the step: a
// failed scrape marks every series stale and resets a pending alert's
// `for`, the usual reason Prometheus lags the agents on a loaded machine.
func (f *fleet) diagnose(t *testing.T, over time.Duration) {
	t.Helper()
	r := fmt.Sprintf("[%ds]", int(over.Seconds())+30)
	for _, expr := range []string{
		`count_over_time(up{job="agaobs-agent"}` + r + `)`,
		`sum_over_time(up{job="agaobs-agent"}` + r + `)`,
		`max_over_time(scrape_duration_seconds{job="agaobs-agent"}` + r + `)`,
		`count_over_time(agaobs_producer_state{state="dead"}` + r + `)`,
		`ALERTS`,
		`prometheus_rule_group_iterations_missed_total`,
		`max_over_time(prometheus_rule_group_last_duration_seconds` + r + `)`,
	} {
		v, err := f.query(expr)
		if err != nil {
			t.Logf("diagnose %s: %v", expr, err)
			continue
		}
		for _, s := range v {
			t.Logf("diagnose %s %v = %g", expr, s.labels, s.value)
		}
	}
}
