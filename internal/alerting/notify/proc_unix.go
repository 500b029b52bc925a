//go:build unix

package notify

import (
	"os/exec"
	"syscall"
)

// killProcessGroupOnCancel starts cmd in a new process group and makes
// context cancellation SIGKILL the whole group: /bin/sh -c may run the
// real work in children that would survive a kill of the shell alone.
func killProcessGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group id equals the shell's pid (Setpgid with Pgid 0).
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
