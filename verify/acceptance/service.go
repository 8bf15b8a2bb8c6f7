package acceptance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/nokmem/nokmem/verify/nodeexec"
)

// Service stops and starts the kubelet.
type Service interface {
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
}

// Default service commands (systemd).
const (
	DefaultStopCmd  = "systemctl stop kubelet"
	DefaultStartCmd = "systemctl start kubelet"
)

// CommandService runs shell commands (sh -c) to stop and start the kubelet,
// so any init system can be driven: systemctl by default, or for example
// "service kubelet stop" or "supervisorctl stop kubelet".
type CommandService struct {
	StopCmd, StartCmd string
	// Timeout bounds each command; zero means two minutes.
	Timeout time.Duration
}

// Stop runs StopCmd.
func (s CommandService) Stop(ctx context.Context) error { return s.run(ctx, s.StopCmd) }

// Start runs StartCmd.
func (s CommandService) Start(ctx context.Context) error { return s.run(ctx, s.StartCmd) }

func (s CommandService) run(ctx context.Context, command string) error {
	if strings.TrimSpace(command) == "" {
		return fmt.Errorf("no service command configured")
	}
	t := s.Timeout
	if t == 0 {
		t = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdout, cmd.Stderr = &out, &out
	// A start command may leave a daemon holding its output: once the
	// command itself has exited, stop waiting for the pipe.
	cmd.WaitDelay = nodeexec.WaitDelay
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // exited 0; what it started keeps running
	}
	if err != nil {
		return fmt.Errorf("%q: %w: %s", command, err, strings.TrimSpace(out.String()))
	}
	return nil
}
