package testutil

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// RequirePrivilegedEnv is the variable .ci/run sets: tests that would skip
// for want of root, eBPF privileges or a tool must fail instead.
const RequirePrivilegedEnv = "AGAOBS_TEST_REQUIRE_BPF"

// Required reports whether privileged tests must run.
func Required() bool { return os.Getenv(RequirePrivilegedEnv) == "1" }

// SkipOrFail skips the test with reason, or fails it under
// AGAOBS_TEST_REQUIRE_BPF=1.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if Required() {
		tb.Fatalf("%s (%s=1 requires this test to run)", reason, RequirePrivilegedEnv)
	}
	tb.Skip(reason)
}

// RequireRoot skips (or fails, see SkipOrFail) unless running as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(tb, "needs root")
	}
}

// RequireTool skips (or fails) unless the named program is on PATH and
// returns its path.
func RequireTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(tb, name+" not installed")
	}
	return p
}

// Eventually polls cond every 10 ms until it is true or timeout passes, then
// fails with msg.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	if !WaitFor(timeout, cond) {
		tb.Fatalf("timed out after %v: "+msg, append([]any{timeout}, args...)...)
	}
}

// WaitFor polls cond every 10 ms until it is true (true) or timeout passes
// (false): for a caller whose failure message needs the state at the end.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
