package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/dashboard"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/testutil"
)

// Grafana built-ins and template variables as the proof substitutes them:
// "All" for every variable.
func dashboardVars(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$producer", ".*", "$layer", ".*", "$node", ".*").Replace(expr)
}

// Debian's Prometheus scrapes two demo agents (compat naming with prefix
// aga, conventional naming with prefix llm) and a GPU node fixture every
// second; every query of both dashboards, and every template variable, then
// evaluates through the HTTP API: each parses and executes, and each
// returns data except the panels of the exempt list below.
func TestDashboardQueriesOnPrometheus(t *testing.T) {
	t.Parallel()
	// Panels whose queries must parse but may return nothing here: software
	// the demo lacks, whatever the privileges. Its producers are Go
	// processes (no CPython USDT notes, no libcudart) and the forward_marker
	// probe is off by default. (The GPU panels read gpuNodeFixture.)
	exempt := map[string]string{
		"Python GC pauses (P50/P99)":             "demo producers are not CPython",
		"CUDA synchronize wait by API (P50/P99)": "demo producers map no libcudart/libcuda",
		"Forward latency, eBPF marker (P50/P99)": "forward_marker is off by default and the demo calls no marker",
	}
	// The scheduler probes need eBPF privileges: exempt only where the agents
	// report eBPF unavailable and AGAOBS_TEST_REQUIRE_BPF is not set.
	needBPF := map[string]bool{"Off-CPU time by reason (P50/P99)": true, "Run-queue latency (P50/P99)": true, "eBPF probes attached": true}

	prom := testutil.RequireTool(t, "prometheus")
	start := time.Now()
	variants := []dashboard.Options{{Prefix: "aga", Naming: schema.Compat}, {Prefix: "llm", Naming: schema.Conventional}}
	var targets []string
	for _, v := range variants {
		targets = append(targets, "127.0.0.1:"+dashboardDemo(t, v))
	}
	targets = append(targets, gpuNodeFixture(t, variants))
	api := startPrometheus(t, prom, targets)

	type check struct {
		variant, row, panel, expr string
		exempt                    string // why it may be empty
	}
	var checks []check
	titles := map[string]bool{}
	for _, v := range variants {
		name := string(v.Naming) + "/" + v.Prefix
		for _, q := range dashboard.Queries(v) {
			titles[q.Panel] = true
			checks = append(checks, check{variant: name, row: q.Row, panel: q.Panel, expr: dashboardVars(q.Expr), exempt: exempt[q.Panel]})
		}
		for _, vq := range variableQueries(t, v) {
			checks = append(checks, check{variant: name, row: "variables", panel: vq[0], expr: dashboardVars(vq[1])})
		}
	}
	if len(checks) < 90 {
		t.Fatalf("only %d queries", len(checks))
	}
	for p := range exempt {
		if !titles[p] {
			t.Errorf("exempt panel %q is not on the dashboard", p)
		}
	}
	for p := range needBPF {
		if !titles[p] {
			t.Errorf("eBPF panel %q is not on the dashboard", p)
		}
	}

	// agaobs_bpf_available is absent where eBPF is not supported at all.
	bpf := promQuery(t, api, `min(agaobs_bpf_available)`)
	if bpf.err != nil {
		t.Fatalf("agaobs_bpf_available: %v", bpf.err)
	}
	if v, ok := bpf.firstValue(); !ok || v != 1 {
		if testutil.Required() {
			t.Errorf("the agents report eBPF unavailable (%s=1 requires the scheduler probe panels to have data)", testutil.RequirePrivilegedEnv)
		}
		for i := range checks {
			if needBPF[checks[i].panel] {
				checks[i].exempt = "eBPF unavailable"
			}
		}
	}

	// Poll until every non-exempt query has data (rates need two scrapes,
	// the demo's alerts a few seconds), then report what still fails.
	deadline := time.Now().Add(45 * time.Second)
	var failures []string
	var fromRange []string      // had data in the time range only
	var exemptWithData []string // allowed to be empty, yet had data
	rangeStart := time.Now()
	for {
		failures, fromRange, exemptWithData = failures[:0], fromRange[:0], exemptWithData[:0]
		for _, c := range checks {
			r := promQuery(t, api, c.expr)
			switch {
			case c.exempt != "" && r.err == nil && len(r.result) > 0:
				exemptWithData = append(exemptWithData, c.variant+" "+c.row+" / "+c.panel)
			case r.err != nil:
				failures = append(failures, fmt.Sprintf("%s %s / %s: %v\n    %s", c.variant, c.row, c.panel, r.err, c.expr))
			case len(r.result) == 0 && c.exempt == "":
				// Grafana draws a time range: an alert that fired and
				// resolved within it still shows.
				if rr := promQueryRange(t, api, c.expr, rangeStart, time.Now()); rr.err == nil && len(rr.result) > 0 {
					fromRange = append(fromRange, c.variant+" "+c.row+" / "+c.panel)
					continue
				}
				failures = append(failures, fmt.Sprintf("%s %s / %s: no data\n    %s", c.variant, c.row, c.panel, c.expr))
			}
		}
		if len(failures) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	if len(exemptWithData) > 0 {
		t.Logf("allowed to be empty but had data (the exempt list may be too long): %v", exemptWithData)
	}
	empty := 0
	for _, c := range checks {
		if c.exempt != "" {
			empty++
		}
	}
	t.Logf("%d queries (%d allowed to be empty, %d with data in the time range only: %v) evaluated on Prometheus %v after the test started",
		len(checks), empty, len(fromRange), fromRange, time.Since(start).Round(100*time.Millisecond))
}

// dashboardDemo starts `agaobs-agent demo` for one dashboard variant and
// returns its metrics port.
func dashboardDemo(t *testing.T, v dashboard.Options) string {
	t.Helper()
	port := testutil.FreePort(t)
	dir := t.TempDir()
	cmd := exec.Command(agentBinary(t), "demo", "--ring-dir", filepath.Join(dir, "rings"), "--state-path", "",
		"--audit-storage-path", filepath.Join(dir, "audit.db"), "--admin-listen-address", "",
		"--prometheus-host", "127.0.0.1", "--prometheus-port", port,
		"--prometheus-prefix", v.Prefix, "--prometheus-naming", string(v.Naming),
		"--health-enabled=true", "--health-host", "127.0.0.1", "--health-port", testutil.FreePort(t),
		"--gpu-enabled=false", "--bpf-enabled=true", "--log-enabled=false",
		"--speed", "10", "--kill-first", "1h")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return port
}

// gpuNodeFixture serves what an agent on a GPU node exports, without a
// GPU: the GPU collector's golden exposition for two fake H100s with XID
// errors (internal/gpu/testdata/xid.prom), one producer's info series (for
// each variant's prefix) and its GPU memory. It returns the target address.
func gpuNodeFixture(t *testing.T, variants []dashboard.Options) string {
	t.Helper()
	golden, err := os.ReadFile(filepath.Join(root, "internal/gpu/testdata/xid.prom"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(golden)
	for _, v := range variants {
		body += fmt.Sprintf("# TYPE %s_producer_info gauge\n%[1]s_producer_info{node=\"gpu-node\",producer=\"gpu-worker-tp0\"} 1\n", v.Prefix)
	}
	body += "# TYPE agaobs_producer_gpu_memory_bytes gauge\n" +
		"agaobs_producer_gpu_memory_bytes{producer=\"gpu-worker-tp0\",uuid=\"GPU-00000000-0000-0000-0000-000000000000\"} 4.2e+10\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// startPrometheus runs Debian's prometheus scraping targets every second
// and returns its base URL once it is ready.
func startPrometheus(t *testing.T, bin string, targets []string) string {
	t.Helper()
	dir := t.TempDir()
	quoted, _ := json.Marshal(targets)
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"+
		"scrape_configs:\n  - job_name: agaobs\n    static_configs:\n      - targets: %s\n", quoted)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	base := "http://127.0.0.1:" + port
	var out testutil.LockedBuffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+port, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = io.Discard, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	// Ready, and both agents scraped.
	testutil.Eventually(t, 30*time.Second, func() bool {
		r := promQuery(t, base, `count(up == 1)`)
		v, ok := r.firstValue()
		return r.err == nil && ok && v == float64(len(targets))
	}, "prometheus on %s did not scrape %v", base, targets)
	return base
}

// promResult is a query's outcome: an error (parse or execution) or the
// result list.
type promResult struct {
	err    error
	result []json.RawMessage
}

func (r promResult) firstValue() (float64, bool) {
	if len(r.result) == 0 {
		return 0, false
	}
	var s struct {
		Value [2]any `json:"value"`
	}
	if json.Unmarshal(r.result[0], &s) != nil {
		return 0, false
	}
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	return v, err == nil
}

func promQuery(t *testing.T, base, expr string) promResult {
	return promGet(t, base+"/api/v1/query?"+url.Values{"query": {expr}}.Encode())
}

func promQueryRange(t *testing.T, base, expr string, from, to time.Time) promResult {
	return promGet(t, base+"/api/v1/query_range?"+url.Values{"query": {expr}, "step": {"1"},
		"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)}}.Encode())
}

func promGet(t *testing.T, u string) promResult {
	resp, err := http.Get(u)
	if err != nil {
		return promResult{err: err}
	}
	defer resp.Body.Close()
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return promResult{err: fmt.Errorf("%s: %v", resp.Status, err)}
	}
	if body.Status != "success" {
		return promResult{err: fmt.Errorf("%s: %s", body.ErrorType, body.Error)}
	}
	var r promResult
	if body.Data.ResultType == "scalar" || body.Data.ResultType == "string" {
		return promResult{result: []json.RawMessage{body.Data.Result}}
	}
	if err := json.Unmarshal(body.Data.Result, &r.result); err != nil {
		return promResult{err: err}
	}
	return r
}

var labelValuesRe = regexp.MustCompile(`^label_values\((.+), ([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// variableQueries returns the dashboard's template variable queries
// (name, PromQL): label_values(sel, label) becomes group by (label) (sel).
func variableQueries(t *testing.T, opts dashboard.Options) [][2]string {
	t.Helper()
	b, err := dashboard.Render(opts)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		json.Unmarshal(v.Query, &q)
		m := labelValuesRe.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
		}
		out = append(out, [2]string{v.Name, "group by (" + m[2] + ") (" + m[1] + ")"})
	}
	return out
}
