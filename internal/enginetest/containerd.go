package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/testenv"
)

// ContainerdConfig says how to run containerd.
type ContainerdConfig struct {
	// Runc is the runc binary: the BinaryName of the io.containerd.runc.v2
	// runtime "nokmem" (the CRI plugin's default runtime), and what Ctr
	// callers pass as --runc-binary.
	Runc string
	// Cgroup is the scratch cgroup under which containers go; nil makes one.
	Cgroup *Cgroup
	// CRI enables the CRI plugin (disabled otherwise), with
	// restrict_oom_score_adj = true: this machine refuses to lower
	// oom_score_adj even to root, and without it runc fails with "can't get
	// final child's PID from pipe: EOF".
	CRI bool
	// CRIExtra are more keys of the CRI plugin's table, e.g.
	// `sandbox_image = "…"`, inserted verbatim.
	CRIExtra string
	// Extra is appended to config.toml verbatim (more plugin tables).
	Extra string
}

// Containerd is a containerd started by a test.
type Containerd struct {
	// Dir holds everything: config.toml, the socket, root, state, the
	// runc root and the log.
	Dir    string
	Socket string
	// Namespace is the containerd namespace Ctr uses.
	Namespace string
	// RuncRoot is the runc state directory to pass to runc (ctr --runc-root).
	RuncRoot string
	// FifoDir is for ctr's --fifo-dir (its default is /run/containerd/fifo).
	FifoDir string
	Runc    string
	Cgroup  *Cgroup
	// Started is how long containerd took to answer.
	Started time.Duration

	d *daemon
}

// StartContainerd starts /usr/bin/containerd on scratch directories under
// a new test temp dir and registers its cleanup: every task and container
// of every namespace killed and deleted, containerd stopped by pid, its
// shims ended by pid, mounts under Dir detached. Without containerd (or
// root, cgroup v1) the test fails under NOKMEM_STRICT=1 and skips otherwise.
func StartContainerd(t testing.TB, cfg ContainerdConfig) *Containerd {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.RequireCommand(t, "containerd")
	testenv.RequireCommand(t, "ctr")
	testenv.RequireCommand(t, "containerd-shim-runc-v2")
	if cfg.Cgroup == nil {
		cfg.Cgroup = ScratchCgroup(t)
	}
	dir := shortTempDir(t, "ctrd")
	c := &Containerd{
		Dir:       dir,
		Socket:    filepath.Join(dir, "containerd.sock"),
		Namespace: "nokmem-test",
		RuncRoot:  filepath.Join(dir, "runc"),
		FifoDir:   filepath.Join(dir, "fifo"),
		Runc:      cfg.Runc,
		Cgroup:    cfg.Cgroup,
	}
	conf := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(conf, []byte(c.config(cfg)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := startDaemon(t, filepath.Join(dir, "containerd.log"), func() error {
		_, err := c.ctr("version")
		return err
	}, 30*time.Second, bin, "--config", conf)
	if d != nil {
		c.d = d
		t.Cleanup(func() { c.cleanup(t) })
	}
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	c.Started = time.Since(start)
	return c
}

// config is containerd's config.toml: every path under Dir.
func (c *Containerd) config(cfg ContainerdConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 2\nroot = %q\nstate = %q\noom_score = 0\n", filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"))
	if !cfg.CRI {
		b.WriteString("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
	}
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n\n[ttrpc]\n  address = %q\n\n", c.Socket, c.Socket+".ttrpc")
	fmt.Fprintf(&b, "[plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = %q\n", filepath.Join(c.Dir, "opt"))
	if cfg.CRI {
		fmt.Fprintf(&b, `  [plugins."io.containerd.grpc.v1.cri"]
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
%s
    [plugins."io.containerd.grpc.v1.cri".cni]
      conf_dir = %q
      bin_dir = %q
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "nokmem"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nokmem]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nokmem.options]
          BinaryName = %q
          Root = %q
          SystemdCgroup = false
`, cfg.CRIExtra, filepath.Join(c.Dir, "cni", "net.d"), filepath.Join(c.Dir, "cni", "bin"), c.Runc, c.RuncRoot)
	}
	b.WriteString(cfg.Extra)
	return b.String()
}

// ctr runs ctr against this containerd in Namespace.
func (c *Containerd) ctr(args ...string) (string, error) {
	return runClient(nil, "ctr", []string{"--address", c.Socket, "--namespace", c.Namespace}, args)
}

// Ctr runs ctr against this containerd and fails the test on error.
func (c *Containerd) Ctr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.ctr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CtrErr runs ctr against this containerd and returns its error.
func (c *Containerd) CtrErr(args ...string) (string, error) { return c.ctr(args...) }

// Pid is containerd's process id.
func (c *Containerd) Pid() int { return c.d.pid() }

// Log is containerd's log so far.
func (c *Containerd) Log() string { return c.d.all() }

// cleanup removes what the test left in containerd, stops it and its
// shims, and detaches every mount under Dir.
func (c *Containerd) cleanup(t testing.TB) {
	t.Helper()
	nss, _ := c.ctr("namespaces", "ls", "-q")
	for _, ns := range strings.Fields(nss) {
		in := &Containerd{Socket: c.Socket, Namespace: ns}
		tasks, _ := in.ctr("tasks", "ls", "-q")
		for _, id := range strings.Fields(tasks) {
			in.ctr("tasks", "kill", "-s", "SIGKILL", id)
			if _, err := in.ctr("tasks", "delete", "-f", id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		ctrs, _ := in.ctr("containers", "ls", "-q")
		for _, id := range strings.Fields(ctrs) {
			if _, err := in.ctr("containers", "delete", id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
	if err := c.d.stop(); err != nil {
		t.Errorf("cleanup: stop containerd: %v", err)
	}
	if err := endPids(pidsWithArg(c.Socket)); err != nil {
		t.Errorf("cleanup: containerd shims: %v", err)
	}
	if err := unmountUnder(c.Dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i].Mountpoint, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", mounts[i].Mountpoint, err)
		}
	}
	return nil
}

// shortTempDir is a new directory under /tmp, removed on cleanup (after
// the engines' own cleanups, which are registered later and so run
// first). Unix socket paths must stay under 108 bytes, which t.TempDir's
// long names may not.
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nokmem-"+prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmountUnder(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}
