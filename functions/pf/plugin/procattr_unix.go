//go:build unix

package plugin

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the plugin in a process group of its own, so that a terminal's Ctrl-C
// reaches only the host, which then drains and stops its plugins in order.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
