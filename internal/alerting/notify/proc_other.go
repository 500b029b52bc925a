//go:build !unix

package notify

import "os/exec"

// killProcessGroupOnCancel keeps os/exec's default (kill the process
// itself): process groups are a unix notion.
func killProcessGroupOnCancel(*exec.Cmd) {}
