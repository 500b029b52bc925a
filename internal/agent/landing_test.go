package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/web"
)

// TestListenerPages: the metrics and health listeners have a landing page
// at "/" with their name, the version and links to their endpoints; only
// the admin listener serves /debug/pprof/.
func TestListenerPages(t *testing.T) {
	cfg := testConfig(t)
	cfg.HealthEnabled, cfg.HealthHost, cfg.HealthPort, cfg.HealthPath = true, "127.0.0.1", 0, "/healthz-custom"
	cfg.AdminListenAddress = "127.0.0.1:0"
	a, _ := runAgent(t, cfg, Options{Version: "v9.8.7-test"})
	addr := map[string]string{}
	for _, s := range a.servers {
		addr[s.Name] = "http://" + s.Addr()
	}
	client := &http.Client{Timeout: 10 * time.Second}

	tests := []struct {
		name, listener, path string
		code                 int
		contentType          string   // prefix; "" for any
		contains, excludes   []string // in the body
	}{
		{"metrics landing", "metrics", "/", 200, "text/html",
			[]string{"<title>agaobs-agent metrics</title>", "Version: v9.8.7-test", `href="/metrics"`, `href="` + docsURL + `"`},
			[]string{"debug/pprof"}},
		{"health landing", "health", "/", 200, "text/html",
			[]string{"<title>agaobs-agent health</title>", "Version: v9.8.7-test", `href="/healthz-custom"`, `href="/livez"`, `href="/readyz"`, `href="` + docsURL + `"`},
			[]string{"debug/pprof"}},
		{"metrics still served", "metrics", "/metrics", 200, "", []string{"agaobs_"}, nil},
		{"health still served", "health", "/healthz-custom", 0, "application/json", []string{`"status"`}, nil},
		{"metrics unknown path", "metrics", "/nope", 404, "", nil, []string{"agaobs-agent"}},
		{"health unknown path", "health", "/nope", 404, "", nil, []string{"agaobs-agent"}},
		{"admin pprof index", "admin", "/debug/pprof/", 200, "text/html", []string{"goroutine", "heap", "cmdline"}, nil},
		{"admin pprof cmdline", "admin", "/debug/pprof/cmdline", 200, "text/plain", []string{"agent.test"}, nil},
		{"admin pprof goroutine", "admin", "/debug/pprof/goroutine?debug=1", 200, "text/plain", []string{"goroutine profile:"}, nil},
		{"admin has no landing", "admin", "/", 404, "", nil, []string{"agaobs-agent"}},
		{"metrics no pprof", "metrics", "/debug/pprof/", 404, "", nil, []string{"goroutine"}},
		{"metrics no pprof cmdline", "metrics", "/debug/pprof/cmdline", 404, "", nil, []string{"agent.test"}},
		{"health no pprof", "health", "/debug/pprof/", 404, "", nil, []string{"goroutine"}},
		{"health no pprof cmdline", "health", "/debug/pprof/cmdline", 404, "", nil, []string{"agent.test"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, ok := addr[tc.listener]
			if !ok {
				t.Fatalf("no %s listener in %v", tc.listener, addr)
			}
			resp, err := client.Get(base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body := string(b)
			if tc.code != 0 && resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d; body %.300q", resp.StatusCode, tc.code, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %q…", ct, tc.contentType)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q: %.500q", s, body)
				}
			}
			for _, s := range tc.excludes {
				if strings.Contains(body, s) {
					t.Errorf("body has %q: %.500q", s, body)
				}
			}
		})
	}
}

// TestLandingRootHealthPath: with health_path "/" the root is the health
// endpoint itself, not a landing page.
func TestLandingRootHealthPath(t *testing.T) {
	cfg := testConfig(t)
	cfg.PrometheusEnabled = false
	cfg.HealthEnabled, cfg.HealthHost, cfg.HealthPort, cfg.HealthPath = true, "127.0.0.1", 0, "/"
	a, _ := runAgent(t, cfg, Options{Version: "v1"})
	if len(a.servers) != 1 {
		t.Fatalf("%d servers", len(a.servers))
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + a.servers[0].Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want the health JSON", ct)
	}
}

// TestPprofPastWriteTimeout: /debug/pprof/profile and /trace on the admin
// listener run past the listener's read and write timeouts.
func TestPprofPastWriteTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two 2 s profiles")
	}
	const timeout = time.Second
	mux := http.NewServeMux()
	registerPprof(mux)
	s, err := web.Listen("admin", "127.0.0.1:0", mux, "", web.Options{WriteTimeout: timeout, ReadTimeout: timeout}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	for _, path := range []string{"/debug/pprof/profile?seconds=2", "/debug/pprof/trace?seconds=2"} {
		t.Run(path, func(t *testing.T) {
			start := time.Now()
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + s.Addr() + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading after %v: %v", time.Since(start), err)
			}
			if resp.StatusCode != http.StatusOK || len(b) == 0 {
				t.Errorf("status %d, %d bytes: %.200q", resp.StatusCode, len(b), b)
			}
			if d := time.Since(start); d < 2*timeout {
				t.Errorf("answered in %v, before ?seconds=2", d)
			}
		})
	}
}
