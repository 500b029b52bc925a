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

// dashboardVars substitutes Grafana's built-ins and template variables as
// the proof does: "All" for $producer and $layer, node for $node (a regex:
// ".*" is "All", a quoted name one node).
func dashboardVars(expr, node string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$__range", "5m", "$__interval", "15s",
		"$producer", ".*", "$layer", ".*", "$node", node).Replace(expr)
}

// fleetVariant is one dashboard variant and the agents that prove it: two
// demo agents on two nodes, told apart by node (node_name, the default
// prometheus_node_label) or, for ByInstance, by their scrape targets
// (prometheus_node_label: false), plus the two GPU node fixtures.
type fleetVariant struct {
	opts  dashboard.Options
	label string   // node or instance
	nodes []string // the demo agents' node label values
	gpu   string   // the GPU fixture's with a producer
	idle  string   // the GPU fixture's without producers
}

func (v fleetVariant) name() string {
	s := string(v.opts.Naming) + "/" + v.opts.Prefix
	if v.opts.ByInstance {
		s += "/by-instance"
	}
	return s
}

// Debian's Prometheus scrapes four demo agents and two GPU node fixtures
// (one with a producer, one without) every second: two agents on nodes aga-node-1 and aga-node-2 (compat
// naming, prefix aga, the node label on every series) and two with
// conventional naming, prefix llm and prometheus_node_label: false (their
// dashboards tell nodes apart by instance). Every query of the node and
// fleet dashboards of both variants, and every template variable, then
// evaluates through the HTTP API:
//
//   - with $node = All, each parses and returns data, except the panels of
//     the exempt list below;
//   - with $node = one demo node, each but the GPU-only queries returns
//     data, and every series that carries the node label is that node's;
//   - with $node = the GPU node, each GPU-only query returns data, again
//     only that node's; with $node = the GPU node without producers, each
//     GPU-only query that is not per producer;
//   - with $node = a node without an agent, each returns nothing (or the
//     0 of an `or vector(0)`);
//   - $node lists every agent's node, producers or not.
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
	byNode := fleetVariant{opts: dashboard.Options{Prefix: "aga", Naming: schema.Compat}, label: "node", gpu: "gpu-node", idle: "gpu-idle-node"}
	byInstance := fleetVariant{opts: dashboard.Options{Prefix: "llm", Naming: schema.Conventional, ByInstance: true}, label: "instance"}
	var targets []string
	for i := 1; i <= 2; i++ {
		node := fmt.Sprintf("aga-node-%d", i)
		targets = append(targets, "127.0.0.1:"+dashboardDemo(t, byNode.opts, node, true))
		byNode.nodes = append(byNode.nodes, node)
		inst := "127.0.0.1:" + dashboardDemo(t, byInstance.opts, fmt.Sprintf("llm-node-%d", i), false)
		targets = append(targets, inst)
		byInstance.nodes = append(byInstance.nodes, inst)
	}
	byInstance.gpu = gpuNodeFixture(t, byNode.gpu, []string{byNode.opts.Prefix, byInstance.opts.Prefix})
	byInstance.idle = gpuNodeFixture(t, byNode.idle, nil)
	targets = append(targets, byInstance.gpu, byInstance.idle)
	api := startPrometheus(t, prom, targets)

	type check struct {
		v                         fleetVariant
		row, panel, expr, display string
		exempt                    string // why it may be empty
		gpuOnly                   bool   // reads only GPU series: data on the GPU nodes only
		perProducer               bool   // reads producers' series: none on the idle GPU node
	}
	var checks []check
	titles := map[string]bool{}
	for _, v := range []fleetVariant{byNode, byInstance} {
		for _, fleet := range []bool{false, true} {
			o := v.opts
			o.Fleet = fleet
			kind := map[bool]string{false: "node", true: "fleet"}[fleet]
			for _, q := range dashboard.Queries(o) {
				titles[q.Panel] = true
				checks = append(checks, check{v: v, row: q.Row, panel: q.Panel, expr: q.Expr, exempt: exempt[q.Panel],
					gpuOnly: gpuOnly(q.Expr), perProducer: strings.Contains(q.Expr, "agaobs_producer_gpu_"),
					display: fmt.Sprintf("%s %s %s / %s %s", v.name(), kind, q.Row, q.Panel, q.RefID)})
			}
			for _, vq := range variableQueries(t, o) {
				checks = append(checks, check{v: v, row: "variables", panel: vq[0], expr: vq[1],
					display: fmt.Sprintf("%s %s variable %s", v.name(), kind, vq[0])})
			}
		}
	}
	if len(checks) < 150 {
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

	// Each check runs in scopes: All, each demo node, the GPU node, a node
	// without an agent. A scope that has data once stays proven (rates need
	// two scrapes, the demo's alerts a few seconds); the rest are polled
	// until the deadline, then reported.
	type scope struct {
		node     string // the label value; "" is All, noNode a node without an agent
		wantData bool
	}
	const noNode = "no-such-node"
	var pending []struct {
		c check
		s scope
	}
	for _, c := range checks {
		add := func(s scope) {
			pending = append(pending, struct {
				c check
				s scope
			}{c, s})
		}
		add(scope{node: "", wantData: c.exempt == ""})
		if c.row == "variables" && c.panel == "node" {
			continue // lists the nodes: checked below
		}
		for _, n := range c.v.nodes {
			add(scope{node: n, wantData: c.exempt == "" && !c.gpuOnly})
		}
		add(scope{node: c.v.gpu, wantData: c.exempt == "" && c.gpuOnly})
		// The GPU rows work on a node without producers.
		add(scope{node: c.v.idle, wantData: c.exempt == "" && c.gpuOnly && !c.perProducer})
		if c.row != "variables" {
			add(scope{node: noNode})
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	rangeStart := time.Now()
	var failures, wrongNode, fromRange, exemptWithData []string
	evaluated := 0
	for {
		failures = failures[:0]
		var still []struct {
			c check
			s scope
		}
		for _, p := range pending {
			c, s := p.c, p.s
			where := c.display
			node := ".*"
			if s.node != "" {
				where += " [" + c.v.label + "=" + s.node + "]"
				// As Grafana interpolates one value into =~"$node": a
				// regex, escaped, in a PromQL string.
				node = strings.ReplaceAll(regexp.QuoteMeta(s.node), `\`, `\\`)
			}
			expr := dashboardVars(c.expr, node)
			r := promQuery(t, api, expr)
			evaluated++
			if r.err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v\n    %s", where, r.err, expr))
				still = append(still, p)
				continue
			}
			// Filtering by one node returns only that node's series.
			if s.node != "" {
				for _, lv := range r.labelValues(c.v.label) {
					if lv != s.node {
						wrongNode = append(wrongNode, fmt.Sprintf("%s: a series of %s=%q\n    %s", where, c.v.label, lv, expr))
						break
					}
				}
			}
			switch {
			case s.node == noNode:
				if len(r.result) > 0 && !(strings.HasSuffix(c.expr, " or vector(0)") && r.allZero()) {
					wrongNode = append(wrongNode, fmt.Sprintf("%s: %d series for a node without an agent\n    %s", where, len(r.result), expr))
				}
			case len(r.result) > 0:
				if c.exempt != "" && s.node == "" {
					exemptWithData = append(exemptWithData, c.display)
				}
			case s.wantData:
				// Grafana draws a time range: an alert that fired and
				// resolved within it still shows.
				if rr := promQueryRange(t, api, expr, rangeStart, time.Now()); rr.err == nil && len(rr.result) > 0 {
					fromRange = append(fromRange, where)
					continue
				}
				failures = append(failures, fmt.Sprintf("%s: no data\n    %s", where, expr))
				still = append(still, p)
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	for _, f := range wrongNode {
		t.Error(f)
	}

	// $node lists every agent's node, producers or not (the GPU fixture has
	// none of the demo's producers).
	for _, v := range []fleetVariant{byNode, byInstance} {
		got := promLabelValues(t, api, "agaobs_build_info", v.label)
		for _, n := range append([]string{v.gpu, v.idle}, v.nodes...) {
			if !got[n] {
				t.Errorf("%s: $node (label_values(agaobs_build_info, %s)) lacks %s: %v", v.name(), v.label, n, got)
			}
		}
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
	t.Logf("%d queries (%d allowed to be empty; %d evaluations over All, each node and a node without an agent; %d with data in the time range only: %v) evaluated on Prometheus %v after the test started",
		len(checks), empty, evaluated, len(fromRange), fromRange, time.Since(start).Round(100*time.Millisecond))
}

// gpuOnly reports whether a query reads only GPU series (agaobs_gpu_*,
// agaobs_producer_gpu_*), which only the GPU node fixture has.
func gpuOnly(expr string) bool {
	ms := regexp.MustCompile(`\b(?:aga|agaobs|llm)_[a-z0-9_]+`).FindAllString(expr, -1)
	for _, m := range ms {
		if !strings.HasPrefix(m, "agaobs_gpu_") && !strings.HasPrefix(m, "agaobs_producer_gpu_") {
			return false
		}
	}
	return len(ms) > 0
}

// dashboardDemo starts `agaobs-agent demo` for one dashboard variant on
// node (its node_name; nodeLabel false: prometheus_node_label: false) and
// returns its metrics port.
func dashboardDemo(t *testing.T, v dashboard.Options, node string, nodeLabel bool) string {
	t.Helper()
	port := testutil.FreePort(t)
	dir := t.TempDir()
	cmd := exec.Command(agentBinary(t), "demo", "--ring-dir", filepath.Join(dir, "rings"), "--state-path", "",
		"--audit-storage-path", filepath.Join(dir, "audit.db"), "--admin-listen-address", "",
		"--prometheus-host", "127.0.0.1", "--prometheus-port", port,
		"--prometheus-prefix", v.Prefix, "--prometheus-naming", string(v.Naming),
		"--node-name", node, "--prometheus-node-label="+strconv.FormatBool(nodeLabel),
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
// errors (internal/gpu/testdata/xid.prom), the agent's build info and, with
// prefixes, one producer's info series (for each prefix) and its GPU
// memory; every series with node="<node>" as the agent adds it. It returns
// the target address.
func gpuNodeFixture(t *testing.T, node string, prefixes []string) string {
	t.Helper()
	golden, err := os.ReadFile(filepath.Join(root, "internal/gpu/testdata/xid.prom"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(golden) + "# TYPE agaobs_build_info gauge\nagaobs_build_info{version=\"fixture\"} 1\n"
	for _, p := range prefixes {
		body += fmt.Sprintf("# TYPE %s_producer_info gauge\n%[1]s_producer_info{model=\"fixture-llama-70b\",producer=\"gpu-worker-tp0\"} 1\n", p)
	}
	if len(prefixes) > 0 {
		body += "# TYPE agaobs_producer_gpu_memory_bytes gauge\n" +
			"agaobs_producer_gpu_memory_bytes{producer=\"gpu-worker-tp0\",uuid=\"GPU-00000000-0000-0000-0000-000000000000\"} 4.2e+10\n"
	}
	body = withLabel(body, "node", node)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// withLabel adds name="value" to every sample of a text exposition.
func withLabel(exposition, name, value string) string {
	lines := strings.Split(exposition, "\n")
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		metric, rest, _ := strings.Cut(l, " ")
		if base, labels, ok := strings.Cut(metric, "{"); ok {
			metric = base + "{" + name + "=" + strconv.Quote(value) + "," + labels
		} else {
			metric += "{" + name + "=" + strconv.Quote(value) + "}"
		}
		lines[i] = metric + " " + rest
	}
	return strings.Join(lines, "\n")
}

// promLabelValues is what Grafana's label_values(metric, label) lists.
func promLabelValues(t *testing.T, base, metric, label string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/label/" + label + "/values?" + url.Values{"match[]": {metric}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, v := range body.Data {
		out[v] = true
	}
	return out
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

// labelValues lists the values of label over the result's series (those
// that have it).
func (r promResult) labelValues(label string) []string {
	var out []string
	for _, raw := range r.result {
		var s struct {
			Metric map[string]string `json:"metric"`
		}
		if json.Unmarshal(raw, &s) == nil {
			if v, ok := s.Metric[label]; ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// allZero reports whether every series of an instant result is 0.
func (r promResult) allZero() bool {
	for _, raw := range r.result {
		var s struct {
			Value [2]any `json:"value"`
		}
		if json.Unmarshal(raw, &s) != nil || s.Value[1] != "0" {
			return false
		}
	}
	return true
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
