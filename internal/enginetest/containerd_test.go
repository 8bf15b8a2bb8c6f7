package enginetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// repo is the repository root seen from this package.
const repo = "../.."

// loopCmd is a container init that ends on SIGTERM (PID 1 in its PID
// namespace ignores signals it has no handler for).
var loopCmd = []string{"/bin/sh", "-c", `trap "exit 0" TERM; while :; do sleep 1; done`}

// phases records how long each step of an engine test took, for the log.
type phases struct {
	t     *testing.T
	start time.Time
	last  time.Time
	marks []string
}

func newPhases(t *testing.T) *phases {
	now := time.Now()
	return &phases{t: t, start: now, last: now}
}

func (p *phases) mark(name string) {
	now := time.Now()
	p.marks = append(p.marks, name+" "+now.Sub(p.last).Round(time.Millisecond).String())
	p.last = now
}

func (p *phases) log(engine string) {
	p.t.Logf("%s timings: %s; total %s", engine, strings.Join(p.marks, ", "), time.Since(p.start).Round(time.Millisecond))
}

// runcState runs `<runc> --root root state id` and returns status and pid.
func runcState(t *testing.T, runc, root, id string) (string, int) {
	t.Helper()
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	out := Run(t, runc, "--root", root, "state", id)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%s state %s: %v: %s", runc, id, err, out)
	}
	return st.Status, st.Pid
}

// memoryCgroupOf returns the memory cgroup path of pid.
func memoryCgroupOf(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			return parts[2]
		}
	}
	t.Fatalf("pid %d: no memory cgroup in %q", pid, data)
	return ""
}

// checkContainer checks what the engine asked of runc happened: runc
// (asked with the engine's runc root) reports the container running with
// pid, in cgroup parent/name with a 64 MiB memory limit, and the file that
// exec wrote is in its filesystem.
func checkContainer(t *testing.T, runc, runcRoot, id string, cg *Cgroup, rel string) int {
	t.Helper()
	status, pid := runcState(t, runc, runcRoot, id)
	if status != "running" || pid <= 0 {
		t.Fatalf("%s --root %s state %s: status %q pid %d, want running", runc, runcRoot, id, status, pid)
	}
	if got, want := memoryCgroupOf(t, pid), cg.Parent()+"/"+rel; got != want {
		t.Errorf("container init %d in memory cgroup %s, want %s", pid, got, want)
	}
	limit, err := os.ReadFile(filepath.Join(cg.Dir("memory", rel), "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(limit)) != strconv.Itoa(64<<20) {
		t.Errorf("memory.limit_in_bytes of %s: %q, %v; want %d", cg.Dir("memory", rel), limit, err, 64<<20)
	}
	return pid
}

// TestContainerd runs a real container through Debian's containerd 1.6
// (io.containerd.runc.v2 shim) with the default bundle's runc: image
// import, run (memory limit, cgroup under the scratch cgroup), exec, stop
// with SIGTERM, delete; runc itself, asked with the shim's runc root,
// reports the container, and after delete its state and cgroup are gone.
func TestContainerd(t *testing.T) {
	runc := BundleRunc(t, repo)
	t.Logf("runc under test: %s (%s)", runc.Path, runc.Version)
	p := newPhases(t)
	c := StartContainerd(t, ContainerdConfig{Runc: runc.Path})
	p.mark("containerd start")
	img := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteImage(img, Busybox); err != nil {
		t.Fatal(err)
	}
	c.Ctr(t, "images", "import", img)
	p.mark("image import")

	const id = "nokmem-ctr1"
	args := []string{"run", "-d", "--fifo-dir", c.FifoDir, "--runc-binary", runc.Path, "--runc-root", c.RuncRoot,
		"--cgroup", c.Cgroup.Parent() + "/" + id, "--memory-limit", strconv.Itoa(64 << 20), ImageRef, id}
	c.Ctr(t, append(args, loopCmd...)...)
	p.mark("run")
	runcRoot := filepath.Join(c.RuncRoot, c.Namespace)
	pid := checkContainer(t, runc.Path, runcRoot, id, c.Cgroup, id)
	info := c.Ctr(t, "containers", "info", id)
	checkRuntimeOptions(t, info, runc.Path, c.RuncRoot)
	// The check tells runtimes apart: the same record fails it for another runc.
	if runtimeOptions(info, "/usr/local/sbin/other-runc", c.RuncRoot) == nil {
		t.Error("the container record passes the check for another runc")
	}

	out := c.Ctr(t, "tasks", "exec", "--fifo-dir", c.FifoDir, "--exec-id", "e1", id, "/bin/sh", "-c", "echo exec-ok > /tmp/exec-ok; cat /proc/self/cgroup")
	p.mark("exec")
	if !strings.Contains(out, "memory:"+c.Cgroup.Parent()+"/"+id) {
		t.Errorf("exec: process not in the container's memory cgroup:\n%s", out)
	}
	if data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "root", "tmp", "exec-ok")); err != nil || string(data) != "exec-ok\n" {
		t.Errorf("exec: /tmp/exec-ok in the container: %q, %v", data, err)
	}

	c.Ctr(t, "tasks", "kill", "-s", "SIGTERM", id)
	waitFor(t, 15*time.Second, "task "+id+" stopped", func() bool {
		out, _ := c.CtrErr("tasks", "ls")
		return strings.Contains(out, "STOPPED")
	})
	p.mark("stop")
	c.Ctr(t, "tasks", "delete", id)
	c.Ctr(t, "containers", "delete", id)
	p.mark("remove")
	if _, err := os.Stat(filepath.Join(runcRoot, id)); !os.IsNotExist(err) {
		t.Errorf("runc state %s still there after delete: %v", filepath.Join(runcRoot, id), err)
	}
	if _, err := os.Stat(c.Cgroup.Dir("memory", id)); !os.IsNotExist(err) {
		t.Errorf("cgroup %s still there after delete: %v", c.Cgroup.Dir("memory", id), err)
	}
	p.log("containerd " + containerdVersion(t))
}

// checkRuntimeOptions fails the test unless runtimeOptions accepts info.
func checkRuntimeOptions(t *testing.T, info, runc, runcRoot string) {
	t.Helper()
	if err := runtimeOptions(info, runc, runcRoot); err != nil {
		t.Error(err)
	}
}

// runtimeOptions checks that a container record (ctr containers info)
// gives the io.containerd.runc.v2 shim runc as BinaryName and runcRoot as
// Root: its options are a containerd.runc.v1.Options protobuf, whose
// string fields hold both paths verbatim.
func runtimeOptions(info, runc, runcRoot string) error {
	var rec struct {
		Runtime struct {
			Name    string
			Options struct {
				TypeURL string `json:"type_url"`
				Value   []byte `json:"value"`
			}
		}
	}
	if err := json.Unmarshal([]byte(info), &rec); err != nil {
		return fmt.Errorf("ctr containers info: %w", err)
	}
	opts := string(rec.Runtime.Options.Value)
	if rec.Runtime.Name != "io.containerd.runc.v2" || !strings.Contains(opts, runc) || !strings.Contains(opts, runcRoot) {
		return fmt.Errorf("container runtime %s, options %s %q: want io.containerd.runc.v2 with BinaryName %s and Root %s", rec.Runtime.Name, rec.Runtime.Options.TypeURL, opts, runc, runcRoot)
	}
	return nil
}

func containerdVersion(t *testing.T) string {
	f := strings.Fields(Run(t, "containerd", "--version"))
	if len(f) < 3 {
		return "?"
	}
	return f[2]
}

// waitFor polls cond every 100 ms until it holds or timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestContainerdCRI starts containerd with the CRI plugin as the kubelet
// harness does and checks, in the configuration the plugin logs when it
// starts, that it took restrict_oom_score_adj, our runtime as default with
// our runc and root, the scratch CNI directories and the extra keys.
func TestContainerdCRI(t *testing.T) {
	runc := BundleRunc(t, repo)
	c := StartContainerd(t, ContainerdConfig{Runc: runc.Path, CRI: true, CRIExtra: `    sandbox_image = "docker.io/library/nokmem-pause:test"`})
	out := c.Ctr(t, "plugins", "ls")
	if !regexp.MustCompile(`io\.containerd\.grpc\.v1\s+cri\s+.*\s+ok`).MatchString(out) {
		t.Fatalf("CRI plugin not ok:\n%s", out)
	}
	var log string
	waitFor(t, 10*time.Second, "CRI config in containerd's log", func() bool {
		log = c.Log()
		return strings.Contains(log, "Start cri plugin with config")
	})
	for _, want := range []string{"RestrictOOMScoreAdj:true", "DefaultRuntimeName:nokmem", "BinaryName:" + runc.Path, "Root:" + c.RuncRoot,
		"NetworkPluginConfDir:" + filepath.Join(c.Dir, "cni", "net.d"), "SandboxImage:docker.io/library/nokmem-pause:test"} {
		if !strings.Contains(log, want) {
			t.Errorf("containerd's CRI config lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("containerd's log:\n%s", log)
	}
}
