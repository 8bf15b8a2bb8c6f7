package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is a long-running process started by a test, with its log file.
type daemon struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startDaemon starts name with args, its output going to logPath, and
// waits until ready returns nil (or the process exits, or timeout).
func startDaemon(t testing.TB, logPath string, ready func() error, timeout time.Duration, name string, args ...string) (*daemon, error) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a test's ^C does not reach it before cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return d, nil
		}
		select {
		case werr := <-d.done:
			d.done <- werr
			return d, fmt.Errorf("%s exited before it was ready (%v): %s", name, werr, d.tail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("%s not ready after %s: %v: %s", name, timeout, err, d.tail())
		}
	}
}

// pid is the daemon's process id.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM to the daemon (by pid), waits up to 20 s, then
// SIGKILL. It is a no-op when the daemon has exited already.
func (d *daemon) stop() error {
	select {
	case err := <-d.done:
		d.done <- err
		return nil
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-d.done:
		d.done <- err
		return nil
	case <-time.After(20 * time.Second):
	}
	d.cmd.Process.Kill()
	err := <-d.done
	d.done <- err
	return fmt.Errorf("pid %d ignored SIGTERM for 20 s and was killed: %s", d.pid(), d.tail())
}

// tail is the end of the daemon's log, for error messages.
func (d *daemon) tail() string {
	data, _ := os.ReadFile(d.log)
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return string(bytes.TrimSpace(data))
}

// all is the daemon's whole log.
func (d *daemon) all() string {
	data, _ := os.ReadFile(d.log)
	return string(data)
}

// pidsWithArg lists the processes whose command line holds arg (the
// daemon's own socket path): the shims a daemon started, which outlive it.
func pidsWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(cl, []byte{0}) {
			if string(a) == arg || bytes.HasSuffix(a, []byte("="+arg)) || string(a) == "unix://"+arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// endPids sends SIGKILL to each pid and waits (up to 5 s) until it is gone.
func endPids(pids []int) error {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("pid %d still there after SIGKILL", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// runClient runs a daemon's client (ctr, docker) with the flags that point
// it at the daemon, then args; env nil is this process's environment. The
// error names the command and carries its output.
func runClient(env []string, name string, daemonFlags, args []string) (string, error) {
	cmd := exec.Command(name, append(slices.Clone(daemonFlags), args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
