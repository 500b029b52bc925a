package reliability_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperProc is a producer process started from this test binary.
type helperProc struct {
	cmd    *exec.Cmd
	pid    int
	killed time.Time
}

// startHelper runs this binary as producer name (AGAOBS_RELIABILITY_HELPER=
// kind) writing into dir, and waits for its "ready".
func startHelper(t *testing.T, dir, name, kind string, env ...string) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "AGAOBS_RELIABILITY_HELPER="+kind, "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER="+name), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper %s: %q", name, line)
	}
	return &helperProc{cmd: cmd, pid: cmd.Process.Pid}
}

// kill SIGKILLs the helper and reaps it (as its parent would).
func (p *helperProc) kill() {
	p.killed = time.Now()
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

var reportMu sync.Mutex

// report appends one result row to $AGAOBS_RELIABILITY_REPORT (JSON lines)
// for RELIABILITY.md; without it the row only goes to the test log.
func report(t *testing.T, test, load, result string) {
	t.Helper()
	t.Logf("RESULT %s | %s | %s", test, load, result)
	path := os.Getenv("AGAOBS_RELIABILITY_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	json.NewEncoder(f).Encode(map[string]string{"test": test, "load": load, "result": result, "go_test": t.Name(), "full": strconvBool(full())})
}

func strconvBool(b bool) string {
	if b {
		return "full"
	}
	return "short"
}

func itoa(i int) string { return strconv.Itoa(i) }
