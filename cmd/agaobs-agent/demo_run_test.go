package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/testutil"
)

// makeRunArgs returns the demo's arguments as `make run` passes them (the
// Makefile's run recipe, printed by make -n), with the ring directory in dir.
func makeRunArgs(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	out, err := exec.Command("make", "-n", "--no-print-directory", "-C", "../..", "run", "DEMO_DIR="+dir, "DEMO_GPU=false").Output()
	if err != nil {
		t.Fatalf("make -n run: %v", err)
	}
	recipe := strings.ReplaceAll(string(out), "\\\n", " ")
	for _, line := range strings.Split(recipe, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "bin/agaobs-agent" && f[1] == "demo" {
			return f[1:]
		}
	}
	t.Fatalf("no `bin/agaobs-agent demo` line in make -n run:\n%s", out)
	return nil
}

// A newcomer's `make run`: the terminal shows the live table within a few
// seconds and no event log lines; the event log goes to .demo/events.log.
func TestMakeRunTerminal(t *testing.T) {
	work := t.TempDir()
	args := append(makeRunArgs(t, filepath.Join(work, "rings")),
		"--admin-listen-address", testutil.FreeAddr(t),
		"--prometheus-host", "127.0.0.1", "--prometheus-port", port(t, testutil.FreeAddr(t)))
	cmd := exec.Command(agentBinary(t), args...)
	cmd.Dir = work // the recipe's .demo/ paths are relative to the repository
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // the terminal shows both
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()

	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Read until the second table (at most 60 s, a loaded machine's
	// margin, not a measurement: the first table comes after 2 s, see
	// TestFirstSummaryEarly): nothing read may be an event log line.
	deadline := time.After(60 * time.Second)
	var seen []string
	tables, events, hint := 0, 0, false
read:
	for tables < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			seen = append(seen, l)
			if strings.HasPrefix(l, `{"timestamp"`) || strings.Contains(l, `"event_type"`) {
				if events == 0 {
					t.Errorf("event log line on the terminal: %s", l)
				}
				events++
			}
			if strings.Contains(l, "tail -f .demo/events.log") {
				hint = true
			}
			if strings.HasPrefix(l, "== agaobs demo,") {
				tables++
			}
		case <-deadline:
			break read
		}
	}
	if events > 0 {
		t.Errorf("%d event log lines on the terminal", events)
	}
	if tables == 0 {
		t.Fatalf("no table within 60s; terminal:\n%s", strings.Join(seen, "\n"))
	}
	if !hint {
		t.Errorf("no `tail -f .demo/events.log` hint; terminal:\n%s", strings.Join(seen, "\n"))
	}
	if t.Failed() {
		t.Logf("terminal (first lines):\n%s", strings.Join(seen[:min(len(seen), 40)], "\n"))
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(work, ".demo", "events.log"))
		return strings.Contains(string(b), `"event_type"`)
	}, "no event lines in .demo/events.log")
}

// go-nvml's header marks many functions deprecated; every build that compiles
// it with cgo (make, CI, the container image) silences those warnings.
func TestCgoDeprecationWarningsSilenced(t *testing.T) {
	for _, f := range []string{"Makefile", ".ci/run", "Dockerfile"} {
		b, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "CGO_CFLAGS") && strings.Contains(line, "-Wno-deprecated-declarations") &&
				(strings.HasPrefix(line, "export ") || strings.HasPrefix(line, "ENV ")) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not set CGO_CFLAGS with -Wno-deprecated-declarations", f)
		}
	}
}

// A clean `make build` prints no compiler warning. go-nvml's cgo package is
// compiled afresh (a new CGO_CPPFLAGS define changes the cache key of cgo
// packages only) under the Makefile's own CGO_CFLAGS; the same compile
// without -Wno-deprecated-declarations does warn, so the check can fail.
func TestCleanMakeBuildHasNoWarnings(t *testing.T) {
	bin := t.TempDir()
	build := func(env ...string) string {
		t.Helper()
		cmd := exec.Command("make", "-C", filepath.Join("..", ".."), "build", "BINDIR="+bin)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CGO_CFLAGS=") && !strings.HasPrefix(kv, "GOFLAGS=") && !strings.HasPrefix(kv, "MAKEFLAGS=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		nonce := strconv.FormatInt(time.Now().UnixNano(), 10)
		cmd.Env = append(cmd.Env, append(env, "CGO_CPPFLAGS=-DAGAOBS_FRESH_BUILD="+nonce, "GOFLAGS=-x")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "github.com/NVIDIA/go-nvml/pkg/nvml") {
			t.Fatalf("go-nvml was not compiled afresh; the check proves nothing:\n%.2000s", out)
		}
		return string(out)
	}
	for _, line := range strings.Split(build(), "\n") {
		if strings.Contains(line, "warning:") {
			t.Errorf("make build printed a warning: %s", line)
		}
	}
	if !strings.Contains(build("CGO_CFLAGS=-O2 -g"), "warning:") {
		t.Error("without -Wno-deprecated-declarations the build does not warn either: this test cannot fail")
	}
}
