package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/config"
)

// The probe's exit statuses follow node-problem-detector's custom plugins.
const (
	probeOK      = 0
	probeNonOK   = 1
	probeUnknown = 2
)

// probeTimeout is --timeout's default: below the plugin rule's 10 s, so a
// hung listener is reported as Unknown by the probe, not killed by NPD.
const probeTimeout = 5 * time.Second

// probeListed is how many components a probe line names before "+N more":
// node-problem-detector keeps only the first 80 characters anyway.
const probeListed = 3

type probeFlags struct {
	check, url, caFile, user, passwordFile string
	strict                                 bool
	timeout                                time.Duration
}

// healthCommand probes a running agent's health listener and prints one
// line on stdout: exit 0 OK (healthy, disabled, closed, degraded without
// --strict), 1 not OK, 2 unknown (unreachable, unexpected answer, usage).
func (c *cli) healthCommand() *cobra.Command {
	var pf probeFlags
	stdout := c.stdout
	unknown := func(err error) error { return probeResult(stdout, probeUnknown, "UNKNOWN: "+err.Error()) }
	return c.command(leaf{use: "health", short: "Probe a running agent's health: exit 0 ok, 1 not ok, 2 unknown",
		long: `Probe the health listener of a running agent and print one line: OK, NOT OK or UNKNOWN
with the reason. Exit 0 ok (healthy; degraded unless --strict), 1 not ok, 2 unknown
(unreachable, an unexpected answer, bad usage): node-problem-detector's plugin contract.`,
		example: "  agaobs-agent health --strict\n  agaobs-agent health --check readyz --url http://${NODE_IP}:9501",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&pf.check, "check", "", "probe one component (gpu, tp0/kv_store, ...) or the livez / readyz checks instead of the overall status")
			fs.StringVar(&pf.url, "url", "", "base URL of the health listener; ${VAR} is replaced by the environment variable VAR, e.g. http://${NODE_IP}:9501 (default http://127.0.0.1:<health_port>)")
			fs.BoolVar(&pf.strict, "strict", false, "degraded exits 1 (not OK) instead of 0")
			fs.StringVar(&pf.caFile, "ca-file", "", "PEM file of CA certificates trusted for an https URL, besides the system's")
			fs.StringVar(&pf.user, "user", "", "basic auth user (with --password-file)")
			fs.StringVar(&pf.passwordFile, "password-file", "", "file holding the basic auth password (surrounding white space is trimmed)")
			fs.DurationVar(&pf.timeout, "timeout", probeTimeout, "give up after this long (exit 2)")
		},
		usageError: unknown,
		run: func(_ context.Context, cfg config.Config) error {
			target, client, user, password, err := pf.prepare(cfg)
			if err != nil {
				return unknown(err)
			}
			defer client.CloseIdleConnections()
			code, line := probe(client, target, user, password, pf)
			return probeResult(stdout, code, line)
		}})
}

// probeResult prints the single line NPD reads from stdout and maps the
// code onto run's exit status.
func probeResult(stdout io.Writer, code int, line string) error {
	line = strings.Join(strings.Fields(line), " ")
	fmt.Fprintln(stdout, line)
	if code == probeOK {
		return nil
	}
	return fail(code, errors.New(line))
}

// prepare validates the flags and builds the request target and client.
func (pf probeFlags) prepare(cfg config.Config) (target string, client *http.Client, user, password string, err error) {
	if pf.passwordFile != "" && pf.user == "" {
		return "", nil, "", "", errors.New("--password-file needs --user")
	}
	if pf.user != "" && pf.passwordFile == "" {
		return "", nil, "", "", errors.New("--user needs --password-file")
	}
	if pf.timeout <= 0 {
		return "", nil, "", "", fmt.Errorf("--timeout %v: must be > 0", pf.timeout)
	}
	if pf.passwordFile != "" {
		b, err := os.ReadFile(pf.passwordFile)
		if err != nil {
			return "", nil, "", "", fmt.Errorf("--password-file: %w", err)
		}
		user, password = pf.user, strings.TrimSpace(string(b))
	}
	base, err := expandURL(pf.url, os.LookupEnv)
	if err != nil {
		return "", nil, "", "", err
	}
	if base == "" {
		if !cfg.HealthEnabled {
			return "", nil, "", "", errors.New("the health endpoint is disabled (health_enabled: false); give --url to probe another")
		}
		base = "http://" + net.JoinHostPort(probeHost(cfg.HealthHost), strconv.Itoa(cfg.HealthPort))
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, "", "", fmt.Errorf("--url %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	target = strings.TrimRight(base, "/")
	switch pf.check {
	case "":
		target += cfg.HealthPath
	case "livez", "readyz":
		target += "/" + pf.check
	default:
		segs := strings.Split(strings.Trim(pf.check, "/"), "/")
		for i, s := range segs {
			segs[i] = url.PathEscape(s)
		}
		target += strings.TrimRight(cfg.HealthPath, "/") + "/" + strings.Join(segs, "/")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if pf.caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(pf.caFile)
		if err != nil {
			return "", nil, "", "", fmt.Errorf("--ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return "", nil, "", "", fmt.Errorf("--ca-file %s: no PEM certificate in it", pf.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return target, &http.Client{Timeout: pf.timeout, Transport: tr}, user, password, nil
}

// urlVar is a ${NAME} reference in --url.
var urlVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandURL replaces each ${NAME} in --url with the environment variable
// NAME, so that a plugin config that cannot run a shell (node-problem-
// detector's rules exec their args as given) still names the node's
// address: --url http://${NODE_IP}:9501 with NODE_IP from the downward API
// (status.hostIP). An IPv6 address is bracketed unless the reference
// already is, so the same URL works on IPv6 nodes. An unset or empty
// variable is an error: probing http://:9501 would reach the loopback
// address instead. A "$" not followed by {NAME} stays as it is.
func expandURL(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	var missing []string
	last := 0
	for _, m := range urlVar.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(s[last:m[0]])
		last = m[1]
		name := s[m[2]:m[3]]
		v, ok := lookup(name)
		if !ok || v == "" {
			missing = append(missing, name)
			continue
		}
		if strings.Contains(v, ":") && net.ParseIP(v) != nil && (m[0] == 0 || s[m[0]-1] != '[') {
			v = "[" + v + "]"
		}
		b.WriteString(v)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s unset or empty (--url %s)", strings.Join(missing, ", "), s)
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

// probeHost is where the health listener answers locally: its bound
// address, or the loopback one when it listens on every interface.
func probeHost(h string) string {
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1"
	}
	return h
}

// probe makes the request and judges the answer.
func probe(client *http.Client, target, user, password string, pf probeFlags) (int, string) {
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return probeUnknown, "UNKNOWN: " + err.Error()
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() {
				return probeUnknown, fmt.Sprintf("UNKNOWN: no answer within %v (%s)", pf.timeout, target)
			}
			err = ue.Err
		}
		return probeUnknown, fmt.Sprintf("UNKNOWN: %v (%s)", err, target)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return probeUnknown, fmt.Sprintf("UNKNOWN: reading the answer: %v (%s)", err, target)
	}
	unexpected := func() (int, string) {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized && user == "" {
			hint = ", give --user and --password-file"
		}
		return probeUnknown, fmt.Sprintf("UNKNOWN: HTTP %s%s (%s)", resp.Status, hint, target)
	}
	if pf.check == "livez" || pf.check == "readyz" {
		switch resp.StatusCode {
		case http.StatusOK:
			return probeOK, "OK: " + pf.check + " ok"
		case http.StatusInternalServerError, http.StatusServiceUnavailable:
			return probeNonOK, "UNHEALTHY: " + pf.check + " failed: " + failedChecks(string(body))
		}
		return unexpected()
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		if resp.StatusCode == http.StatusNotFound && pf.check != "" {
			return probeUnknown, fmt.Sprintf("UNKNOWN: the agent reports no component %q (%s)", pf.check, target)
		}
		return unexpected()
	}
	if pf.check != "" {
		var c map[string]any
		if err := json.Unmarshal(body, &c); err != nil {
			return probeUnknown, fmt.Sprintf("UNKNOWN: HTTP %d with a body that is not a JSON object (%s)", resp.StatusCode, target)
		}
		return judge(pf.check, c["status"], reason(c), nil, pf.strict)
	}
	var res struct {
		Status     any                       `json:"status"`
		Components map[string]map[string]any `json:"components"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return probeUnknown, fmt.Sprintf("UNKNOWN: HTTP %d with a body that is not the health JSON (%s)", resp.StatusCode, target)
	}
	return judge("agent", res.Status, "", res.Components, pf.strict)
}

// judge turns a status into the exit code and line; for the agent, it
// names the components that made it degraded or unhealthy.
func judge(name string, status any, why string, comps map[string]map[string]any, strict bool) (int, string) {
	s, _ := status.(string)
	detail := func(want string) string {
		if l := listComponents(comps, want); l != "" {
			return ": " + l
		}
		if why != "" {
			return ": " + why
		}
		return ""
	}
	switch s {
	case "healthy", "disabled", "closed":
		return probeOK, fmt.Sprintf("OK: %s %s", name, s)
	case "degraded":
		code := probeOK
		if strict {
			code = probeNonOK
		}
		return code, "DEGRADED: " + name + " degraded" + detail("degraded")
	case "unhealthy":
		return probeNonOK, "UNHEALTHY: " + name + " unhealthy" + detail("unhealthy")
	}
	if status == nil {
		return probeUnknown, fmt.Sprintf("UNKNOWN: no status for %s in the answer", name)
	}
	return probeUnknown, fmt.Sprintf("UNKNOWN: %s reports status %v", name, status)
}

// listComponents names the first few components in status want, each with
// its short reason.
func listComponents(comps map[string]map[string]any, want string) string {
	var names []string
	for n, c := range comps {
		if c["status"] == want {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var parts []string
	for i, n := range names {
		if i == probeListed {
			parts = append(parts, fmt.Sprintf("+%d more", len(names)-probeListed))
			break
		}
		if r := reason(comps[n]); r != "" {
			n += " (" + r + ")"
		}
		parts = append(parts, n)
	}
	return strings.Join(parts, ", ")
}

// reason is a component's "error" or "reason" field, shortened.
func reason(c map[string]any) string {
	for _, k := range []string{"error", "reason"} {
		if s, ok := c[k].(string); ok && s != "" {
			return shorten(s, 40)
		}
	}
	return ""
}

func shorten(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}

// failedChecks names the failed checks of a /livez or /readyz body
// ("[-]name failed: reason" lines), else its first line.
func failedChecks(body string) string {
	var failed []string
	for _, l := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(l, "[-]"); ok {
			failed = append(failed, shorten(name, 60))
		}
	}
	if len(failed) == 0 {
		first, _, _ := strings.Cut(strings.TrimSpace(body), "\n")
		return shorten(first, 60)
	}
	return strings.Join(failed, ", ")
}
