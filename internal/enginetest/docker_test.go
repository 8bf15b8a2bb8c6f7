package enginetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/semver"
)

// TestDocker runs a real container through Debian's Docker 20.10 with the
// default bundle's runc registered as runtime "nokmem" and made the
// default: image load, run (memory limit, cgroup parent under the scratch
// cgroup), exec, stop (SIGTERM), rm; dockerd reports the runtime, runc
// asked with dockerd's runc root reports the container, and after rm its
// state and cgroup are gone.
func TestDocker(t *testing.T) {
	runc := BundleRunc(t, repo)
	t.Logf("runc under test: %s (%s)", runc.Path, runc.Version)
	p := newPhases(t)
	c := StartContainerd(t, ContainerdConfig{Runc: runc.Path})
	p.mark("containerd start")
	d := StartDockerd(t, c)
	p.mark("dockerd start")

	var info struct {
		ServerVersion  string
		DefaultRuntime string
		CgroupDriver   string
		Runtimes       map[string]struct {
			Path string `json:"path"`
		}
	}
	if err := json.Unmarshal([]byte(d.Docker(t, "info", "--format", "{{json .}}")), &info); err != nil {
		t.Fatal(err)
	}
	if info.DefaultRuntime != RuntimeName || info.Runtimes[RuntimeName].Path != runc.Path || info.CgroupDriver != "cgroupfs" {
		t.Fatalf("docker info: default runtime %q, runtimes %v, cgroup driver %q: want %s at %s, cgroupfs", info.DefaultRuntime, info.Runtimes, info.CgroupDriver, RuntimeName, runc.Path)
	}

	img := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteImage(img, Busybox); err != nil {
		t.Fatal(err)
	}
	d.Docker(t, "load", "-i", img)
	p.mark("image load")

	args := []string{"run", "-d", "--name", "nokmem-dkr1", "--network", "none", "--memory", strconv.Itoa(64 << 20)}
	if !honorsErrnoRet(t, runc.Path) {
		// Docker 20.10's default seccomp profile answers clone3 with
		// ENOSYS through errnoRet, which runc honors only since rc91
		// (41aa1966): an older runc refuses the profile. Show that, then
		// run the cycle without seccomp.
		out, err := d.DockerErr("run", "-d", "--name", "nokmem-seccomp", "--network", "none", ImageTag, "/bin/true")
		refusal := lineWith(out, "clone3")
		if err == nil || refusal == "" {
			t.Fatalf("runc before rc91 with Docker 20.10's seccomp profile: want the clone3 refusal, got %v:\n%s", err, out)
		}
		t.Logf("%s cannot load Docker 20.10's default seccomp profile (%s); the cycle runs with --security-opt seccomp=unconfined", runc.Version, refusal)
		d.Docker(t, "rm", "-f", "nokmem-seccomp")
		args = append(args, "--security-opt", "seccomp=unconfined")
	}
	args = append(args, ImageTag)
	id := strings.TrimSpace(d.Docker(t, append(args, loopCmd...)...))
	p.mark("run")
	var ins struct {
		HostConfig struct{ Runtime string }
		State      struct {
			Pid    int
			Status string
		}
	}
	d.Inspect(t, id, &ins)
	if ins.HostConfig.Runtime != RuntimeName {
		t.Errorf("container runtime %q, want %s", ins.HostConfig.Runtime, RuntimeName)
	}
	// dockerd 20.10 (daemon/runtime_unix.go, defaultV2ShimConfig) gives
	// every runtime the runc root <exec-root>/runtime-runc; the shim adds
	// the containerd namespace.
	shimRoot := filepath.Join(d.ExecRoot, "runtime-runc")
	moby := &Containerd{Socket: c.Socket, Namespace: d.Namespace}
	checkRuntimeOptions(t, moby.Ctr(t, "containers", "info", id), runc.Path, shimRoot)
	runcRoot := filepath.Join(shimRoot, d.Namespace)
	pid := checkContainer(t, runc.Path, runcRoot, id, c.Cgroup, id)
	if pid != ins.State.Pid {
		t.Errorf("runc says pid %d, docker inspect %d", pid, ins.State.Pid)
	}

	out := d.Docker(t, "exec", id, "/bin/sh", "-c", "echo exec-ok > /tmp/exec-ok; cat /proc/self/cgroup")
	p.mark("exec")
	if !strings.Contains(out, "memory:"+c.Cgroup.Parent()+"/"+id) {
		t.Errorf("exec: process not in the container's memory cgroup:\n%s", out)
	}
	if data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "root", "tmp", "exec-ok")); err != nil || string(data) != "exec-ok\n" {
		t.Errorf("exec: /tmp/exec-ok in the container: %q, %v", data, err)
	}

	d.Docker(t, "stop", "--time", "10", id)
	p.mark("stop")
	d.Inspect(t, id, &ins)
	if ins.State.Status != "exited" {
		t.Errorf("after docker stop: status %q", ins.State.Status)
	}
	d.Docker(t, "rm", id)
	p.mark("remove")
	if _, err := os.Stat(filepath.Join(runcRoot, id)); !os.IsNotExist(err) {
		t.Errorf("runc state %s still there after rm: %v", filepath.Join(runcRoot, id), err)
	}
	if _, err := os.Stat(c.Cgroup.Dir("memory", id)); !os.IsNotExist(err) {
		t.Errorf("cgroup %s still there after rm: %v", c.Cgroup.Dir("memory", id), err)
	}
	p.log("docker " + info.ServerVersion)
}

// honorsErrnoRet reports whether runc --version is rc91 or later, where
// runc honors a seccomp rule's errnoRet (opencontainers/runc 41aa1966).
func honorsErrnoRet(t *testing.T, runc string) bool {
	t.Helper()
	v := strings.TrimPrefix(firstLine(Run(t, runc, "--version")), "runc version ")
	sv := "v" + v
	if !semver.IsValid(sv) {
		t.Fatalf("%s --version: %q is not a semantic version", runc, v)
	}
	return semver.Compare(sv, "v1.0.0-rc91") >= 0
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// lineWith returns the first line of s that contains sub, or "".
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
