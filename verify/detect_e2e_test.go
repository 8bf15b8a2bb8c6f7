package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/migrate"
	"github.com/nokmem/nokmem/verify/report"
)

// runBin runs cmd and returns stdout, stderr and the exit code.
func runBin(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestWrongRootPasses is the "a wrong node passes": with --root a
// plain directory, detect, detect --npd, run, assert and migrate all said
// something harmless and exited 0. Each must now refuse, non-zero, saying
// what --root is, and write nothing.
func TestWrongRootPasses(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	empty := t.TempDir()
	lockDir := filepath.Join(t.TempDir(), "lock")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		stdout   bool // the message is the NPD line on stdout
	}{
		{"detect", append([]string{"detect"}, n.detectArgs()...), 2, false},
		{"detect --npd", append([]string{"detect", "--npd"}, n.detectArgs()...), 2, true},
		{"run", n.runArgs(), 1, false},
		{"assert", []string{"assert"}, 1, false},
		{"migrate", []string{"migrate", "--force", "--proc", t.TempDir()}, 1, false},
		{"migrate --dry-run", []string{"migrate", "--dry-run"}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			args := append([]string{"--root", empty, "--state-dir", state, "--lock-dir", lockDir}, tt.args...)
			stdout, stderr, code := runBin(t, exec.Command(verifyBin, args...))
			msg := stderr
			if tt.stdout {
				msg = stdout
				if !strings.HasPrefix(stdout, "unknown: ") || strings.Count(stdout, "\n") != 1 {
					t.Errorf("npd output %q, want one unknown: line", stdout)
				}
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout %s\nstderr %s", code, tt.wantCode, stdout, stderr)
			}
			want := "not the root of a cgroup v1 memory hierarchy: a plain directory"
			if tt.stdout {
				want = "not a cgroup v1 memory root: --root /"
			}
			if !strings.Contains(msg, want) || !tt.stdout && !strings.Contains(msg, "--root "+empty) {
				t.Errorf("message %q does not say what is wrong with --root", msg)
			}
			for _, p := range []string{state, lockDir} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s was created", p)
				}
			}
			if ents, _ := os.ReadDir(empty); len(ents) != 0 {
				t.Errorf("%s: %d entries written", empty, len(ents))
			}
		})
	}
}

// changes counts every operation that would change the simulator.
func changes(sim *memcgsim.Sim) *atomic.Int64 {
	var n atomic.Int64
	sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind != memcgsim.OpRead {
			n.Add(1)
		}
		return nil
	})
	return &n
}

// TestDetectNeedsWritableRoot is the issue's "detect needs a writable memory
// root": on a read-only mount (how node-problem-detector runs) detect and
// detect --npd must work, and detect must not even try to write; only the
// opt-in probe writes.
func TestDetectNeedsWritableRoot(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 4)
	tried := changes(n.Sim)
	n.Sim.ReadOnly(true)
	out, stderr, code := n.verify(append([]string{"detect", "-o", "json"}, n.detectArgs()...)...)
	var r detect.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 {
		t.Fatalf("detect on a read-only mount: exit %d, %v\n%s", code, err, stderr)
	}
	if !r.Semantics310 || len(r.KmemActive) != 3 || r.Leaked.IDs != 4 {
		t.Errorf("semantics %+v, active %v, leaked %d; want 3.10, 3, 4", r.Semantics, r.KmemActive, r.Leaked.IDs)
	}
	out, _, code = n.verify(append([]string{"detect", "--npd"}, n.detectArgs()...)...)
	if code != 1 || !strings.HasPrefix(out, "3 kmem-active cgroups, 4 leaked IDs") {
		t.Errorf("npd on a read-only mount: exit %d %q", code, out)
	}
	if got := tried.Load(); got != 0 {
		t.Errorf("detect tried %d changes", got)
	}
	// The mkdir probe is opt-in, and says why it failed.
	_, stderr, code = n.verify(append([]string{"detect", "--probe-slabinfo"}, n.detectArgs()...)...)
	if code != 2 || !strings.Contains(stderr, "read-only file system") {
		t.Errorf("detect --probe-slabinfo on a read-only mount: exit %d %s", code, stderr)
	}
}

// TestDetectLeakedIDsCountedByName is the RHEL 7.8 finding: after a
// migration removed kmem-active kubepods, burstable, besteffort and pod
// cgroups, detect said "leaked IDs (est.): 1" because cgroups with those
// names live again. Counted by kmemcg ID, every removed ID is leaked; the
// simulator's hidden leak table is the oracle.
func TestDetectLeakedIDsCountedByName(t *testing.T) {
	n := newMigratableNode(t, 3, 1)
	if _, stderr, code := n.verify(append([]string{"migrate", "--proc", n.path("proc")}, n.nokmemKubeletArgs()...)...); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	leaked := len(n.Sim.LeakedIDs())
	if leaked != 9 {
		t.Fatalf("simulator leaked %d IDs, want the 9 of the old tree", leaked)
	}
	out, stderr, code := n.verify(append([]string{"detect", "-o", "json"}, n.detectArgs()...)...)
	var r detect.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("detect: exit %d %v\n%s", code, err, stderr)
	}
	if r.Leaked.IDs != leaked || len(r.Leaked.Dead) != leaked {
		t.Errorf("detect counts %d leaked IDs (%v), simulator holds %d", r.Leaked.IDs, r.Leaked.Dead, leaked)
	}
	if len(r.KmemActive) != 0 || code != 1 { // stock runc in bin/: still a problem
		t.Errorf("after migration: exit %d, active %v", code, r.KmemActive)
	}
}

// TestDetectLeakedIDsWithLiveKmemCgroups: with kmem-active cgroups still
// live, some owning slab caches (RHEL 7.8's slabinfo names them by their
// root cache, so their IDs do not show) and a live cgroup that has the name
// of a leaked one, detect's count equals the simulator's hidden leak table
// and says it is exact.
func TestDetectLeakedIDsWithLiveKmemCgroups(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 4) // podA with a task; job0..job3 churned: 4 leaked
	if err := n.H.Mkdir("kubepods/burstable/job0"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Sim.AddTask("kubepods/burstable/job0", 1<<20); err != nil {
		t.Fatal(err)
	}
	leaked := len(n.Sim.LeakedIDs())
	out, stderr, code := n.verify(append([]string{"detect", "-o", "json"}, n.detectArgs()...)...)
	var r detect.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("detect: exit %d %v\n%s", code, err, stderr)
	}
	if leaked != 4 || r.Leaked.IDs != leaked || !r.Leaked.Exact || r.Leaked.LiveOwners != 2 {
		t.Errorf("detect counts %d leaked IDs (exact %v, %d live owners), simulator holds %d; want 4, exact, 2 owners (podA, job0)", r.Leaked.IDs, r.Leaked.Exact, r.Leaked.LiveOwners, leaked)
	}
	stdout, stderr, _ := n.verify(append([]string{"detect"}, n.detectArgs()...)...)
	if text := stdout + stderr; !strings.Contains(text, "leaked IDs: 4, exact") {
		t.Errorf("detect's text does not say the count is exact:\n%s", text)
	}
}

// TestDetectLeftovers: a temporary tree, an unfinished journal and an
// install without a signature check are each a problem, on any kernel.
func TestDetectLeftovers(t *testing.T) {
	n := newNode(t, memcgsim.Modern)
	n.kubelet("kubepods", 0)
	// A runc without known vulnerabilities: the stock rc5 would be a problem.
	n.write("bin/runc", versionScript("runc version 1.4.4"), 0o755)
	args := append([]string{"detect"}, n.detectArgs()...)
	if _, stderr, code := n.verify(args...); code != 0 {
		t.Fatalf("clean modern node: exit %d, want 0 (healthy)\n%s", code, stderr)
	}
	if err := n.H.Mkdir(migrate.TempPrefix + "-kubepods"); err != nil {
		t.Fatal(err)
	}
	n.write("state/"+migrate.JournalFile, `{"phase":"moved-out","kubepods":"kubepods","temp":"nokmem-migrate-kubepods"}`, 0o600)
	n.write("state/install.json", `{"entries":[],"signature_skipped":true}`, 0o600)
	stdout, stderr, code := n.verify(args...)
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{"PROBLEM:           1 temporary migration trees left under the memory root: [nokmem-migrate-kubepods]",
		"PROBLEM:           unfinished migration journal " + n.path("state/"+migrate.JournalFile) + " (phase moved-out)",
		"PROBLEM:           install record " + n.path("state/install.json") + ": installed without a signature check",
		"verdict:           problem found (exit 1)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	out, _, code := n.verify(append([]string{"detect", "--npd"}, n.detectArgs()...)...)
	if code != 1 || out != "1 leftover nokmem-migrate trees, unfinished migration, unsigned install\n" {
		t.Errorf("npd: exit %d %q", code, out)
	}
}

// TestDetectExitCodes: plain detect exits 0 healthy, 1 problem, 2 unknown,
// and never 0 while printing PROBLEM (the last detect finding).
func TestDetectExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		profile memcgsim.Profile
		setup   func(n *node)
		want    int
	}{
		{"3.10 kmem-active", memcgsim.RHEL78, func(n *node) { n.kubelet("kubepods", 1) }, 1},
		{"3.10 clean, nokmem builds", memcgsim.RHEL78, func(n *node) {
			if err := n.H.Mkdir("kubepods"); err != nil {
				t.Fatal(err)
			}
			n.write("bin/kubelet", "#!/bin/sh\necho 'Kubernetes v1.12.4+nokmem'\n", 0o755)
			n.write("bin/runc", "#!/bin/sh\necho 'runc version 1.0.0-rc5+nokmem'\n", 0o755)
			n.knownSums("bin/kubelet", "bin/runc")
		}, 0},
		{"modern, stock builds", memcgsim.Modern, func(n *node) { n.kubelet("kubepods", 1) }, 0},
		{"release contradicts the root", memcgsim.Modern, func(n *node) {
			n.write("osrelease", "3.10.0-1127.el7.x86_64\n", 0o644)
			n.write("bin/runc", versionScript("runc version 1.4.4"), 0o755) // rc5's CVEs would be a problem
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.profile)
			tt.setup(n)
			stdout, stderr, code := n.verify(append([]string{"detect"}, n.detectArgs()...)...)
			if code != tt.want || strings.Contains(stdout, "PROBLEM") != (tt.want == 1) {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.want, stdout, stderr)
			}
			out, _, npdCode := n.verify(append([]string{"detect", "--npd"}, n.detectArgs()...)...)
			if npdCode != tt.want || utf8.RuneCountInString(strings.TrimSuffix(out, "\n")) > report.NPDMaxMessage {
				t.Errorf("npd: exit %d, want %d: %q", npdCode, tt.want, out)
			}
		})
	}
}

// TestProbeIDsFullIDSpace is the issue's "detect --probe-ids 70000 on 6.18
// fails with EBUSY": a full ID space is reported as exhausted at N.
func TestProbeIDsFullIDSpace(t *testing.T) {
	n := newNode(t, memcgsim.Modern)
	n.write("bin/runc", versionScript("runc version 1.4.4"), 0o755) // rc5's CVEs would make detect exit 1
	const free = 5
	n.Sim.LimitIDs(n.Sim.IDsInUse() + free)
	n.Sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind == memcgsim.OpMkdir && n.Sim.IDsInUse() >= 1+free {
			return syscall.EBUSY // xa_alloc's errno for a full ID space, as on 6.18
		}
		return nil
	})
	out, stderr, code := n.verify(append([]string{"detect", "-o", "json", "--probe-ids", "70000"}, n.detectArgs()...)...)
	var r detect.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, stderr)
	}
	if p := r.IDProbe; p == nil || !p.Exhausted || p.Created != free || p.Errno != "device or resource busy" {
		t.Fatalf("ID probe %+v", r.IDProbe)
	}
	out, _, _ = n.verify(append([]string{"detect", "--probe-ids", "70000"}, n.detectArgs()...)...)
	if !strings.Contains(out, fmt.Sprintf("ID probe:          exhausted at %d (mkdir: device or resource busy)", free)) {
		t.Errorf("text output:\n%s", out)
	}
	if n.Sim.Live() != 1 {
		t.Errorf("probe left %d cgroups", n.Sim.Live()-1)
	}
}
