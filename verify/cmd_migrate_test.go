package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// migrateNode is a simulated 3.10 node with a kmem-active kubepods tree, a
// fake process table and a fake kubelet binary.
type migrateNode struct {
	*memcgtest.Node
	state, procs  string
	kubelet, sums string
	osRelease     string // the kernel release of the profile
}

func newMigrateNode(t *testing.T, kubeletVersion string, kubeletRunning bool) *migrateNode {
	t.Helper()
	return newMigrateNodeOn(t, memcgsim.RHEL78, kubeletVersion, kubeletRunning)
}

func newMigrateNodeOn(t *testing.T, p memcgsim.Profile, kubeletVersion string, kubeletRunning bool) *migrateNode {
	t.Helper()
	node := memcgtest.Sim(t, p)
	h := node.H
	mkdir := func(rel string) error {
		if err := h.Mkdir(rel); err != nil {
			return err
		}
		if rel != "kubepods" {
			return nil
		}
		// What a stock runc does to every cgroup it creates.
		if err := h.Write(rel, memcg.KmemLimit, "1"); err != nil {
			return err
		}
		return h.Write(rel, memcg.KmemLimit, "-1")
	}
	for _, ctr := range memcgtest.BuildKubepods(t, mkdir, memcgtest.QoS, 3, 2) {
		if _, err := node.Sim.AddTask(ctr, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	n := &migrateNode{Node: node, state: t.TempDir(), procs: t.TempDir()}
	procs := map[string]string{"1": "systemd", "77": "containerd-shim"}
	if kubeletRunning {
		procs["4242"] = "kubelet"
	}
	for pid, comm := range procs {
		if err := os.MkdirAll(filepath.Join(n.procs, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.procs, pid, "comm"), []byte(comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	release := "3.10.0-1127.el7.x86_64"
	if p == memcgsim.Modern {
		release = "6.18.44"
	}
	n.osRelease = filepath.Join(t.TempDir(), "osrelease")
	if err := os.WriteFile(n.osRelease, []byte(release+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.kubelet = filepath.Join(t.TempDir(), "kubelet")
	if err := os.WriteFile(n.kubelet, []byte("#!/bin/sh\necho '"+kubeletVersion+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A "+nokmem" stand-in is a nokmem build by its sha256 (--known-sums).
	n.sums = filepath.Join(t.TempDir(), "SHA256SUMS")
	sums := ""
	if strings.Contains(kubeletVersion, "+nokmem") {
		sum, err := binary.FileSHA256(n.kubelet)
		if err != nil {
			t.Fatal(err)
		}
		sums = sum + "  kubelet\n"
	}
	if err := os.WriteFile(n.sums, []byte(sums), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *migrateNode) run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	base := []string{"migrate", "--root", n.H.Root, "--state-dir", n.state, "--proc", n.procs, "--kubelet-path", n.kubelet, "--known-sums", n.sums, "--os-release", n.osRelease}
	code = run(append(base, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestMigrateCommand(t *testing.T) {
	const nokmem, stock = "Kubernetes v1.12.4+nokmem", "Kubernetes v1.12.4"
	tests := []struct {
		name     string
		version  string
		running  bool
		args     []string
		wantCode int
		want     []string // substrings of stderr (or of stdout for -o json)
		changed  bool
	}{
		{"kubelet running", nokmem, true, nil, 1, []string{"kubelet is running (pid [4242])", "node untouched"}, false},
		{"stock kubelet", stock, false, nil, 1, []string{"not a nokmem build", "--force", "node untouched"}, false},
		{"stock kubelet forced", stock, false, []string{"--force"}, 0, []string{"migrated:", "[ok  ] same-paths", "[ok  ] new-kubepods"}, true},
		{"json", nokmem, false, []string{"-o", "json"}, 0, []string{`"outcome": "migrated"`}, true},
		{"dry run", nokmem, true, []string{"--dry-run"}, 0, []string{"cgroups:   12", "processes: 6", "pid moves 6", "renames 2", "force_empty 0", "kmem.limit_in_bytes writes 0", "nothing was changed"}, false},
		{"rollback without journal", nokmem, false, []string{"--rollback"}, 0, []string{"nothing-to-roll-back"}, false},
		{"kubelet running, allowed", nokmem, true, []string{"--allow-running-kubelet"}, 0, []string{"migrated:", "[ok  ] old-tree: the old tree is removed"}, true},
		{"no cleanup", nokmem, false, []string{"--no-cleanup"}, 0, []string{"swapped:", "the kubelet may start", "[ok  ] old-tree: the old tree is set aside"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newMigrateNode(t, tt.version, tt.running)
			code, stdout, stderr := n.run(tt.args...)
			out := stdout + stderr // the report on stdout, errors on stderr
			if slices.Contains(tt.args, "json") {
				out = stdout
				var rep migrate.Report
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Errorf("stdout is not a JSON report: %v\n%s", err, stdout)
				}
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstderr: %s", code, tt.wantCode, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			active, err := n.Sim.KmemActive("kubepods")
			if err != nil {
				t.Fatal(err)
			}
			if active == tt.changed {
				t.Errorf("kubepods kmem-active = %v after the run, want %v", active, !tt.changed)
			}
			if !tt.changed {
				if _, err := os.Stat(filepath.Join(n.state, migrate.JournalFile)); err == nil {
					t.Error("a run that changed nothing left a journal")
				}
			}
		})
	}
}

// TestMigrateCommandRerunIsNoop: on a migrated node a rerun says so and
// changes nothing, even with the kubelet running again.
func TestMigrateCommandRerunIsNoop(t *testing.T) {
	n := newMigrateNode(t, "Kubernetes v1.12.4+nokmem", false)
	if code, _, stderr := n.run(); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(n.procs, "1", "comm"), []byte("kubelet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := n.run()
	if code != 0 || !strings.Contains(stdout, "already-migrated") || !strings.Contains(stdout, "nothing to do") {
		t.Errorf("rerun: exit %d, %s", code, stdout)
	}
}

// TestMigrateCommandWrongKernel: on a kernel without 3.10 semantics (IDs
// are freed at rmdir) migrate refuses with exit 3 and says why, before
// anything changed; --dry-run says the same; --force migrates anyway.
func TestMigrateCommandWrongKernel(t *testing.T) {
	const nokmem = "Kubernetes v1.12.4+nokmem"
	for _, tt := range []struct {
		args []string
		code int
	}{{nil, 3}, {[]string{"--dry-run"}, 3}, {[]string{"--force"}, 0}} {
		t.Run(strings.Join(append([]string{"migrate"}, tt.args...), " "), func(t *testing.T) {
			n := newMigrateNodeOn(t, memcgsim.Modern, nokmem, false)
			before := n.Sim.Costs()
			code, _, stderr := n.run(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, stderr)
			}
			if tt.code == 0 {
				return
			}
			for _, w := range []string{"frees memcg IDs at rmdir", "migrating is pointless", "--force"} {
				if !strings.Contains(stderr, w) {
					t.Errorf("message lacks %q: %s", w, stderr)
				}
			}
			if c := n.Sim.Costs().Sub(before); c.Mkdir+c.Rmdir+c.Rename+c.Move+c.Write != 0 {
				t.Errorf("a refused run changed the node: %v", c)
			}
			if _, err := os.Stat(filepath.Join(n.state, migrate.JournalFile)); err == nil {
				t.Error("a refused run left a journal")
			}
		})
	}
}

// TestMigrateCommandCleanupWithKubeletRunning: after --no-cleanup the
// kubelet may start; a plain rerun then only removes the old tree, with
// the kubelet running, and says so.
func TestMigrateCommandCleanupWithKubeletRunning(t *testing.T) {
	n := newMigrateNode(t, "Kubernetes v1.12.4+nokmem", false)
	if code, stdout, stderr := n.run("--no-cleanup"); code != 0 || !strings.Contains(stdout, "swapped:") {
		t.Fatalf("critical part: exit %d: %s%s", code, stdout, stderr)
	}
	if err := os.WriteFile(filepath.Join(n.procs, "1", "comm"), []byte("kubelet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := n.run()
	if code != 0 || !strings.Contains(stdout, "the old tree is removed") || !strings.Contains(stdout, "resumed from phase swapped") {
		t.Errorf("cleanup with the kubelet running: exit %d: %s%s", code, stdout, stderr)
	}
	if ok, _ := n.H.Exists(migrate.AsideName("kubepods")); ok {
		t.Error("the old tree is still there")
	}
}
