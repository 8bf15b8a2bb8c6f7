// Package memcgtest is the real-kernel test harness: it makes a unique scratch
// cgroup /sys/fs/cgroup/memory/nokmem-test-<random>, builds kubepods-like
// trees in it, starts real processes in its cgroups and, in t.Cleanup, even
// after a failure, kills exactly the processes it started (by pid), waits
// for them and removes every cgroup it made, leaf first. It never touches
// any other cgroup or process.
package memcgtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
)

// Tree is a scratch cgroup on the real memory hierarchy. Paths given to its
// methods are relative to the scratch cgroup; Rel turns them into paths
// relative to H.Root for the memcg package.
type Tree struct {
	H    memcg.Hierarchy
	Base string // the scratch cgroup, relative to H.Root

	t     testing.TB
	mu    sync.Mutex
	procs []*Proc
}

// Scratch creates the scratch cgroup directly under the memory root. It
// needs root and cgroup v1 memory (testenv.RequireCgroupV1Memory).
func Scratch(t testing.TB) *Tree {
	t.Helper()
	testenv.RequireCgroupV1Memory(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	tr := &Tree{H: memcg.Hierarchy{Root: testenv.MemoryRoot}, Base: "nokmem-test-" + hex.EncodeToString(b), t: t}
	if err := tr.H.Mkdir(tr.Base); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.cleanup(); err != nil {
			t.Errorf("cgtest cleanup: %v", err)
		}
	})
	return tr
}

// Rel returns the path of rel (inside the scratch cgroup) relative to H.Root.
func (tr *Tree) Rel(rel string) string {
	if rel == "" {
		return tr.Base
	}
	return path.Join(tr.Base, rel)
}

// Mkdir creates cgroups inside the scratch cgroup, in order, and fails the
// test on error.
func (tr *Tree) Mkdir(rels ...string) {
	tr.t.Helper()
	for _, r := range rels {
		if err := tr.H.Mkdir(tr.Rel(r)); err != nil {
			tr.t.Fatal(err)
		}
	}
}

// Layout is the shape of a kubepods tree.
type Layout int

const (
	// QoS is kubepods/{burstable,besteffort}/pod<i>/<ctr> (Guaranteed pods
	// sit directly under kubepods, as kubelet does).
	QoS Layout = iota
	// Flat is kubepods/pod<i>/<ctr>.
	Flat
	// Systemd is the systemd cgroup driver's tree:
	// kubepods.slice/kubepods-{burstable,besteffort}.slice/
	// kubepods-<qos>-pod<i>.slice/docker-<ctr>.scope (Guaranteed pods as
	// kubepods-pod<i>.slice directly under kubepods.slice).
	Systemd
)

// Kubepods builds a kubepods tree inside the scratch cgroup with pods pods
// of ctrs containers each and returns the container cgroups (relative to
// the scratch cgroup). In the QoS layout pods go round-robin to burstable,
// besteffort and kubepods itself.
func (tr *Tree) Kubepods(l Layout, pods, ctrs int) []string {
	tr.t.Helper()
	return BuildKubepods(tr.t, func(rel string) error { return tr.H.Mkdir(tr.Rel(rel)) }, l, pods, ctrs)
}

// BuildKubepods builds the same tree as Tree.Kubepods through mkdir, so that
// a test can build it on any backend (the simulator, a Tree).
func BuildKubepods(t testing.TB, mkdir func(rel string) error, l Layout, pods, ctrs int) []string {
	t.Helper()
	must := func(rel string) {
		if err := mkdir(rel); err != nil {
			t.Fatal(err)
		}
	}
	if l == Systemd {
		return buildSystemd(must, pods, ctrs)
	}
	must("kubepods")
	parents := []string{"kubepods"}
	if l == QoS {
		must("kubepods/burstable")
		must("kubepods/besteffort")
		parents = []string{"kubepods/burstable", "kubepods/besteffort", "kubepods"}
	}
	var out []string
	for i := range pods {
		pod := fmt.Sprintf("%s/pod%d", parents[i%len(parents)], i)
		must(pod)
		for c := range ctrs {
			ctr := fmt.Sprintf("%s/ctr%d", pod, c)
			must(ctr)
			out = append(out, ctr)
		}
	}
	return out
}

func buildSystemd(must func(string), pods, ctrs int) []string {
	const top = "kubepods.slice"
	must(top)
	qos := []string{"burstable", "besteffort", ""}
	for _, q := range qos[:2] {
		must(top + "/kubepods-" + q + ".slice")
	}
	var out []string
	for i := range pods {
		q := qos[i%len(qos)]
		pod := fmt.Sprintf("%s/kubepods-pod%d.slice", top, i)
		if q != "" {
			pod = fmt.Sprintf("%s/kubepods-%s.slice/kubepods-%s-pod%d.slice", top, q, q, i)
		}
		must(pod)
		for c := range ctrs {
			ctr := fmt.Sprintf("%s/docker-ctr%d%d.scope", pod, i, c)
			must(ctr)
			out = append(out, ctr)
		}
	}
	return out
}

// Proc is a process started by the harness.
type Proc struct {
	Pid int
	cmd *exec.Cmd
}

// Start runs name with args and moves it into cgroup rel (inside the
// scratch cgroup) through cgroup.procs. The process starts in the test's own
// cgroup and is moved right away; it is killed in cleanup.
func (tr *Tree) Start(rel string, name string, args ...string) *Proc {
	tr.t.Helper()
	p := tr.start(exec.Command(name, args...))
	tr.moveIn(rel, p)
	return p
}

// Sleep starts `sleep 3600` in cgroup rel.
func (tr *Tree) Sleep(rel string) *Proc {
	tr.t.Helper()
	return tr.Start(rel, "sleep", "3600")
}

func (tr *Tree) start(cmd *exec.Cmd) *Proc {
	tr.t.Helper()
	if err := cmd.Start(); err != nil {
		tr.t.Fatalf("start %s: %v", cmd.Path, err)
	}
	p := &Proc{Pid: cmd.Process.Pid, cmd: cmd}
	tr.mu.Lock()
	tr.procs = append(tr.procs, p)
	tr.mu.Unlock()
	return p
}

func (tr *Tree) moveIn(rel string, p *Proc) {
	tr.t.Helper()
	if err := tr.H.Move(tr.Rel(rel), p.Pid); err != nil {
		tr.t.Fatal(err)
	}
}

// Kill kills the process and waits for it.
func (p *Proc) Kill() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill pid %d: %w", p.Pid, err)
	}
	if err := p.cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("wait for pid %d: %w", p.Pid, err)
		}
	}
	return nil
}

// cleanup kills the processes the tree started, then removes the scratch
// tree leaf first. A cgroup can stay busy for a moment after its last task
// was reaped, so EBUSY is retried briefly.
func (tr *Tree) cleanup() error {
	tr.mu.Lock()
	procs := tr.procs
	tr.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if err := p.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := tr.H.RemoveTree(tr.Base)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			break
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			errs = append(errs, err)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.Join(errs...)
}
