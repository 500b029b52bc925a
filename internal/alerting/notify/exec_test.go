//go:build unix

package notify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func TestExecWritesStdinAndEnv(t *testing.T) {
	dir := t.TempDir()
	out, env := filepath.Join(dir, "alert.json"), filepath.Join(dir, "env")
	cmd := `printf '%s|%s|%s' "$AGAOBS_ALERT_NAME" "$AGAOBS_ALERT_STATUS" "$AGAOBS_ALERT_SEVERITY" > ` + shellQuote(env) +
		` && cat > ` + shellQuote(out)
	d := start(t, Options{ExecCommand: cmd})
	a := testAlert("ExecMe")
	d.Notify([]Alert{a})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelExec, ResultSuccess) == 1 }, "exec success")

	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := referenceJSON(a, t0)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != string(want) {
		t.Errorf("stdin\n got %s\nwant %s", body, want)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m["rule"] != "ExecMe" {
		t.Errorf("stdin JSON %s: %v", body, err)
	}
	gotEnv, err := os.ReadFile(env)
	if err != nil {
		t.Fatal(err)
	}
	if string(gotEnv) != "ExecMe|firing|warning" {
		t.Errorf("env %q", gotEnv)
	}
}

func TestExecFailureRetried(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "n")
	// Fails on the first run, succeeds on the second.
	cmd := `n=$(cat ` + shellQuote(counter) + ` 2>/dev/null || echo 0); n=$((n+1)); echo $n > ` + shellQuote(counter) + `; [ $n -ge 2 ]`
	d := start(t, Options{ExecCommand: cmd})
	d.Notify([]Alert{testAlert("Flaky")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelExec, ResultSuccess) == 1 }, "exec success on retry")
	if got := stat(d.Dispatcher, ChannelExec, ResultRetried); got != 1 {
		t.Errorf("retried = %d, want 1", got)
	}

	d2 := start(t, Options{ExecCommand: "echo boom >&2; exit 3", MaxAttempts: 2})
	d2.Notify([]Alert{testAlert("Broken")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d2.Dispatcher, ChannelExec, ResultFailed) == 1 }, "exec failed")
	if got := stat(d2.Dispatcher, ChannelExec, ResultRetried); got != 1 {
		t.Errorf("retried = %d, want 1", got)
	}
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The shell's background child must die with it.
	cmd := `sleep 300 & echo $! > ` + shellQuote(pidFile) + `; wait`
	d := start(t, Options{ExecCommand: cmd, Timeout: 300 * time.Millisecond, MaxAttempts: 1})
	begin := time.Now()
	d.Notify([]Alert{testAlert("Sleepy")})
	testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelExec, ResultFailed) == 1 }, "exec killed")
	// Well before the child's 300 s sleep could end: it was killed.
	t.Logf("timeout took %v", time.Since(begin))
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return !processAlive(pid) }, "background child %d still running", pid)
}

// processAlive reports whether pid runs; a zombie (reparented, not yet
// reaped, as in containers whose init does not reap) counts as dead.
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
