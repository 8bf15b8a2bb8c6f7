package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/nodelock"
)

// newMigratableNode is a simulated 3.10 node with a kmem-active kubepods
// tree of pods×ctrs containers (a process in each) and no kubelet running:
// verify migrate, given n.nokmemKubelet(), would migrate it.
func newMigratableNode(t *testing.T, pods, ctrs int) *node {
	t.Helper()
	n := newNode(t, memcgsim.RHEL78)
	mkdir := func(rel string) error {
		if err := n.H.Mkdir(rel); err != nil || rel != "kubepods" {
			return err
		}
		if err := n.H.Write(rel, memcg.KmemLimit, "1"); err != nil {
			return err
		}
		return n.H.Write(rel, memcg.KmemLimit, "-1")
	}
	for _, ctr := range memcgtest.BuildKubepods(t, mkdir, memcgtest.QoS, pods, ctrs) {
		if _, err := n.Sim.AddTask(ctr, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	n.write("proc/1/comm", "systemd\n", 0o644)
	return n
}

// migrateCmd is verify migrate on n with its own state and lock directory.
func (n *node) migrateCmd(state, lockDir string) *exec.Cmd {
	args := []string{"--root", n.Mount.Memory, "--state-dir", state, "--lock-dir", lockDir, "migrate", "--proc", n.path("proc")}
	return exec.Command(verifyBin, append(args, n.nokmemKubeletArgs()...)...)
}

// blockFirstRead makes the first read of a kubepods control file wait until
// release is called; blocked is closed when it starts waiting.
func blockFirstRead(sim *memcgsim.Sim) (blocked <-chan struct{}, release func()) {
	b, r := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	var ronce sync.Once
	sim.SetHook(func(op memcgsim.Op) error {
		// Only the first read waits; every other one goes through.
		if op.Kind == memcgsim.OpRead && strings.HasPrefix(op.Cgroup, "kubepods") && first.CompareAndSwap(false, true) {
			close(b)
			<-r
		}
		return nil
	})
	return b, func() { ronce.Do(func() { close(r) }) }
}

// TestTwoMigratesAtOnce is the "no lock": two verify migrate at
// once (separate --state-dirs) raced and the advice printed by the loser
// removed cgroups from the live tree. Now the second run is refused at once,
// names the holder's pid and command line and changes nothing, whether the
// two share the lock directory (node lock) or only the memory root (root
// lock); kill -9 of the holder frees the lock.
func TestTwoMigratesAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name     string
		sameRoot bool
	}{{"same root, different lock dirs", true}, {"same lock dir, different roots", false}} {
		t.Run(tt.name, func(t *testing.T) {
			n1 := newMigratableNode(t, 6, 2)
			n2 := n1
			lock1, lock2 := filepath.Join(t.TempDir(), "lock"), filepath.Join(t.TempDir(), "lock")
			wantLock := n1.Mount.Memory
			if !tt.sameRoot {
				n2 = newMigratableNode(t, 6, 2)
				lock2 = lock1
				wantLock = filepath.Join(lock1, nodelock.FileName)
			}
			blocked, release := blockFirstRead(n1.Sim)
			t.Cleanup(release)

			first := n1.migrateCmd(n1.path("state1"), lock1)
			var out1 bytes.Buffer
			first.Stdout, first.Stderr = io.Discard, &out1
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- first.Wait() }()
			t.Cleanup(func() {
				release()
				first.Process.Kill()
				<-done
			})
			select {
			case <-blocked:
			case err := <-done:
				t.Fatalf("first migrate ended before reading kubepods: %v\n%s", err, out1.String())
			case <-time.After(30 * time.Second):
				t.Fatal("first migrate never read kubepods")
			}

			before1, before2 := n1.state(), n2.state()
			// Count changes from now on; the first run stays blocked in the
			// hook it entered before.
			tried := changes(n2.Sim)
			state2 := n2.path("state2")
			start := time.Now()
			_, stderr, code := runBin(t, n2.migrateCmd(state2, lock2))
			took := time.Since(start)
			if code == 0 {
				t.Fatalf("second migrate succeeded while the first held the lock:\n%s", stderr)
			}
			for _, want := range []string{
				"another verify run holds the lock on " + wantLock,
				fmt.Sprintf("pid %d (%s --root %s --state-dir %s", first.Process.Pid, verifyBin, n1.Mount.Memory, n1.path("state1")),
				"refused before changing anything",
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("second run's message lacks %q:\n%s", want, stderr)
				}
			}
			t.Logf("refused after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))
			if n1.state() != before1 || n2.state() != before2 || tried.Load() != 0 {
				t.Errorf("the refused run changed the node")
			}
			if _, err := os.Stat(state2); err == nil {
				t.Errorf("the refused run created its state dir %s", state2)
			}

			// Read-only commands neither take nor wait for the lock.
			detectArgs := append([]string{"--root", n2.Mount.Memory, "--state-dir", n2.path("state3"), "--lock-dir", lock2, "detect"}, n2.detectArgs()...)
			if stdout, stderr, code := runBin(t, exec.Command(verifyBin, detectArgs...)); code != 1 || !strings.Contains(stdout, "kmem-active cgroups under kubepods") {
				t.Errorf("detect while the lock is held: exit %d\n%s%s", code, stdout, stderr)
			}
			dry := append(n2.migrateCmd(n2.path("state3"), lock2).Args[1:], "--dry-run")
			if stdout, stderr, code := runBin(t, exec.Command(verifyBin, dry...)); code != 0 || !strings.Contains(stdout, "nothing was changed") {
				t.Errorf("migrate --dry-run while the lock is held: exit %d\n%s%s", code, stdout, stderr)
			}

			// kill -9 of the holder frees the lock. (Its FUSE read is
			// answered once released, then it dies.)
			if err := first.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			release()
			if err := <-done; err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("first migrate: %v, want killed", err)
			}
			done <- nil // for the cleanup
			n1.Sim.SetHook(nil)
			stdout, stderr, code := runBin(t, n2.migrateCmd(state2, lock2))
			if code != 0 || !strings.Contains(stdout, "migrated:") {
				t.Errorf("migrate after kill -9 of the holder: exit %d\n%s%s", code, stdout, stderr)
			}
		})
	}
}

// TestInstallAsNobodyWritesFirst is the issue's "as uid 65534, install first
// creates its state dir and backups and only then fails": every command that
// changes the node, and detect with a probe, is refused as uid 65534 before
// anything is written (the state and lock directories' parent is world
// writable, so only the refusal keeps them from being created).
func TestInstallAsNobodyWritesFirst(t *testing.T) {
	n := newMigratableNode(t, 6, 2)
	// uid 65534 must be able to run the binary and read the release.
	pub, err := os.MkdirTemp("", "verify-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pub, "verify")
	b, err := os.ReadFile(verifyBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"install", []string{"install", "--bundle", n.path("bundle.tar.gz"), "--search-dirs", n.path("bin")}, "verify install changes the node and must run as root"},
		{"rollback", []string{"rollback"}, "verify rollback changes the node and must run as root"},
		{"migrate", []string{"migrate", "--proc", n.path("proc"), "--kubelet-path", n.nokmemKubelet()}, "verify migrate changes the node and must run as root"},
		{"run", n.runArgs(), "verify run changes the node and must run as root"},
		{"detect --probe-ids", []string{"detect", "--probe-ids", "5"}, "verify detect --probe-ids creates cgroups under " + n.Mount.Memory + " and must run as root"},
		{"detect --probe-slabinfo", []string{"detect", "--probe-slabinfo"}, "verify detect --probe-slabinfo creates cgroups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, lockDir := filepath.Join(pub, "state"), filepath.Join(pub, "lock")
			before := n.state()
			tried := changes(n.Sim)
			cmd := exec.Command(bin, append([]string{"--root", n.Mount.Memory, "--state-dir", state, "--lock-dir", lockDir}, tt.args...)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			_, stderr, code := runBin(t, cmd)
			if code == 0 || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "this is uid 65534): refused before anything was written") {
				t.Errorf("exit %d, want a refusal %q:\n%s", code, tt.want, stderr)
			}
			ents, err := os.ReadDir(pub)
			if err != nil || len(ents) != 1 {
				t.Errorf("written as uid 65534 next to the binary: %v %v", ents, err)
			}
			if n.state() != before || tried.Load() != 0 {
				t.Errorf("the node changed")
			}
		})
	}
}
