package notify

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

// posted decodes the postable alerts of one /api/v2/alerts request.
func posted(t *testing.T, r recorded) []postableAlert {
	t.Helper()
	var as []postableAlert
	if err := json.Unmarshal(r.body, &as); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return as
}

func TestAlertmanagerChannel(t *testing.T) {
	good, goodSrv := newReceiver(t, always(http.StatusOK))
	bad, badSrv := newReceiver(t, always(http.StatusBadRequest))
	now := t0
	d := start(t, Options{
		AlertmanagerURLs: []string{goodSrv.URL + "/", badSrv.URL},
		ResendInterval:   100 * time.Millisecond,
		EvalInterval:     time.Second,
		Now:              func() time.Time { return now },
	})
	a := testAlert("AMFiring")
	noStart := testAlert("NoStart")
	noStart.StartsAt = time.Time{}
	d.Notify([]Alert{a, noStart})

	// The first POST, then at least two re-sends.
	testutil.Eventually(t, 30*time.Second, func() bool { return good.count() >= 3 }, "re-sends")
	first := good.all()[0]
	if first.path != "/api/v2/alerts" || first.header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %v", first.path, first.header)
	}
	for i, r := range good.all() {
		as := posted(t, r)
		if len(as) != 1 {
			t.Fatalf("request %d: %d alerts, want only AMFiring (NoStart has no StartsAt)", i, len(as))
		}
		got := as[0]
		if got.Labels["alertname"] != "AMFiring" || got.Labels["node"] != "node-a" || got.Annotations["summary"] != a.Message {
			t.Errorf("request %d: alert %+v", i, got)
		}
		// 4 × max(1s, 100ms) after the fixed clock.
		if !got.StartsAt.Equal(a.StartsAt) || !got.EndsAt.Equal(t0.Add(4*time.Second)) {
			t.Errorf("request %d: startsAt %v endsAt %v", i, got.StartsAt, got.EndsAt)
		}
	}
	var raw []map[string]any
	_ = json.Unmarshal(first.body, &raw)
	if _, ok := raw[0]["generatorURL"]; ok {
		t.Error("empty generatorURL sent")
	}

	// Resolve: sent with its EndsAt, then no more re-sends.
	d.Notify([]Alert{resolvedOf(a, t0.Add(30*time.Second))})
	testutil.Eventually(t, 30*time.Second, func() bool {
		rs := good.all()
		as := posted(t, rs[len(rs)-1])
		return len(as) == 1 && as[0].EndsAt.Equal(t0.Add(30*time.Second))
	}, "resolved alert posted")
	n := good.count()
	// No later event marks "no re-send will come": the pause (several
	// re-send intervals) only gives a wrong re-send the time to show.
	time.Sleep(350 * time.Millisecond)
	if got := good.count(); got != n {
		t.Errorf("%d more requests after resolve, want none", got-n)
	}

	// Each URL is counted on its own: the 400 one fails without retries
	// and does not hold up the other.
	if s, f := stat(d.Dispatcher, ChannelAlertmanager, ResultSuccess), stat(d.Dispatcher, ChannelAlertmanager, ResultFailed); s != uint64(good.count()) || f != uint64(bad.count()) {
		t.Errorf("success %d failed %d, want %d and %d", s, f, good.count(), bad.count())
	}
	if r := stat(d.Dispatcher, ChannelAlertmanager, ResultRetried); r != 0 {
		t.Errorf("retried = %d on 4xx", r)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// amAlert is the part of Alertmanager's gettableAlert the test reads.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Fingerprint string            `json:"fingerprint"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// TestRealAlertmanager pushes through the Dispatcher into Debian's
// prometheus-alertmanager, run as the test's own process.
func TestRealAlertmanager(t *testing.T) {
	base := testutil.StartAlertmanager(t)
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	client := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) (int, []byte) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}

	d := start(t, Options{AlertmanagerURLs: []string{base}, Timeout: 5 * time.Second})
	a := testAlert("AgaobsE2E" + port)
	a.Severity, a.Labels["severity"] = "critical", "critical"
	a.StartsAt = time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	d.Notify([]Alert{a})

	find := func() (amAlert, bool) {
		code, body := get("/api/v2/alerts")
		if code != http.StatusOK {
			return amAlert{}, false
		}
		var as []amAlert
		if err := json.Unmarshal(body, &as); err != nil {
			t.Fatalf("GET /api/v2/alerts: %s: %v", body, err)
		}
		for _, x := range as {
			if x.Labels["alertname"] == a.Name {
				return x, true
			}
		}
		return amAlert{}, false
	}
	var got amAlert
	testutil.Eventually(t, 30*time.Second, func() bool {
		var ok bool
		got, ok = find()
		return ok
	}, "alert %s listed by alertmanager", a.Name)
	t.Logf("alertmanager lists %s: state %s, fingerprint %s", a.Name, got.Status.State, got.Fingerprint)
	want := a.labelSet()
	if len(got.Labels) != len(want) {
		t.Errorf("labels %v, want %v", got.Labels, want)
	}
	for k, v := range want {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, got.Labels[k], v)
		}
	}
	if got.Fingerprint != a.Fingerprint() {
		t.Errorf("alertmanager fingerprint %s, ours %s", got.Fingerprint, a.Fingerprint())
	}
	if got.Status.State != "active" && got.Status.State != "unprocessed" {
		t.Errorf("state %q", got.Status.State)
	}

	d.Notify([]Alert{resolvedOf(a, time.Now())})
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, ok := find()
		return !ok
	}, "resolved alert still listed")
	// Alertmanager may list the change before the sender has read its
	// answer and counted the success.
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelAlertmanager, ResultSuccess) == 2 },
		"success %v, want 2", stat(d.Dispatcher, ChannelAlertmanager, ResultSuccess))
	if f := stat(d.Dispatcher, ChannelAlertmanager, ResultFailed); f != 0 {
		t.Errorf("failed %v, want 0", f)
	}
}
