package alerting

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/testutil"
)

// webhookReceiver records reference-format bodies; it answers 500 to the
// first failFirst requests.
type webhookReceiver struct {
	mu        sync.Mutex
	failFirst int
	requests  int
	got       []map[string]any
}

func (w *webhookReceiver) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests++
	if w.requests <= w.failFirst {
		rw.WriteHeader(http.StatusInternalServerError)
		return
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	w.got = append(w.got, m)
}

func (w *webhookReceiver) count(status string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.got {
		if m["status"] == status && m["rule"] == "busy" {
			n++
		}
	}
	return n
}

// A real webhook receiver through the notify dispatcher, the engine's time
// stepped: one firing and one resolved for an episode shorter than the
// cooldown, re-notifications at the cooldown for a longer one, retries
// when the receiver answers 500.
func TestWebhookEpisodes(t *testing.T) {
	recv := &webhookReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	d, err := notify.New(notify.Options{WebhookURL: srv.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	cfg := config.Default()
	cfg.AlertUseDefaultRules = false
	r := config.AlertRule{}
	r.SetDefaults()
	r.Name, r.Metric, r.Threshold, r.WindowSeconds, r.CooldownSeconds = "busy", "forward_rate", 0, 10, 60
	cfg.AlertRules = []config.AlertRule{r}
	h := newHarness(t, cfg, nil, "tp0")
	h.e.opts.Notifier = d
	episode := func(from, to time.Duration) {
		for s := from; s <= to+20*time.Second; s += 5 * time.Second {
			now := base.Add(s)
			if s <= to {
				h.write(h.fwd("tp0", now, 100))
			}
			h.e.Eval(now)
		}
	}
	episode(0, 20*time.Second) // 20 s < 60 s cooldown
	testutil.Eventually(t, 30*time.Second, func() bool { return recv.count("resolved") == 1 }, "first episode not resolved")
	if f := recv.count("firing"); f != 1 {
		t.Fatalf("short episode: %d firing notifications, want 1", f)
	}
	episode(100*time.Second, 250*time.Second) // 150 s: fires at 100, re-notified at 160 and 220
	testutil.Eventually(t, 30*time.Second, func() bool { return recv.count("resolved") == 2 }, "second episode not resolved")
	if f := recv.count("firing"); f != 4 {
		t.Fatalf("long episode: %d firing notifications in all, want 1 + 3", f)
	}
	recv.mu.Lock()
	recv.failFirst = recv.requests + 2
	recv.mu.Unlock()
	episode(400*time.Second, 405*time.Second)
	testutil.Eventually(t, 30*time.Second, func() bool { return recv.count("resolved") == 3 }, "third episode not delivered after 500s")
	retried := uint64(0)
	for _, s := range d.Stats() {
		if s.Channel == notify.ChannelWebhook && s.Result == notify.ResultRetried {
			retried = s.Count
		}
	}
	if retried != 2 || recv.count("firing") != 5 {
		t.Errorf("retried %d, firing notifications %d; want 2 and 5", retried, recv.count("firing"))
	}
}
