// Package nodeexec runs a node's programs (kubelet --version, runc
// --version, the kubelet service commands) with a hard deadline: the
// program runs in its own process group, the whole group is killed when the
// deadline passes, and Wait gives up on output pipes that something else
// still holds open (exec.Cmd.WaitDelay), so that no program, and no child
// it leaves behind, can make verify hang.
package nodeexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// WaitDelay is how long Run waits, after the process is killed (or has
// exited), for its output pipes to close before it closes them itself.
const WaitDelay = time.Second

// ErrTimeout is returned (wrapped) when the deadline killed the program.
var ErrTimeout = errors.New("timed out")

// Run runs name with args under ctx, killed with its process group after
// timeout, and returns its stdout and stderr. The longest Run takes is
// timeout + WaitDelay.
func Run(ctx context.Context, timeout time.Duration, name string, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a shell's children too.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = WaitDelay
	err = cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && cmd.Process != nil {
		// The program exited but left a child holding its output: kill
		// what is left of its group (the group still has a member, so its
		// number cannot have been reused).
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = fmt.Errorf("exited, but left a process holding its output open (killed): %w", err)
	}
	if ctx.Err() != nil && err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		err = fmt.Errorf("%w after %s: %v", ErrTimeout, timeout, err)
	}
	return out.Bytes(), errb.Bytes(), err
}
