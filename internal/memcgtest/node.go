// Package memcgtest gives a test a memory cgroup hierarchy of its own, on
// the simulator (internal/memcgsim, 3.10 or modern semantics) or on this
// machine's kernel, behind one type, Node. On the kernel it makes a unique
// scratch cgroup /sys/fs/cgroup/memory/nokmem-test-<random>; on the
// simulator it mounts one over FUSE. Either way it builds kubepods-like
// trees in it, starts processes in its cgroups and, in t.Cleanup, even
// after a failure, kills exactly the processes it started (by pid), waits
// for them, removes every cgroup it made, leaf first, and unmounts the
// simulator. It never touches any other cgroup or process.
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

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
)

// Node is the memory cgroup hierarchy of one test: a mounted simulator
// (Sim) or a scratch cgroup on this machine's kernel (Real). Paths given to
// its methods are relative to the node's cgroup; Rel turns them into paths
// relative to H.Root, and Scoped gives the hierarchy rooted at the node's
// cgroup, for code under test that takes a memory root.
type Node struct {
	// H is the whole hierarchy: the simulator's mount, or the kernel's
	// /sys/fs/cgroup/memory.
	H memcg.Hierarchy
	// Base is the node's cgroup relative to H.Root: "" on the simulator
	// (the mount is the test's own), nokmem-test-<random> on the kernel.
	Base string
	// Sim and Mount are the simulator and its mount; nil on the kernel.
	Sim   *memcgsim.Sim
	Mount *memcgsim.Mount

	t     testing.TB
	mu    sync.Mutex
	procs []*Proc
}

// Sim mounts a simulator with profile p on a temporary directory
// (memcgsim.MountForTest: needs root and /dev/fuse) and unmounts it in
// t.Cleanup.
func Sim(t testing.TB, p memcgsim.Profile) *Node {
	t.Helper()
	s, m := memcgsim.MountForTest(t, p)
	return &Node{H: memcg.Hierarchy{Root: m.Memory}, Sim: s, Mount: m, t: t}
}

// Real creates the scratch cgroup nokmem-test-<random> directly under this
// machine's memory root. It needs root and cgroup v1 memory
// (testenv.RequireCgroupV1Memory).
func Real(t testing.TB) *Node {
	t.Helper()
	testenv.RequireCgroupV1Memory(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	n := &Node{H: memcg.Hierarchy{Root: testenv.MemoryRoot}, Base: "nokmem-test-" + hex.EncodeToString(b), t: t}
	if err := n.H.Mkdir(n.Base); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.cleanup(); err != nil {
			t.Errorf("memcgtest cleanup: %v", err)
		}
	})
	return n
}

// Scoped returns the hierarchy rooted at the node's cgroup: the simulator's
// mount, or the scratch cgroup standing for the memory root.
func (n *Node) Scoped() memcg.Hierarchy { return memcg.Hierarchy{Root: n.H.Path(n.Base)} }

// Rel returns the path of rel (inside the node's cgroup) relative to H.Root.
func (n *Node) Rel(rel string) string {
	if rel == "" {
		return n.Base
	}
	return path.Join(n.Base, rel)
}

// Mkdir creates cgroups inside the node's cgroup, in order, and fails the
// test on error.
func (n *Node) Mkdir(rels ...string) {
	n.t.Helper()
	for _, r := range rels {
		if err := n.H.Mkdir(n.Rel(r)); err != nil {
			n.t.Fatal(err)
		}
	}
}

// Write writes v to file of cgroup rel and fails the test on error.
func (n *Node) Write(rel, file, v string) {
	n.t.Helper()
	if err := n.H.Write(n.Rel(rel), file, v); err != nil {
		n.t.Fatal(err)
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

// Kubepods builds a kubepods tree inside the node's cgroup with pods pods
// of ctrs containers each and returns the container cgroups (relative to
// the node's cgroup). In the QoS layout pods go round-robin to burstable,
// besteffort and kubepods itself.
func (n *Node) Kubepods(l Layout, pods, ctrs int) []string {
	n.t.Helper()
	return BuildKubepods(n.t, func(rel string) error { return n.H.Mkdir(n.Rel(rel)) }, l, pods, ctrs)
}

// BuildKubepods builds the same tree as Node.Kubepods through mkdir, for a
// hierarchy that is no Node (a test's own mount of the simulator).
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

// Proc is a process started by the node: a real process on the kernel, a
// task on the simulator.
type Proc struct {
	Pid int
	n   *Node
	cmd *exec.Cmd // nil on the simulator
}

// Start runs name with args and moves it into cgroup rel (inside the
// node's cgroup) through cgroup.procs. The process starts in the test's own
// cgroup and is moved right away; it is killed in cleanup. The simulator
// runs no programs: use Sleep or StartThreaded there.
func (n *Node) Start(rel string, name string, args ...string) *Proc {
	n.t.Helper()
	if n.Sim != nil {
		n.t.Fatalf("memcgtest: the simulator cannot run %s", name)
	}
	p := n.start(exec.Command(name, args...))
	n.moveIn(rel, p)
	return p
}

// Sleep starts a process that does nothing in cgroup rel: `sleep 3600` on
// the kernel, a task without memory on the simulator.
func (n *Node) Sleep(rel string) *Proc {
	n.t.Helper()
	if n.Sim != nil {
		return n.simTask(rel, 0)
	}
	return n.Start(rel, "sleep", "3600")
}

// simTask adds a simulated task charged usage bytes to cgroup rel.
func (n *Node) simTask(rel string, usage int64) *Proc {
	n.t.Helper()
	pid, err := n.Sim.AddTask(n.Rel(rel), usage)
	if err != nil {
		n.t.Fatal(err)
	}
	return &Proc{Pid: pid, n: n}
}

func (n *Node) start(cmd *exec.Cmd) *Proc {
	n.t.Helper()
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", cmd.Path, err)
	}
	p := &Proc{Pid: cmd.Process.Pid, n: n, cmd: cmd}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p
}

func (n *Node) moveIn(rel string, p *Proc) {
	n.t.Helper()
	if err := n.H.Move(n.Rel(rel), p.Pid); err != nil {
		n.t.Fatal(err)
	}
}

// kill kills the process and waits for it.
func (p *Proc) kill() error {
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

// cleanup kills the processes the node started on the kernel, then removes
// the scratch tree leaf first (the simulator's tasks go with its mount). A cgroup can stay busy for a moment after its last task
// was reaped, so EBUSY is retried briefly.
func (n *Node) cleanup() error {
	n.mu.Lock()
	procs := n.procs
	n.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := n.H.RemoveTree(n.Base)
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
