package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// pacedAgent is one agent process under paced load from producer
// processes (`agaobs-bench load`): the harness of the benchmarks that
// interleave two modes window by window in one run (live, anomaly-cost).
type pacedAgent struct {
	dir, work string // ring directory (tmpfs), work directory (audit store, config)
	admin     string // host:port of the admin listener
	metrics   string // the /metrics URL
	cmd       *exec.Cmd
	loads     []*exec.Cmd
}

// startPacedAgent starts bin on loopback ports base+1 (admin), base+2
// (metrics) and base+3 (health), with a fresh ring directory and audit
// store, extra flags after the common ones, and waits for its admin API.
// Close stops it and its producers and removes the directories.
func startPacedAgent(bin, name string, base int, extra ...string) (*pacedAgent, error) {
	a := &pacedAgent{admin: fmt.Sprintf("127.0.0.1:%d", base+1), metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", base+2)}
	var err error
	if a.dir, err = os.MkdirTemp("/dev/shm", "agaobs-bench-"+name+"-"); err != nil {
		return nil, err
	}
	if a.work, err = os.MkdirTemp("", "agaobs-bench-"+name+"-"); err != nil {
		a.Close()
		return nil, err
	}
	args := append([]string{"run", "--ring-dir", a.dir, "--state-path", "", "--admin-listen-address", a.admin,
		"--agent-log-level", "error", "--prometheus-host", "127.0.0.1", "--prometheus-port", strconv.Itoa(base + 2),
		"--health-host", "127.0.0.1", "--health-port", strconv.Itoa(base + 3),
		"--audit-storage-path", filepath.Join(a.work, "aga_audit.db")}, extra...)
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stderr = os.Stderr
	if err := a.cmd.Start(); err != nil {
		a.cmd = nil
		a.Close()
		return nil, err
	}
	if err := waitHTTP("http://" + a.admin + "/api/v1/status"); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Load starts n producer processes (bench-0 … bench-n-1), each writing
// rate forwards per second cycling through layers, for d.
func (a *pacedAgent) Load(n, rate, layers int, d time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for i := range n {
		c := exec.Command(self, "load", "--ring-dir", a.dir, "--rate", strconv.Itoa(rate), "--layers", strconv.Itoa(layers),
			"--duration", d.String(), "--producer", fmt.Sprintf("bench-%d", i))
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			return err
		}
		a.loads = append(a.loads, c)
	}
	return nil
}

// Pid is the agent's process id.
func (a *pacedAgent) Pid() int { return a.cmd.Process.Pid }

// Close stops the producers, then the agent, and removes the directories.
func (a *pacedAgent) Close() {
	for _, c := range a.loads {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}
	if a.cmd != nil {
		a.cmd.Process.Signal(syscall.SIGTERM)
		a.cmd.Wait()
	}
	if a.dir != "" {
		os.RemoveAll(a.dir)
	}
	if a.work != "" {
		os.RemoveAll(a.work)
	}
}
