package e2e_test

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/testutil"
)

// The demo has a sample for every seed family within 10 s of start, and
// `promtool check metrics` reports nothing in conventional naming and only
// the seed names' three findings in compat naming.
func TestDemoExpositionPromtool(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	for _, tc := range []struct {
		naming schema.Naming
		want   []string
	}{
		{schema.Conventional, nil},
		{schema.Compat, []string{
			`aga_forward_latency_us metric names should not contain abbreviated units`,
			`aga_knowledge_count non-histogram and non-summary metrics should not have "_count" suffix`,
			`aga_knowledge_pinned_count non-histogram and non-summary metrics should not have "_count" suffix`,
		}},
	} {
		t.Run(string(tc.naming), func(t *testing.T) {
			t.Parallel()
			port := testutil.FreePort(t)
			cmd := exec.Command(agentBinary(t), "demo", "--ring-dir", t.TempDir(), "--state-path", "", "--audit-storage-path", filepath.Join(t.TempDir(), "audit.db"), "--admin-listen-address", "",
				"--prometheus-host", "127.0.0.1", "--prometheus-port", port, "--prometheus-naming", string(tc.naming))
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			var body []byte
			var missing []string
			for time.Since(start) < 10*time.Second {
				time.Sleep(250 * time.Millisecond)
				resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
				if err != nil {
					continue
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				missing = missing[:0]
				for _, f := range schema.Families() {
					if !bytes.Contains(body, []byte("\n"+f.Name("aga", tc.naming))) {
						missing = append(missing, f.Name("aga", tc.naming))
					}
				}
				if len(missing) == 0 {
					break
				}
			}
			if len(missing) > 0 {
				t.Fatalf("families without samples 10 s after start: %v", missing)
			}
			t.Logf("every family had samples after %v", time.Since(start).Round(100*time.Millisecond))
			check := exec.Command(promtool, "check", "metrics")
			check.Stdin = bytes.NewReader(body)
			out, _ := check.CombinedOutput()
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if l != "" {
					got = append(got, l)
				}
			}
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("promtool check metrics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
