package kubeletnode_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/kubeletnode"
	"github.com/nokmem/nokmem/internal/testenv"
)

// The view passes everything through to the real cgroups and reads
// slabinfo as 3.10 does: EIO, but the header for a cgroup whose kmem limit
// got a value other than -1 (in a trace log or through the view), told
// apart by inode.
func TestKmemView(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	testenv.RequireFUSE(t)
	cg, err := kubeletnode.NewCgroups("nokmem-test-" + randomHex(6))
	must(t, err)
	t.Cleanup(func() {
		if err := cg.Remove(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	mnt := filepath.Join(dir, "view")
	must(t, os.Mkdir(mnt, 0o755))
	real := cg.Memory()
	for _, d := range []string{"kubepods/a", "kubepods/minus"} {
		must(t, os.MkdirAll(filepath.Join(real, d), 0o755))
	}
	trace := filepath.Join(dir, "kubelet.0.strace")
	must(t, os.WriteFile(trace, []byte(
		`12 write(3</sys/fs/cgroup/memory/`+cg.Name+`/kubepods/a/memory.kmem.limit_in_bytes>, "1", 1) = 1
13 write(3</sys/fs/cgroup/memory/`+cg.Name+`/kubepods/minus/memory.kmem.limit_in_bytes>, "-1", 2) = 2
`), 0o644))
	v, err := kubeletnode.MountKmemView(mnt, real, []string{filepath.Join(dir, "*.strace")})
	must(t, err)
	t.Cleanup(func() {
		if err := v.Unmount(); err != nil {
			t.Error(err)
		}
	})
	slab := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(mnt, rel, "memory.kmem.slabinfo"))
		if errors.Is(err, syscall.EIO) {
			return "EIO"
		}
		if err != nil {
			return err.Error()
		}
		return strings.SplitN(string(b), "\n", 2)[0]
	}
	for rel, want := range map[string]string{"": "EIO", "kubepods": "EIO", "kubepods/minus": "EIO", "kubepods/a": "slabinfo - version: 2.1"} {
		if got := slab(rel); got != want {
			t.Errorf("slabinfo of %q: %q, want %q", rel, got, want)
		}
	}
	// mkdir, limits and tasks pass through.
	must(t, os.Mkdir(filepath.Join(mnt, "kubepods", "b"), 0o755))
	must(t, os.WriteFile(filepath.Join(mnt, "kubepods", "b", "memory.limit_in_bytes"), []byte("100000000"), 0o644))
	if b, err := os.ReadFile(filepath.Join(real, "kubepods/b/memory.limit_in_bytes")); err != nil || strings.TrimSpace(string(b)) != "99999744" {
		t.Errorf("real limit %q (%v), want 99999744", b, err)
	}
	sleep := exec.Command("sleep", "60")
	must(t, sleep.Start())
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	must(t, os.WriteFile(filepath.Join(mnt, "kubepods", "b", "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0o644))
	if got := kubeletnode.MemoryCgroup(sleep.Process.Pid, cg.Name); got != "kubepods/b" {
		t.Errorf("task in %q after the write through the view, want kubepods/b", got)
	}
	// A rename keeps the cgroup (and its tasks); a fresh cgroup at an old
	// kmem-active path is not active.
	must(t, os.Rename(filepath.Join(mnt, "kubepods", "a"), filepath.Join(mnt, "kubepods", "a-old")))
	must(t, os.Mkdir(filepath.Join(mnt, "kubepods", "a"), 0o755))
	if got := slab("kubepods/a-old"); got != "slabinfo - version: 2.1" {
		t.Errorf("renamed active cgroup: %q", got)
	}
	if got := slab("kubepods/a"); got != "EIO" {
		t.Errorf("fresh cgroup at the old path: %q, want EIO", got)
	}
	// A kmem limit written through the view activates.
	must(t, os.WriteFile(filepath.Join(mnt, "kubepods", "b", "memory.kmem.limit_in_bytes"), []byte("1"), 0o644))
	if got := slab("kubepods/b"); got != "slabinfo - version: 2.1" {
		t.Errorf("after a kmem limit write through the view: %q", got)
	}
	if got := v.Active(); len(got) != 2 {
		t.Errorf("active %q, want kubepods/a (now a-old) and kubepods/b", got)
	}
	sleep.Process.Kill()
	sleep.Wait()
	for _, d := range []string{"kubepods/b", "kubepods/a", "kubepods/a-old"} {
		must(t, os.Remove(filepath.Join(mnt, d)))
	}
}

// The local images import into a scratch containerd, which the teardown
// leaves with nothing.
func TestContainerdImages(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []string{"containerd", "ctr", "gcc", "busybox"} {
		testenv.RequireCommand(t, c)
	}
	root, _ := filepath.Abs("../..")
	pauseC := kubeletnode.PauseSource(root)
	testenv.RequireFile(t, "the kubelet tree's pause.c (go tool mage build)", pauseC)
	ctx := context.Background()
	dir := t.TempDir()
	pause := filepath.Join(dir, "pause")
	must(t, kubeletnode.BuildPause(ctx, pauseC, pause))
	bb, err := exec.LookPath("busybox")
	must(t, err)
	must(t, kubeletnode.WritePauseImage(pause, filepath.Join(dir, "pause.tar")))
	must(t, kubeletnode.WriteBusyboxImage(bb, filepath.Join(dir, "busybox.tar")))
	c, err := kubeletnode.StartContainerd(ctx, filepath.Join(dir, "containerd"), "/bin/false")
	t.Cleanup(func() {
		if c != nil {
			if err := c.Teardown(ctx); err != nil {
				t.Error(err)
			}
			if !c.Daemon.Exited() {
				t.Errorf("containerd pid %d still runs after the teardown", c.Daemon.Pid())
			}
		}
	})
	must(t, err)
	t.Logf("containerd answered after %s", c.Started)
	must(t, c.Import(ctx, filepath.Join(dir, "pause.tar")))
	must(t, c.Import(ctx, filepath.Join(dir, "busybox.tar")))
	out, err := c.Ctr(ctx, "images", "ls", "-q")
	must(t, err)
	refs := strings.Fields(out)
	for _, want := range []string{kubeletnode.PauseImage, kubeletnode.BusyboxImage} {
		if !slices.Contains(refs, want) {
			t.Errorf("image %s not imported: %q", want, refs)
		}
	}
}

// A copy of the view's mount in another mount namespace keeps the FUSE
// connection alive after the unmount (the kubelet's namespace did, and the
// test hung 14 minutes in cleanup): Unmount aborts the connection and says so.
func TestKmemViewUnmountAborts(t *testing.T) {
	testenv.RequireCgroupV1Memory(t)
	testenv.RequireFUSE(t)
	testenv.RequireCommand(t, "unshare")
	cg, err := kubeletnode.NewCgroups("nokmem-test-" + randomHex(6))
	must(t, err)
	t.Cleanup(func() {
		if err := cg.Remove(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	mnt := filepath.Join(t.TempDir(), "view")
	must(t, os.Mkdir(mnt, 0o755))
	v, err := kubeletnode.MountKmemView(mnt, cg.Memory(), nil)
	must(t, err)
	// A process in a new mount namespace (a private copy of the view).
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "60")
	must(t, holder.Start())
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	err = v.Unmount()
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("Unmount with a copy of the mount elsewhere: %v after %s, want the abort reported", err, took)
	}
	t.Logf("%v (after %s)", err, took.Round(time.Millisecond))
}
