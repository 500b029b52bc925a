package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/testutil"
)

// scrapeMetrics returns the agent's /metrics page.
func scrapeMetrics(t *testing.T, a *Agent) string {
	t.Helper()
	resp, err := http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// With audit_verify_interval set the agent verifies the audit chain at
// start: agaobs_audit_verify_ok 1 and the timestamp reach /metrics and
// AuditVerifyStatus reports it. With 0 there is no verifier, no family and
// a zero status.
func TestAuditVerifyWiring(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval config.Duration
		want     bool
	}{
		{"1m", config.Duration(time.Minute), true},
		{"off", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.NodeName, cfg.AuditVerifyInterval = "node-v", tc.interval
			a, _ := runAgent(t, cfg, Options{})
			if !tc.want {
				// Let the agent start fully, then look.
				if !testutil.WaitFor(30*time.Second, func() bool {
					return strings.Contains(scrapeMetrics(t, a), "agaobs_audit_head_size")
				}) {
					t.Fatal("the agent never served its audit metrics")
				}
				if body := scrapeMetrics(t, a); strings.Contains(body, "agaobs_audit_verify_ok") ||
					strings.Contains(body, "agaobs_audit_last_verify_timestamp_seconds") {
					t.Errorf("audit_verify_interval 0 exports the verify metrics:\n%s", body)
				}
				if st := a.AuditVerifyStatus(); st.Done {
					t.Errorf("status %+v with the verifier off", st)
				}
				return
			}
			var body string
			if !testutil.WaitFor(30*time.Second, func() bool {
				body = scrapeMetrics(t, a)
				return strings.Contains(body, `agaobs_audit_verify_ok{node="node-v"} 1`+"\n")
			}) {
				t.Fatalf("no agaobs_audit_verify_ok 1 on /metrics:\n%s", body)
			}
			if !strings.Contains(body, `agaobs_audit_last_verify_timestamp_seconds{node="node-v"} `) ||
				!strings.Contains(body, `agaobs_collector_success{collector="audit_verify",node="node-v"} 1`) {
				t.Errorf("the timestamp or the collector's success is missing:\n%s", body)
			}
			st := a.AuditVerifyStatus()
			if !st.Done || !st.OK || st.Error != "" || st.At.IsZero() || time.Since(st.At) > time.Minute {
				t.Errorf("AuditVerifyStatus() = %+v", st)
			}
		})
	}
}
