package kubeletnode

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Namespace is the containerd namespace of the CRI plugin.
const Namespace = "k8s.io"

// Containerd is a containerd with its CRI plugin on scratch socket, root
// and state directories, whose runc is a wrapper that runs the node's runc
// under strace.
type Containerd struct {
	Dir    string // scratch directory holding everything
	Socket string
	Daemon *Daemon
	// Runc is the runc binary the wrapper runs (the node's, replaced by an install).
	Runc string
	// TraceDir receives one strace log per runc invocation (runc.<pid>.strace).
	TraceDir string
	// Started is how long containerd took to answer on its socket.
	Started time.Duration
}

// runcWrapper runs the node's runc under strace: -f follows runc's threads,
// -b execve lets go of runc init when it execs (the container's process
// then runs untraced, so the trace ends with the runc command).
const runcWrapper = `#!/bin/sh
# Written by internal/kubeletnode: containerd's BinaryName for runc.
exec strace -f -b execve -y -qq -s 64 -e trace=openat,write -o "%s/runc.$$.strace" -- "%s" "$@"
`

// containerdConfig is containerd 1.6's config (version 2) for a scratch
// daemon: its own root, state, sockets and opt directory, then the CRI
// section (CRIConfig, with restrict_oom_score_adj: this machine refuses
// lowering oom_score_adj, even to root) and scratch CNI directories.
const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
[grpc]
  address = "%[2]s"
[ttrpc]
  address = "%[2]s.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
%[3]s  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[1]s/cni/bin"
    conf_dir = "%[1]s/cni/conf"
`

// CRIConfig is the CRI plugin's section of a containerd 1.6 config
// (version 2) for the kubelet scenarios, on this machine and in the qemu
// guest (internal/kubeletguest): sandbox as the sandbox image, a random
// stream port on loopback, the native snapshotter (no overlay on overlay
// or on a tmpfs root) and runcPath through io.containerd.runc.v2 with the
// cgroupfs driver. restrictOOM sets restrict_oom_score_adj.
func CRIConfig(sandbox, runcPath string, restrictOOM bool) string {
	return fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%s"
  restrict_oom_score_adj = %t
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "%s"
        SystemdCgroup = false
`, sandbox, restrictOOM, runcPath)
}

// StartContainerd writes the config and the runc wrapper into dir and
// starts containerd, waiting until it answers on its socket.
func StartContainerd(ctx context.Context, dir, runc string) (*Containerd, error) {
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), Runc: runc, TraceDir: filepath.Join(dir, "runc-trace")}
	if err := os.MkdirAll(c.TraceDir, 0o755); err != nil {
		return nil, err
	}
	wrapper := filepath.Join(dir, "runc-strace")
	if err := os.WriteFile(wrapper, []byte(fmt.Sprintf(runcWrapper, c.TraceDir, runc)), 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(containerdConfig, dir, c.Socket, CRIConfig(PauseImage, wrapper, true))), 0o644); err != nil {
		return nil, err
	}
	start := time.Now()
	d, err := StartDaemon("containerd", filepath.Join(dir, "containerd.log"), nil, "containerd", "--config", cfg)
	if err != nil {
		return nil, err
	}
	c.Daemon = d
	for {
		if _, err := c.Ctr(ctx, "version"); err == nil {
			break
		}
		if d.Exited() || time.Since(start) > 30*time.Second {
			return c, fmt.Errorf("containerd did not answer on %s: %s", c.Socket, d.Tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Started = time.Since(start)
	return c, nil
}

// Ctr runs ctr against this containerd in the CRI namespace.
func (c *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Socket, "--namespace", Namespace}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Import imports a docker-archive image tarball, unpacked for the native snapshotter.
func (c *Containerd) Import(ctx context.Context, tarball string) error {
	_, err := c.Ctr(ctx, "images", "import", "--snapshotter", "native", tarball)
	return err
}

// Task is a container of the runtime with its task's pid.
type Task struct {
	ID  string
	Pid int
	// Status is the task's status (RUNNING, STOPPED...).
	Status string
}

// Tasks lists the runtime's tasks by container id.
func (c *Containerd) Tasks(ctx context.Context) (map[string]Task, error) {
	out, err := c.Ctr(ctx, "tasks", "ls")
	if err != nil {
		return nil, err
	}
	tasks := map[string]Task{}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 3 {
			continue
		}
		var pid int
		fmt.Sscan(f[1], &pid)
		tasks[f[0]] = Task{ID: f[0], Pid: pid, Status: f[2]}
	}
	return tasks, nil
}

// Containers lists the runtime's container ids.
func (c *Containerd) Containers(ctx context.Context) ([]string, error) {
	out, err := c.Ctr(ctx, "containers", "ls", "-q")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Teardown kills and deletes every task and container, removes the images,
// stops containerd and removes its directory's root and state.
func (c *Containerd) Teardown(ctx context.Context) error {
	var errs []string
	if c.Daemon != nil && !c.Daemon.Exited() {
		ids, err := c.Containers(ctx)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for _, id := range ids {
			c.Ctr(ctx, "tasks", "kill", "--all", "--signal", "SIGKILL", id)
			for i := 0; i < 50; i++ {
				if _, err := c.Ctr(ctx, "tasks", "delete", id); err == nil || strings.Contains(err.Error(), "not found") {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if _, err := c.Ctr(ctx, "containers", "delete", id); err != nil && !strings.Contains(err.Error(), "not found") {
				errs = append(errs, err.Error())
			}
		}
		if out, err := c.Ctr(ctx, "images", "ls", "-q"); err == nil {
			for _, ref := range strings.Fields(out) {
				c.Ctr(ctx, "images", "rm", ref)
			}
		}
		if err := c.Daemon.Stop(20 * time.Second); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Shims are left only by tasks that could not be deleted; the caller
	// kills what remains in the scratch cgroups by pid.
	for _, sub := range []string{"root", "state", "opt"} {
		if err := removeAll(filepath.Join(c.Dir, sub)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("containerd teardown: %s", strings.Join(errs, "; "))
	}
	return nil
}

// removeAll removes dir, first unmounting what containerd may have left
// mounted below it (rootfs mounts of tasks).
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			exec.Command("umount", "-l", f[1]).Run()
		}
	}
	return os.RemoveAll(dir)
}
