package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/selfmetrics"
	"github.com/agaobs/agaobs/internal/testutil"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testAlert is a firing per-producer alert with a complete label set.
func testAlert(name string) Alert {
	return Alert{
		Name:      name,
		Status:    StatusFiring,
		Severity:  "warning",
		Producer:  "vllm-0",
		Metric:    "latency_p99",
		Value:     1234.5,
		Threshold: 1000,
		Message:   "P99 latency 1234.5us over 1000us",
		Labels: map[string]string{
			"alertname": name, "severity": "warning", "producer": "vllm-0", "node": "node-a", "team": "infer",
		},
		Annotations: map[string]string{"summary": "P99 latency 1234.5us over 1000us", "description": "slow"},
		StartsAt:    t0.Add(-time.Minute),
		Timestamp:   t0,
	}
}

func resolvedOf(a Alert, at time.Time) Alert {
	a.Status = StatusResolved
	a.EndsAt = at
	a.Timestamp = at
	return a
}

// running is a Dispatcher whose Run goroutine the test controls.
type running struct {
	*Dispatcher
	cancel context.CancelFunc
	done   chan error
}

// start builds a Dispatcher and runs it until stop or the end of the test.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return run(t, d)
}

func run(t *testing.T, d *Dispatcher) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Dispatcher: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; it is idempotent.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func stat(d *Dispatcher, ch, result string) uint64 {
	for _, s := range d.Stats() {
		if s.Channel == ch && s.Result == result {
			return s.Count
		}
	}
	return 0
}

// receiver records the requests an httptest server gets.
type receiver struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	path   string
	header http.Header
	body   []byte
}

func (rc *receiver) record(r *http.Request) recorded {
	body, _ := io.ReadAll(r.Body)
	rec := recorded{path: r.URL.Path, header: r.Header.Clone(), body: body}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, rec)
	rc.mu.Unlock()
	return rec
}

func (rc *receiver) all() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

func (rc *receiver) count() int { return len(rc.all()) }

// newReceiver answers every request with status(n), n counting from 1.
func newReceiver(t *testing.T, status func(n int) int) (*receiver, *httptest.Server) {
	t.Helper()
	rc := &receiver{}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.record(r)
		w.WriteHeader(status(int(n.Add(1))))
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

func always(code int) func(int) int { return func(int) int { return code } }

func TestReferenceWebhookBody(t *testing.T) {
	rc, srv := newReceiver(t, always(http.StatusOK))
	d := start(t, Options{WebhookURL: srv.URL + "/hook"})
	a := testAlert("SLOLatencyP99")
	d.Notify([]Alert{a})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultSuccess) == 1 }, "webhook success")

	reqs := rc.all()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if req.path != "/hook" {
		t.Errorf("path %q, want /hook", req.path)
	}
	if ct := req.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if sig := req.header.Get(SignatureHeader); sig != "" {
		t.Errorf("unsigned webhook has %s %q", SignatureHeader, sig)
	}
	var got map[string]any
	if err := json.Unmarshal(req.body, &got); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	wantKeys := []string{"labels", "message", "metric", "producer", "rule", "severity", "status", "threshold", "timestamp", "value"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, wantKeys) {
		t.Errorf("keys %v, want %v", keys, wantKeys)
	}
	want := map[string]any{
		"rule": "SLOLatencyP99", "metric": "latency_p99", "value": 1234.5, "threshold": 1000.0,
		"severity": "warning", "message": a.Message, "timestamp": float64(t0.Unix()),
		"status": "firing", "producer": "vllm-0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	labels, _ := got["labels"].(map[string]any)
	if len(labels) != len(a.Labels) || labels["node"] != "node-a" || labels["alertname"] != "SLOLatencyP99" {
		t.Errorf("labels %v, want %v", labels, a.Labels)
	}
}

func TestReferenceJSONNonFiniteAndTimestamp(t *testing.T) {
	a := testAlert("X")
	a.Value = math.NaN()
	a.Threshold = math.Inf(1)
	a.Timestamp = time.Unix(1700000000, 250_000_000)
	body, err := referenceJSON(a, t0)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got["value"] != "NaN" || got["threshold"] != "+Inf" || got["timestamp"] != 1700000000.25 {
		t.Errorf("value %v threshold %v timestamp %v", got["value"], got["threshold"], got["timestamp"])
	}
}

func TestWebhookSignature(t *testing.T) {
	secret := []byte("s3cret\n")
	rc, srv := newReceiver(t, always(http.StatusNoContent))
	d := start(t, Options{WebhookURL: srv.URL, WebhookSecret: secret})
	d.Notify([]Alert{testAlert("A")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultSuccess) == 1 }, "webhook success")

	req := rc.all()[0]
	mac := hmac.New(sha256.New, secret)
	mac.Write(req.body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := req.header.Get(SignatureHeader); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("%s = %q, want %q", SignatureHeader, got, want)
	}
}

func TestWebhookAlertmanagerFormat(t *testing.T) {
	rc, srv := newReceiver(t, always(http.StatusOK))
	d, err := New(Options{WebhookURL: srv.URL, WebhookFormat: "alertmanager"})
	if err != nil {
		t.Fatal(err)
	}
	a1 := testAlert("GPUHot")
	a2 := testAlert("GPUHot")
	a2.Labels["producer"], a2.Producer = "vllm-1", "vllm-1"
	a2.Labels["team"] = "other"
	r := resolvedOf(testAlert("GPUHot"), t0.Add(time.Minute))
	// Queue before Run so the channel sees all three in one batch.
	d.Notify([]Alert{a1, a2, r})
	run(t, d)
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d, ChannelWebhook, ResultSuccess) == 2 }, "two messages")

	reqs := rc.all()
	var firing, resolved map[string]any
	for _, req := range reqs {
		var m map[string]any
		if err := json.Unmarshal(req.body, &m); err != nil {
			t.Fatal(err)
		}
		switch m["status"] {
		case "firing":
			firing = m
		case "resolved":
			resolved = m
		}
	}
	if firing == nil || resolved == nil {
		t.Fatalf("want one firing and one resolved message, got %d requests", len(reqs))
	}
	wantKeys := []string{"alerts", "commonAnnotations", "commonLabels", "externalURL", "groupKey", "groupLabels", "receiver", "status", "truncatedAlerts", "version"}
	if keys := slices.Sorted(maps.Keys(firing)); !slices.Equal(keys, wantKeys) {
		t.Errorf("keys %v, want %v", keys, wantKeys)
	}
	if firing["version"] != "4" || firing["receiver"] != "agaobs" || firing["truncatedAlerts"] != 0.0 {
		t.Errorf("header fields: %v %v %v", firing["version"], firing["receiver"], firing["truncatedAlerts"])
	}
	if firing["groupKey"] != `{}:{alertname="GPUHot"}` {
		t.Errorf("groupKey %v", firing["groupKey"])
	}
	if gl := firing["groupLabels"].(map[string]any); len(gl) != 1 || gl["alertname"] != "GPUHot" {
		t.Errorf("groupLabels %v", gl)
	}
	// producer and team differ between the two alerts: not common.
	cl := firing["commonLabels"].(map[string]any)
	if _, ok := cl["producer"]; ok || cl["node"] != "node-a" || cl["alertname"] != "GPUHot" || len(cl) != 3 {
		t.Errorf("commonLabels %v", cl)
	}
	alerts := firing["alerts"].([]any)
	if len(alerts) != 2 {
		t.Fatalf("firing message has %d alerts, want 2", len(alerts))
	}
	fa := alerts[0].(map[string]any)
	if fa["endsAt"] != "0001-01-01T00:00:00Z" || fa["startsAt"] != "2025-03-01T11:59:00Z" || fa["status"] != "firing" {
		t.Errorf("firing alert times/status: %v %v %v", fa["startsAt"], fa["endsAt"], fa["status"])
	}
	if fa["fingerprint"] != a1.Fingerprint() {
		t.Errorf("fingerprint %v, want %v", fa["fingerprint"], a1.Fingerprint())
	}
	if fa["generatorURL"] != "" || fa["annotations"].(map[string]any)["description"] != "slow" {
		t.Errorf("alert %v", fa)
	}
	ra := resolved["alerts"].([]any)[0].(map[string]any)
	if ra["endsAt"] != "2025-03-01T12:01:00Z" || ra["status"] != "resolved" {
		t.Errorf("resolved alert %v", ra)
	}
}

func TestWebhookRetriesOn500(t *testing.T) {
	rc, srv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	d := start(t, Options{WebhookURL: srv.URL})
	d.Notify([]Alert{testAlert("A")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultSuccess) == 1 }, "success after retries")
	if got := stat(d.Dispatcher, ChannelWebhook, ResultRetried); got != 2 {
		t.Errorf("retried = %d, want 2", got)
	}
	if got := stat(d.Dispatcher, ChannelWebhook, ResultFailed); got != 0 {
		t.Errorf("failed = %d, want 0", got)
	}
	if n := rc.count(); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
}

func TestWebhookNoRetryOn400(t *testing.T) {
	rc, srv := newReceiver(t, always(http.StatusBadRequest))
	d := start(t, Options{WebhookURL: srv.URL})
	d.Notify([]Alert{testAlert("A")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultFailed) == 1 }, "failed")
	// No later event marks "no retry will come": the pause only gives a
	// wrong retry the time to show, so load cannot fail the check.
	time.Sleep(100 * time.Millisecond)
	if got := stat(d.Dispatcher, ChannelWebhook, ResultRetried); got != 0 {
		t.Errorf("retried = %d, want 0", got)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

func TestWebhookRetryAfter429(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	d := start(t, Options{WebhookURL: srv.URL})
	begin := time.Now()
	d.Notify([]Alert{testAlert("A")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultSuccess) == 1 }, "success")
	if el := time.Since(begin); el < time.Second {
		t.Errorf("retried after %v, before Retry-After: 1", el)
	}
	if got := stat(d.Dispatcher, ChannelWebhook, ResultRetried); got != 1 {
		t.Errorf("retried = %d, want 1", got)
	}
}

// A hanging receiver: attempts time out, Notify stays non-blocking, the
// overflow is dropped, and every notification is accounted for.
func TestWebhookHangingReceiver(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	const n, queue, attempts, timeout = 10000, 16, 2, 200 * time.Millisecond
	d := start(t, Options{WebhookURL: srv.URL, Timeout: timeout, MaxAttempts: attempts, QueueSize: queue})
	alerts := make([]Alert, n)
	for i := range alerts {
		alerts[i] = testAlert("Hang")
	}
	// Let the channel goroutine pick one alert and hang on it first.
	d.Notify(alerts[:1])
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultRetried) >= 1 }, "first attempt timed out and retried")

	// Notify returns while the channel hangs: that it returns at all is
	// the proof, not how fast.
	begin := time.Now()
	notified := make(chan struct{})
	go func() { defer close(notified); d.Notify(alerts[1:]) }()
	select {
	case <-notified:
		t.Logf("Notify of %d alerts took %v", n-1, time.Since(begin))
	case <-time.After(time.Minute):
		t.Fatalf("Notify of %d alerts blocked on a hanging receiver", n-1)
	}
	if got := stat(d.Dispatcher, ChannelWebhook, ResultDropped); got < n-1-queue {
		t.Errorf("dropped = %d, want >= %d", got, n-1-queue)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultFailed) >= 1 }, "first alert failed after timeouts")

	begin = time.Now()
	d.stop(t)
	// The drain budget (Timeout) plus one in-flight attempt, not every
	// queued attempt against the hanging receiver.
	if el, all := time.Since(begin), queue*attempts*timeout; el >= all {
		t.Errorf("Run took %v to return after cancel: as long as trying every queued alert (%v)", el, all)
	}
	for _, ch := range []string{ChannelWebhook, ChannelLog} {
		total := stat(d.Dispatcher, ch, ResultSuccess) + stat(d.Dispatcher, ch, ResultFailed) + stat(d.Dispatcher, ch, ResultDropped)
		if total != n {
			t.Errorf("%s: success+failed+dropped = %d, want %d (%v)", ch, total, n, d.Stats())
		}
	}
	if got := stat(d.Dispatcher, ChannelWebhook, ResultSuccess); got != 0 {
		t.Errorf("webhook success = %d against a hanging receiver", got)
	}
}

// Shutdown delivers what is queued when the receiver is merely slow.
func TestShutdownDrainsQueue(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	d, err := New(Options{WebhookURL: srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, d)
	batch := make([]Alert, 10)
	for i := range batch {
		batch[i] = testAlert("Drain")
	}
	d.Notify(batch)
	r.stop(t)
	if got := stat(d, ChannelWebhook, ResultSuccess); got != 10 {
		t.Errorf("success = %d, want 10 (%v)", got, d.Stats())
	}
	d.Notify(batch[:1])
	if got := stat(d, ChannelWebhook, ResultDropped); got != 1 {
		t.Errorf("dropped after shutdown = %d, want 1", got)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Error("second Run: want error")
	}
}

func TestLogChannelLevels(t *testing.T) {
	for _, tc := range []struct {
		name     string
		logLevel string
		severity string
		resolved bool
		want     string
	}{
		{"critical", "", "critical", false, "ERROR"},
		{"warning default", "", "warning", false, "WARN"},
		{"warning at alert_log_level ERROR", "error", "warning", false, "ERROR"},
		{"info", "", "info", false, "INFO"},
		{"resolved critical", "", "critical", true, "INFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf testutil.LockedBuffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			d := start(t, Options{Logger: logger, LogLevel: tc.logLevel})
			a := testAlert("LogMe")
			a.Severity = tc.severity
			if tc.resolved {
				a = resolvedOf(a, t0)
			}
			d.Notify([]Alert{a})
			testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelLog, ResultSuccess) == 1 }, "logged")
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &line); err != nil {
				t.Fatalf("log %q: %v", buf.String(), err)
			}
			if line["level"] != tc.want || line["msg"] != "alert" || line["alertname"] != "LogMe" ||
				line["value"] != 1234.5 || line["fingerprint"] != a.Fingerprint() || line["status"] != a.Status {
				t.Errorf("line %v, want level %s", line, tc.want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"format", Options{WebhookFormat: "slack"}, "webhook format"},
		{"webhook url", Options{WebhookURL: "example.com/hook"}, "webhook url"},
		{"alertmanager url", Options{AlertmanagerURLs: []string{"ftp://am:9093"}}, "alertmanager url 0"},
		{"timeout", Options{Timeout: -time.Second}, "timeout"},
		{"queue", Options{QueueSize: -1}, "queue size"},
		{"log level", Options{LogLevel: "loud"}, "log level"},
		{"empty secret", Options{WebhookURL: "http://h/x", WebhookSecret: []byte{}}, "webhook secret is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want error containing %q", err, tc.want)
			}
		})
	}
	d, err := New(Options{WebhookURL: "https://hooks.example/x", AlertmanagerURLs: []string{"http://am:9093/"}, ExecCommand: "true"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range d.Stats() {
		if s.Result == ResultSuccess {
			names = append(names, s.Channel)
		}
	}
	if want := []string{"log", "webhook", "alertmanager", "exec"}; !slices.Equal(names, want) {
		t.Errorf("channels %v, want %v", names, want)
	}
}

func TestFingerprint(t *testing.T) {
	a := testAlert("FP")
	b := testAlert("FP")
	b.Value, b.Message, b.Timestamp = 1, "other", t0.Add(time.Hour) // not labels
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("fingerprint depends on non-label fields")
	}
	want := model.LabelSet{"alertname": "FP", "severity": "warning", "producer": "vllm-0", "node": "node-a", "team": "infer"}.Fingerprint().String()
	if got := a.Fingerprint(); got != want || len(got) != 16 {
		t.Errorf("fingerprint %q, want Alertmanager's %q", got, want)
	}
	b.Labels["extra"] = "" // empty label = absent, as in Alertmanager
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("empty label changed the fingerprint")
	}
	b.Labels["team"] = "x"
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("different labels, same fingerprint")
	}
}

func TestCollector(t *testing.T) {
	_, srv := newReceiver(t, always(http.StatusOK))
	d := start(t, Options{WebhookURL: srv.URL})
	d.Notify([]Alert{testAlert("A")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, ResultSuccess) == 1 }, "success")

	s := selfmetrics.NewSet()
	s.Add("notify", d.Collector())
	if err := selfmetrics.Check(s); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// Leave out the set's own families.
	mfs = slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool { return strings.HasPrefix(mf.GetName(), "agaobs_collector_") })
	if len(mfs) != 1 || mfs[0].GetName() != "agaobs_alert_notifications_total" {
		t.Fatalf("families %v", mfs)
	}
	ms := mfs[0].GetMetric()
	if len(ms) != 2*len(results) {
		t.Errorf("%d series, want %d", len(ms), 2*len(results))
	}
	found := false
	for _, m := range ms {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["channel"] == "webhook" && l["result"] == "success" {
			found = m.GetCounter().GetValue() == 1
		}
	}
	if !found {
		t.Error("no agaobs_alert_notifications_total{channel=webhook,result=success} 1")
	}
}
