package testutil

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartAlertmanager runs Debian's prometheus-alertmanager on a free
// loopback port for the test (own storage, clustering off, one null
// receiver) and returns its base URL once /-/ready answers. It skips (or
// fails, see SkipOrFail) without the binary.
func StartAlertmanager(tb testing.TB) string {
	tb.Helper()
	return StartAlertmanagerWith(tb, AlertmanagerOptions{})
}

// AlertmanagerOptions configure StartAlertmanagerWith.
type AlertmanagerOptions struct {
	// WebConfig is the content of a --web.config.file (TLS, basic auth);
	// with TLS, set HTTPS and a Client that can pass it.
	WebConfig string
	HTTPS     bool
	Client    *http.Client
}

// StartAlertmanagerWith is StartAlertmanager with a web configuration.
func StartAlertmanagerWith(tb testing.TB, o AlertmanagerOptions) string {
	tb.Helper()
	bin := RequireTool(tb, "prometheus-alertmanager")
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	// "null" quoted: a bare null is YAML's null, not a receiver name.
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: \"null\"\n  group_wait: 0s\nreceivers:\n  - name: \"null\"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	addr := FreeAddr(tb)
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--cluster.listen-address="}
	if o.WebConfig != "" {
		web := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(web, []byte(o.WebConfig), 0o600); err != nil {
			tb.Fatal(err)
		}
		args = append(args, "--web.config.file="+web)
	}
	base := "http://" + addr
	if o.HTTPS {
		base = "https://" + addr
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	var out LockedBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if tb.Failed() {
			tb.Logf("alertmanager output:\n%s", out.String())
		}
	})
	Eventually(tb, 20*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			tb.Fatalf("alertmanager exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := client.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "alertmanager ready on %s", base)
	return base
}
