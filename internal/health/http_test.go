package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHealthEndpoints(t *testing.T) {
	healthy := statuses("gpu", "healthy", "tp0/kv_store", "healthy")
	degraded := map[string]Component{
		"gpu":          {Status: Healthy},
		"tp0/kv_store": {Status: Degraded, Fields: map[string]any{"utilization": 0.96, "count": 96}},
		"bpf":          {Status: Disabled},
		"tp1/liveness": {Status: Closed},
	}
	unhealthy := map[string]Component{
		"gpu":          {Status: Healthy},
		"tp0/kv_store": {Status: Degraded},
		"tp1/liveness": {Status: Unhealthy, Fields: map[string]any{"error": "heartbeat 12s old"}},
	}
	src := newFake(nil)
	srv := httptest.NewServer(New(Options{Path: "/health", Sources: []Source{src}}).Handler())
	defer srv.Close()

	cases := []struct {
		name, method, path string
		comps              map[string]Component
		code               int
		contentType        string
		body               []string // substrings of the body; nil with HEAD: must be empty
		allow              bool     // expect an Allow header
	}{
		{"healthy", "GET", "/health", healthy, 200, "application/json", []string{`"status": "healthy"`, `"timestamp": `}, false},
		{"degraded still 200, seed shape", "GET", "/health", degraded, 200, "application/json",
			[]string{"{\n  \"status\": \"degraded\",\n  \"components\": {\n", "    \"tp0/kv_store\": {\n      \"status\": \"degraded\",\n      \"count\": 96,\n      \"utilization\": 0.96\n    },",
				`"bpf": {` + "\n" + `      "status": "disabled"`}, false},
		{"unhealthy 503", "GET", "/health", unhealthy, 503, "application/json", []string{`"status": "unhealthy"`, `"error": "heartbeat 12s old"`}, false},
		{"query string ignored", "GET", "/health?verbose=1&format=x", healthy, 200, "application/json", []string{`"status": "healthy"`}, false},
		{"trailing slash", "GET", "/health/", unhealthy, 503, "application/json", []string{`"status": "unhealthy"`}, false},
		{"component with a slash", "GET", "/health/tp0/kv_store", degraded, 200, "application/json",
			[]string{"{\n  \"status\": \"degraded\",\n  \"count\": 96,\n  \"utilization\": 0.96\n}\n"}, false},
		{"unhealthy component 503", "GET", "/health/tp1/liveness", unhealthy, 503, "application/json", []string{`"error": "heartbeat 12s old"`}, false},
		{"healthy component while overall unhealthy", "GET", "/health/gpu?x=1", unhealthy, 200, "application/json", []string{`"status": "healthy"`}, false},
		{"disabled component", "GET", "/health/bpf", degraded, 200, "application/json", []string{`"status": "disabled"`}, false},
		{"closed component", "GET", "/health/tp1/liveness", degraded, 200, "application/json", []string{`"status": "closed"`}, false},
		{"unknown component", "GET", "/health/tp0/nope", healthy, 404, "application/json", []string{`"error": "unknown component \"tp0/nope\""`}, false},
		{"HEAD healthy", "HEAD", "/health", healthy, 200, "application/json", nil, false},
		{"HEAD unhealthy", "HEAD", "/health", unhealthy, 503, "application/json", nil, false},
		{"HEAD component", "HEAD", "/health/tp1/liveness", unhealthy, 503, "application/json", nil, false},
		{"HEAD unknown component", "HEAD", "/health/nope", healthy, 404, "application/json", nil, false},
		{"POST", "POST", "/health", healthy, 405, "application/json", []string{"POST not allowed"}, true},
		{"DELETE component", "DELETE", "/health/gpu", healthy, 405, "application/json", []string{"DELETE not allowed"}, true},
		{"other path", "GET", "/metrics", healthy, 404, "text/plain", []string{"404 page not found"}, false},
		{"path prefix is not the health path", "GET", "/healthz", healthy, 404, "text/plain", nil, false},
		{"root", "GET", "/", healthy, 404, "text/plain", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src.set(tc.comps)
			code, hdr, body := do(t, srv, tc.method, tc.path)
			if code != tc.code {
				t.Errorf("code %d, want %d; body %s", code, tc.code, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			if tc.method == "HEAD" && body != "" {
				t.Errorf("HEAD returned a body: %q", body)
			}
			for _, w := range tc.body {
				if !strings.Contains(body, w) {
					t.Errorf("body does not contain %q:\n%s", w, body)
				}
			}
			if got := hdr.Get("Allow"); tc.allow && got != "GET, HEAD" {
				t.Errorf("Allow %q, want GET, HEAD", got)
			}
			if tc.contentType == "application/json" && tc.method == "GET" && !json.Valid([]byte(body)) {
				t.Errorf("invalid JSON: %s", body)
			}
		})
	}
}

// The full body decodes to the Result shape with the components flat.
func TestHealthBodyDecodes(t *testing.T) {
	src := newFake(map[string]Component{"tp0/kv_store": {Status: Degraded, Fields: map[string]any{"utilization": 0.96}}})
	srv := httptest.NewServer(New(Options{Sources: []Source{src}}).Handler()) // Path defaults to /health
	defer srv.Close()
	_, _, body := do(t, srv, "GET", "/health")
	var got struct {
		Status     string                    `json:"status"`
		Components map[string]map[string]any `json:"components"`
		Timestamp  float64                   `json:"timestamp"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.Status != "degraded" || got.Components["tp0/kv_store"]["utilization"] != 0.96 || got.Components["tp0/kv_store"]["status"] != "degraded" {
		t.Errorf("decoded %+v", got)
	}
	if now := float64(time.Now().Unix()); got.Timestamp < now-60 || got.Timestamp > now+60 {
		t.Errorf("timestamp %v is not unix seconds of now", got.Timestamp)
	}
}

func TestHealthCustomPath(t *testing.T) {
	for _, p := range []string{"/status/agent", "/status/agent/", "status/agent"} {
		srv := httptest.NewServer(New(Options{Path: p, Sources: []Source{newFake(statuses("gpu", "unhealthy"))}}).Handler())
		for _, tc := range []struct {
			path string
			code int
		}{{"/status/agent", 503}, {"/status/agent/gpu", 503}, {"/health", 404}, {"/status/agent/nope", 404}, {"/livez", 200}} {
			if code, _, body := do(t, srv, "GET", tc.path); code != tc.code {
				t.Errorf("Path %q: GET %s: %d, want %d (%s)", p, tc.path, code, tc.code, body)
			}
		}
		srv.Close()
	}
}

func TestLivezReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	h := New(Options{
		Livez:  []Check{{"ping", ok}, {"rings", ok}},
		Readyz: []Check{{"ping", ok}, {"audit", func(context.Context) error { return errors.New("store locked\nby pid 7") }}},
	})
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	cases := []struct {
		method, path string
		code         int
		body         string // exact; ignored for HEAD (must be empty)
	}{
		{"GET", "/livez", 200, "ok"},
		{"GET", "/livez?verbose", 200, "[+]ping ok\n[+]rings ok\nlivez check passed\n"},
		{"GET", "/livez?verbose=false", 200, "[+]ping ok\n[+]rings ok\nlivez check passed\n"}, // any value
		{"GET", "/livez/", 200, "ok"},
		{"GET", "/readyz", 500, "[+]ping ok\n[-]audit failed: store locked by pid 7\nreadyz check failed\n"},
		{"GET", "/readyz?verbose=1", 500, "[+]ping ok\n[-]audit failed: store locked by pid 7\nreadyz check failed\n"},
		{"GET", "/readyz?exclude=audit", 200, "ok"},
		{"GET", "/readyz?exclude=audit&verbose", 200, "[+]ping ok\n[+]audit excluded: ok\nreadyz check passed\n"},
		{"GET", "/readyz?verbose&exclude=audit&exclude=ping", 200, "[+]ping excluded: ok\n[+]audit excluded: ok\nreadyz check passed\n"},
		{"GET", "/readyz?exclude=ping", 500, "[+]ping excluded: ok\n[-]audit failed: store locked by pid 7\nreadyz check failed\n"},
		{"GET", "/readyz?verbose&exclude=audit&exclude=nosuch", 200,
			"[+]ping ok\n[+]audit excluded: ok\nwarn: some readyz checks cannot be excluded: no matches for \"nosuch\"\nreadyz check passed\n"},
		{"GET", "/livez/ping", 200, "ok"},
		{"GET", "/readyz/ping?verbose", 200, "ok"},
		{"GET", "/readyz/audit", 500, "internal server error: store locked by pid 7\n"},
		{"GET", "/readyz/nosuch", 404, "readyz check \"nosuch\" not found\n"},
		{"GET", "/livez/audit", 404, "livez check \"audit\" not found\n"},
		{"GET", "/livezz", 404, "404 page not found\n"},
		{"HEAD", "/livez", 200, ""},
		{"HEAD", "/readyz", 500, ""},
		{"HEAD", "/readyz/audit", 500, ""},
		{"HEAD", "/livez/nosuch", 404, ""},
		{"POST", "/livez", 405, "POST not allowed; use GET or HEAD\n"},
		{"PUT", "/readyz/audit", 405, "PUT not allowed; use GET or HEAD\n"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, hdr, body := do(t, srv, tc.method, tc.path)
			if code != tc.code {
				t.Errorf("code %d, want %d", code, tc.code)
			}
			if body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if tc.code == 405 && hdr.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q", hdr.Get("Allow"))
			}
		})
	}
}

// Checks run concurrently under one deadline: one that ignores its context
// is reported as not finished, a panic and a nil function as failures, and
// the request does not wait longer than the deadline.
func TestChecksDeadlineAndPanics(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := New(Options{Readyz: []Check{
		{"hang", func(context.Context) error { <-release; return nil }},
		{"ctx", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{"hang2", func(context.Context) error { <-release; return nil }},
		{"panics", func(context.Context) error { panic("oops") }},
		{"nil", nil},
		{"fine", func(context.Context) error { return nil }},
	}})
	h.checkTimeout = 100 * time.Millisecond
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	start := time.Now()
	code, _, body := do(t, srv, "GET", "/readyz?verbose")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v: checks did not share the deadline", el)
	}
	want := "[-]hang failed: did not finish: context deadline exceeded\n" +
		"[-]ctx failed: context deadline exceeded\n" +
		"[-]hang2 failed: did not finish: context deadline exceeded\n" +
		"[-]panics failed: panic: oops\n" +
		"[-]nil failed: no check function\n" +
		"[+]fine ok\n" +
		"readyz check failed\n"
	if code != 500 || body != want {
		t.Errorf("code %d body\n%s\nwant 500\n%s", code, body, want)
	}
	if code, _, body := do(t, srv, "GET", "/readyz/hang"); code != 500 || !strings.Contains(body, "did not finish") {
		t.Errorf("single hanging check: %d %q", code, body)
	}
	if code, _, _ := do(t, srv, "GET", "/livez"); code != http.StatusOK {
		t.Errorf("no livez checks: %d, want 200", code)
	}
}
