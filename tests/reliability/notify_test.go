package reliability_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

const (
	ntfRule     = "notify_fault_slow" // the custom rule every case fires
	ntfTimeout  = 300 * time.Millisecond
	ntfRate     = 5000    // steady forwards per second
	ntfRingSize = 1 << 16 // ~1000 forwards, 200 ms at ntfRate: a stalled consumer would overflow it
)

// ntfSteady writes forwards at ntfRate (10 every 2 ms; a late tick is
// skipped, never made up in a burst) with a latency no rule fires on: the
// pipeline whose throughput must not change while notifications fail.
type ntfSteady struct {
	w                *shm.Writer
	written, dropped atomic.Uint64
	stop, done       chan struct{}
}

func startNtfSteady(t *testing.T, dir string) *ntfSteady {
	t.Helper()
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: ntfRingSize, Instance: 1,
		Identity: shm.Identity{Producer: "steady"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &ntfSteady{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		f := shm.Forward{LatencyUs: 100, Fields: shm.FwdHasLatency}
		for {
			select {
			case <-s.stop:
				w.Close()
				return
			case <-tick.C:
			}
			for range ntfRate / 500 {
				if w.EmitForward(time.Now().UnixNano(), &f) == nil {
					s.written.Add(1)
				} else {
					s.dropped.Add(1)
				}
			}
			w.Heartbeat()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-s.stop:
		default:
			close(s.stop)
		}
		<-s.done
	})
	return s
}

// startNtfTrigger writes slow forwards (4 ms) from a second producer, so
// the rule fires for it alone.
func startNtfTrigger(t *testing.T, dir string) {
	t.Helper()
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 16, Instance: 2,
		Identity: shm.Identity{Producer: "trigger"}})
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		f := shm.Forward{LatencyUs: 4000, Fields: shm.FwdHasLatency}
		for {
			select {
			case <-stop:
				w.Close()
				return
			case <-time.After(10 * time.Millisecond):
			}
			w.EmitForward(time.Now().UnixNano(), &f)
			w.Heartbeat()
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// ntfRig is an agent with one custom rule, /metrics on loopback, the
// steady producer, and a sampler of the steady ring's fill.
type ntfRig struct {
	a       *agent.Agent
	metrics string
	dir     string
	steady  *ntfSteady
	maxFill atomic.Uint64 // float64 bits
	// maxEvalGap is the longest time (ns) agaobs_alert_evaluation_duration_seconds
	// did not count a new evaluation: ~250 ms while the loop ticks.
	maxEvalGap atomic.Int64
}

func newNtfRig(t *testing.T, mutate func(*config.Config)) *ntfRig {
	t.Helper()
	r := &ntfRig{dir: t.TempDir()}
	metricsAddr := testutil.FreeAddr(t)
	r.metrics = "http://" + metricsAddr + "/metrics"
	r.a = inProcessAgent(t, r.dir, nil, func(c *config.Config) {
		host, port, _ := net.SplitHostPort(metricsAddr)
		c.PrometheusEnabled, c.PrometheusHost = true, host
		c.PrometheusPort, _ = strconv.Atoi(port)
		c.AlertEnabled, c.AlertUseDefaultRules = true, false
		var rule config.AlertRule
		rule.SetDefaults()
		// Cooldown stays at its default (300 s): the one firing
		// notification is what must get through.
		rule.Name, rule.Metric, rule.Threshold, rule.WindowSeconds, rule.Severity = ntfRule, "latency_p99", 1000, 1, "critical"
		rule.Message = "p99 {value:.0f}µs"
		c.AlertRules = []config.AlertRule{rule}
		c.AlertEvalInterval = config.Duration(250 * time.Millisecond)
		c.AlertNotificationTimeout = config.Duration(ntfTimeout)
		mutate(c)
	})
	r.steady = startNtfSteady(t, r.dir)
	testutil.Eventually(t, 30*time.Second, func() bool { ri, ok := ringOf(r.a, "steady"); return ok && ri.Consumed > 0 }, "steady ring not consumed")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var evals uint64
		var changed time.Time
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if ri, ok := ringOf(r.a, "steady"); ok && ri.Fill > math.Float64frombits(r.maxFill.Load()) {
				r.maxFill.Store(math.Float64bits(ri.Fill))
			}
			if i%5 != 0 {
				continue
			}
			mfs, err := r.gather()
			if err != nil {
				continue
			}
			if m := testutil.FindSeries(mfs, "agaobs_alert_evaluation_duration_seconds", nil); m != nil {
				now := time.Now()
				if n := m.Histogram.GetSampleCount(); n != evals {
					if !changed.IsZero() && now.Sub(changed) > time.Duration(r.maxEvalGap.Load()) {
						r.maxEvalGap.Store(int64(now.Sub(changed)))
					}
					evals, changed = n, now
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return r
}

// ntfWindow is a sample of the steady ring: records consumed by the agent
// and written by the producer, and when.
type ntfWindow struct {
	consumed, written uint64
	at                time.Time
}

func (r *ntfRig) sample(t *testing.T) ntfWindow {
	t.Helper()
	ri, _ := ringOf(r.a, "steady")
	return ntfWindow{consumed: ri.Consumed, written: r.steady.written.Load(), at: time.Now()}
}

// ntfRates are records per second between two samples.
type ntfRates struct{ consumed, written float64 }

func (r *ntfRig) since(t *testing.T, w ntfWindow) ntfRates {
	t.Helper()
	now := r.sample(t)
	d := now.at.Sub(w.at).Seconds()
	return ntfRates{float64(now.consumed-w.consumed) / d, float64(now.written-w.written) / d}
}

// gather scrapes /metrics.
func (r *ntfRig) gather() ([]*dto.MetricFamily, error) {
	resp, err := http.Get(r.metrics)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		out = append(out, mf)
	}
	return out, nil
}

func (r *ntfRig) scrape(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	mfs, err := r.gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return mfs
}

// notifications is agaobs_alert_notifications_total{channel,result}.
func (r *ntfRig) notifications(t *testing.T, channel, result string) float64 {
	t.Helper()
	m := testutil.FindSeries(r.scrape(t), "agaobs_alert_notifications_total", map[string]string{"channel": channel, "result": result})
	if m == nil {
		t.Fatalf("agaobs_alert_notifications_total{channel=%q,result=%q} not on /metrics", channel, result)
	}
	return m.Counter.GetValue()
}

// checkPipeline asserts the outage did not touch the pipeline: the steady
// ring was consumed at the baseline rate, dropped and lost nothing and
// stayed nearly empty, and the agent consumed every record written.
func (r *ntfRig) checkPipeline(t *testing.T, base, during ntfRates) string {
	t.Helper()
	// The producer is paced by a ticker in this process; on a busy
	// machine it may itself slow down. Only a consumer that slowed while
	// the producer kept its pace is the pipeline's fault.
	if dev := math.Abs(during.consumed-base.consumed) / base.consumed; dev > 0.15 {
		if math.Abs(during.written-base.written)/base.written <= 0.10 {
			t.Errorf("steady ring consumed at %.0f/s during the outage, %.0f/s before it (±15%%), the producer wrote %.0f/s and %.0f/s",
				during.consumed, base.consumed, during.written, base.written)
		} else {
			t.Logf("the producer itself slowed (%.0f/s → %.0f/s): rates not compared", base.written, during.written)
		}
	}
	written := r.steady.written.Load()
	testutil.Eventually(t, 30*time.Second, func() bool { ri, _ := ringOf(r.a, "steady"); return ri.Consumed >= written },
		"the agent fell behind the steady producer")
	ri, _ := ringOf(r.a, "steady")
	fill := math.Float64frombits(r.maxFill.Load())
	// Rules kept being evaluated every 250 ms while notifications hung.
	gap := time.Duration(r.maxEvalGap.Load())
	if gap > time.Second {
		t.Errorf("alert evaluation paused for %v (every 250 ms configured)", gap.Round(time.Millisecond))
	}
	sinks := 0
	for _, mf := range r.scrape(t) {
		if mf.GetName() == "agaobs_sink_dropped_total" {
			for _, m := range mf.Metric {
				sinks++
				if m.Counter.GetValue() != 0 {
					t.Errorf("sink %v dropped %v events", m.Label, m.Counter.GetValue())
				}
			}
		}
	}
	if sinks == 0 {
		t.Error("agaobs_sink_dropped_total not on /metrics")
	}
	if d := r.steady.dropped.Load(); d != 0 || ri.Dropped != 0 || ri.Lost != 0 || ri.Corrupt != 0 {
		t.Errorf("steady ring: producer dropped %d, agent counts dropped %d lost %d corrupt %d", d, ri.Dropped, ri.Lost, ri.Corrupt)
	}
	// Half the ring is 100 ms of records: far more than a consumer
	// polling every 3 ms leaves, far less than one blocked behind a
	// notification would.
	if fill > 0.5 {
		t.Errorf("steady ring %.0f%% full at worst: the consumer stalled", 100*fill)
	}
	return fmt.Sprintf("steady %.0f/s consumed during the outage vs %.0f/s before, 0 ring or sink drops, ring ≤ %.1f%% full, longest pause between alert evaluations %v",
		during.consumed, base.consumed, 100*fill, gap.Round(10*time.Millisecond))
}

// ntfHook is a webhook receiver that counts attempts, answers slowly
// while slow is set, and keeps the reference bodies it accepted.
type ntfHook struct {
	attempts  atomic.Int64
	slow      atomic.Bool
	mu        sync.Mutex
	delivered []ntfBody
}

type ntfBody struct {
	Rule     string `json:"rule"`
	Status   string `json:"status"`
	Producer string `json:"producer"`
}

func (h *ntfHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.attempts.Add(1)
	body, _ := io.ReadAll(r.Body)
	if h.slow.Load() {
		// Far longer than the agent's per-attempt timeout; the client
		// gives up first.
		select {
		case <-r.Context().Done():
		case <-time.After(10 * ntfTimeout):
		}
		return
	}
	var b ntfBody
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.delivered = append(h.delivered, b)
	h.mu.Unlock()
}

// firing returns how many firing notifications of the rule for the
// trigger producer were accepted.
func (h *ntfHook) firing() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, b := range h.delivered {
		if b.Rule == ntfRule && b.Status == "firing" && b.Producer == "trigger" {
			n++
		}
	}
	return n
}

// Alert notifications to a webhook that is down (connection refused) or
// slow (answers after 10× the per-attempt timeout), and to an Alertmanager
// that is stopped and restarted: the notification is retried (attempts
// counted at the receiver and as agaobs_alert_notifications_total
// {result="retried"}), delivered once the receiver recovers, and the ring
// pipeline does not notice: a steady 5k forwards/s producer is consumed at
// its baseline rate, with no drop and its 64 KiB ring nearly empty.
func TestNotificationReceiverFaults(t *testing.T) {
	t.Run("webhook-down", testNotifyWebhookDown)
	t.Run("webhook-down-past-retries", testNotifyWebhookDownLong)
	t.Run("webhook-slow", testNotifyWebhookSlow)
	t.Run("alertmanager-restart", testNotifyAlertmanagerRestart)
}

func testNotifyWebhookDown(t *testing.T) {
	start := time.Now()
	addr := testutil.FreeAddr(t) // closed: connections are refused until it listens
	r := newNtfRig(t, func(c *config.Config) { c.AlertWebhookURL = "http://" + addr + "/hook" })
	w0 := r.sample(t)
	time.Sleep(1500 * time.Millisecond)
	base := r.since(t, w0)

	startNtfTrigger(t, r.dir)
	w1 := r.sample(t)
	testutil.Eventually(t, 30*time.Second, func() bool { return r.notifications(t, "webhook", "retried") >= 2 },
		"the webhook notification was not retried")
	during := r.since(t, w1)
	down := time.Since(w1.at)
	if f := r.notifications(t, "webhook", "failed"); f != 0 {
		t.Fatalf("%v failed notifications already", f)
	}

	// The receiver comes up on the address.
	hook, up := ntfServe(t, addr)
	testutil.Eventually(t, 30*time.Second, func() bool { return hook.firing() > 0 }, "the notification was not delivered after the webhook came up")
	late := time.Since(up)
	time.Sleep(200 * time.Millisecond)
	retried, failed, ok := r.notifications(t, "webhook", "retried"), r.notifications(t, "webhook", "failed"), r.notifications(t, "webhook", "success")
	if hook.firing() != 1 || ok != 1 || failed != 0 {
		t.Errorf("delivered %d firing notifications (success %v, failed %v), want exactly 1", hook.firing(), ok, failed)
	}
	pipe := r.checkPipeline(t, base, during)
	t.Logf("webhook down %v: %v retries, delivered %v after it came up; %s; %v in all", down.Round(time.Millisecond), retried, late.Round(time.Millisecond), pipe, time.Since(start).Round(time.Millisecond))
	report(t, "alert webhook down (connection refused)", fmt.Sprintf("one firing alert; steady producer %d forwards/s", ntfRate),
		fmt.Sprintf("%v retries (agaobs_alert_notifications_total{result=\"retried\"}), delivered once %v after the receiver came up, 0 failed; %s",
			retried, late.Round(time.Millisecond), pipe))
}

// A webhook down longer than the retry budget (5 attempts, ~4-8 s): the
// firing notification is given up (counted failed), and the still-firing
// alert's cooldown re-notification (2 s here, 300 s by default) is what
// delivers it once the receiver is back.
func testNotifyWebhookDownLong(t *testing.T) {
	start := time.Now()
	addr := testutil.FreeAddr(t)
	r := newNtfRig(t, func(c *config.Config) {
		c.AlertWebhookURL = "http://" + addr + "/hook"
		c.AlertRules[0].CooldownSeconds = 2
	})
	w0 := r.sample(t)
	time.Sleep(1500 * time.Millisecond)
	base := r.since(t, w0)

	startNtfTrigger(t, r.dir)
	w1 := r.sample(t)
	testutil.Eventually(t, 30*time.Second, func() bool { return r.notifications(t, "webhook", "failed") >= 1 },
		"the webhook notification was never given up")
	during := r.since(t, w1)
	down := time.Since(w1.at)
	retried := r.notifications(t, "webhook", "retried")
	if retried < 4 {
		t.Errorf("given up after %v retries, want 4 (5 attempts)", retried)
	}
	hook, up := ntfServe(t, addr)
	testutil.Eventually(t, 30*time.Second, func() bool { return hook.firing() > 0 }, "the still-firing alert was not re-notified after the webhook came up")
	late := time.Since(up)
	failed, ok := r.notifications(t, "webhook", "failed"), r.notifications(t, "webhook", "success")
	if ok < 1 {
		t.Errorf("agaobs_alert_notifications_total{channel=\"webhook\",result=\"success\"} = %v after delivery", ok)
	}
	pipe := r.checkPipeline(t, base, during)
	t.Logf("webhook down %v: given up after %v retries (%v failed); re-notified and delivered %v after it came up; %s; %v in all",
		down.Round(time.Millisecond), retried, failed, late.Round(time.Millisecond), pipe, time.Since(start).Round(time.Millisecond))
	report(t, "alert webhook down past the retry budget", fmt.Sprintf("one firing alert, cooldown_seconds 2; steady producer %d forwards/s", ntfRate),
		fmt.Sprintf("given up after %v retries (result=\"failed\" %v) during a %v outage; the cooldown re-notification delivered it %v after the receiver came up; %s",
			retried, failed, down.Round(time.Second), late.Round(time.Millisecond), pipe))
}

func testNotifyWebhookSlow(t *testing.T) {
	start := time.Now()
	hook := &ntfHook{}
	hook.slow.Store(true)
	srv := httptest.NewServer(hook)
	defer srv.Close()
	r := newNtfRig(t, func(c *config.Config) { c.AlertWebhookURL = srv.URL + "/hook" })
	w0 := r.sample(t)
	time.Sleep(1500 * time.Millisecond)
	base := r.since(t, w0)

	startNtfTrigger(t, r.dir)
	w1 := r.sample(t)
	testutil.Eventually(t, 30*time.Second, func() bool { return hook.attempts.Load() >= 2 }, "the slow webhook was not retried")
	during := r.since(t, w1)
	slowFor := time.Since(w1.at)
	hook.slow.Store(false) // recovers: the next attempt is answered at once
	up := time.Now()
	testutil.Eventually(t, 30*time.Second, func() bool { return hook.firing() > 0 }, "the notification was not delivered after the webhook recovered")
	late := time.Since(up)
	time.Sleep(200 * time.Millisecond)
	attempts := hook.attempts.Load()
	retried, failed, ok := r.notifications(t, "webhook", "retried"), r.notifications(t, "webhook", "failed"), r.notifications(t, "webhook", "success")
	if hook.firing() != 1 || ok != 1 || failed != 0 {
		t.Errorf("delivered %d firing notifications (success %v, failed %v), want exactly 1", hook.firing(), ok, failed)
	}
	// Every attempt but the delivered one timed out and was retried.
	if retried != float64(attempts-1) || attempts < 3 {
		t.Errorf("%d attempts reached the receiver, %v counted as retried", attempts, retried)
	}
	pipe := r.checkPipeline(t, base, during)
	t.Logf("webhook slow %v: %d attempts (%v retried), delivered %v after it recovered; %s; %v in all", slowFor.Round(time.Millisecond), attempts, retried, late.Round(time.Millisecond), pipe, time.Since(start).Round(time.Millisecond))
	report(t, "alert webhook slow (answers after 10× the 300 ms timeout)", fmt.Sprintf("one firing alert; steady producer %d forwards/s", ntfRate),
		fmt.Sprintf("%d attempts at the receiver, %v retried, delivered once %v after it recovered, 0 failed; %s",
			attempts, retried, late.Round(time.Millisecond), pipe))
}

// ntfAlertmanager runs Debian's prometheus-alertmanager on a fixed
// address so that it can be stopped and started again where the agent
// expects it (as testutil.StartAlertmanager does, which picks its own
// port once).
type ntfAlertmanager struct {
	bin, dir, addr string
	cmd            *exec.Cmd
	exited         chan struct{}
}

func (am *ntfAlertmanager) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(am.bin, "--config.file="+filepath.Join(am.dir, "alertmanager.yml"), "--storage.path="+filepath.Join(am.dir, "data"),
		"--web.listen-address="+am.addr, "--cluster.listen-address=")
	out, err := os.Create(filepath.Join(am.dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	am.cmd, am.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(am.exited) }()
	testutil.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-am.exited:
			b, _ := os.ReadFile(filepath.Join(am.dir, "log"))
			t.Fatalf("alertmanager exited:\n%s", b)
		default:
		}
		resp, err := http.Get("http://" + am.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "alertmanager ready on %s", am.addr)
}

func (am *ntfAlertmanager) stop() {
	if am.cmd != nil {
		am.cmd.Process.Kill()
		<-am.exited
		am.cmd = nil
	}
}

// has reports whether Alertmanager holds the rule's alert for the trigger.
func (am *ntfAlertmanager) has() bool {
	resp, err := http.Get("http://" + am.addr + "/api/v2/alerts")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var as []struct {
		Labels map[string]string `json:"labels"`
	}
	if json.NewDecoder(resp.Body).Decode(&as) != nil {
		return false
	}
	for _, a := range as {
		if a.Labels["alertname"] == ntfRule && a.Labels["producer"] == "trigger" && a.Labels["severity"] == "critical" {
			return true
		}
	}
	return false
}

func testNotifyAlertmanagerRestart(t *testing.T) {
	start := time.Now()
	am := &ntfAlertmanager{bin: testutil.RequireTool(t, "prometheus-alertmanager"), dir: t.TempDir(), addr: testutil.FreeAddr(t)}
	// "null" quoted: a bare null is YAML's null, not a receiver name.
	if err := os.WriteFile(filepath.Join(am.dir, "alertmanager.yml"), []byte("route:\n  receiver: \"null\"\n  group_wait: 0s\nreceivers:\n  - name: \"null\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	am.start(t)
	t.Cleanup(am.stop)
	r := newNtfRig(t, func(c *config.Config) {
		c.AlertmanagerURLs = []string{"http://" + am.addr}
		// Firing alerts are re-sent every second: what brings a
		// restarted Alertmanager (alerts are in memory only) up to date.
		c.AlertResendInterval = config.Duration(time.Second)
	})
	startNtfTrigger(t, r.dir)
	testutil.Eventually(t, 30*time.Second, am.has, "the alert did not reach Alertmanager")
	w0 := r.sample(t)
	time.Sleep(1500 * time.Millisecond)
	base := r.since(t, w0)

	retried0 := r.notifications(t, "alertmanager", "retried")
	am.stop()
	w1 := r.sample(t)
	testutil.Eventually(t, 30*time.Second, func() bool { return r.notifications(t, "alertmanager", "retried") >= retried0+2 },
		"the re-sends to the stopped Alertmanager were not retried")
	during := r.since(t, w1)
	down := time.Since(w1.at)
	retried := r.notifications(t, "alertmanager", "retried") - retried0
	success0 := r.notifications(t, "alertmanager", "success")
	am.start(t)
	up := time.Now()
	testutil.Eventually(t, 30*time.Second, am.has, "the firing alert did not reach the restarted Alertmanager")
	late := time.Since(up)
	if s := r.notifications(t, "alertmanager", "success"); s <= success0 {
		t.Errorf("agaobs_alert_notifications_total{channel=\"alertmanager\",result=\"success\"} %v → %v after the restart", success0, s)
	}
	failed := r.notifications(t, "alertmanager", "failed")
	if failed != 0 {
		t.Errorf("%v alertmanager notifications given up during a %v outage", failed, down.Round(time.Millisecond))
	}
	pipe := r.checkPipeline(t, base, during)
	t.Logf("alertmanager down %v: %v retries; alert back in the restarted Alertmanager %v after it came up; %s; %v in all",
		down.Round(time.Millisecond), retried, late.Round(time.Millisecond), pipe, time.Since(start).Round(time.Millisecond))
	report(t, "Alertmanager stopped and restarted", fmt.Sprintf("one firing alert, re-sent every 1 s; steady producer %d forwards/s", ntfRate),
		fmt.Sprintf("%v retried re-sends while it was down, 0 failed; the alert was back in the restarted Alertmanager %v after it was ready; %s",
			retried, late.Round(time.Millisecond), pipe))
}

// ntfServe brings the webhook receiver up on addr (the address the agent
// has been failing to reach) and returns it with the time it came up.
func ntfServe(t *testing.T, addr string) (*ntfHook, time.Time) {
	t.Helper()
	hook := &ntfHook{}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the webhook address: %v", err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: hook}}
	srv.Start()
	t.Cleanup(srv.Close)
	return hook, time.Now()
}
