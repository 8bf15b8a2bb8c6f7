package ansible

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
)

// Health gates, as kubespray's upgrade play has them. Canary c1 (its first
// drain fails: retried), then batches [n1], [n2, n3], [n4] (serial [1, 2]):
// n1 is not Ready before the rollout and n2 is cordoned before it: both are
// skipped, the output says why, nothing of them is touched and n2 is never
// uncordoned (the role uncordons only what it cordoned); n3 does not come
// back Ready after `verify run`: the rollout stops there with n3 cordoned
// and named, and n4 is never touched. kubectl 1.24 gets
// --delete-emptydir-data.
func TestRolloutHealthGates(t *testing.T) {
	f := newFleet(t, built(t))
	for _, name := range []string{"c1", "n1", "n2", "n3", "n4"} {
		f.add(name, memcgsim.RHEL78)
	}
	f.canary = []string{"c1"}
	f.mark("c1", "drain-fails-once")
	f.mark("n1", "notready")
	f.mark("n2", "cordoned")
	f.mark("n3", "notready-after-cordon")
	if err := os.WriteFile(filepath.Join(f.dir, "kstate", "version.json"), []byte(`{"clientVersion":{"major":"1","minor":"24+","gitVersion":"v1.24.17"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, n := range f.nodes {
		before[n.name] = n.state(t, true)
	}
	out, code, rc := f.play("site.yml")
	if code == 0 {
		t.Fatalf("rollout with a node that does not come back Ready: exit 0\n%s", out)
	}
	log := f.kubectlLog()
	f.nodes[0].checkRepaired(t)
	if got := slices.Index(log, "drain c1 --ignore-daemonsets --delete-emptydir-data"); got < 0 || log[got+1] != log[got] {
		t.Errorf("c1: want the drain (kubectl 1.24 flags) retried after its first failure: %q", log)
	}
	for _, n := range []string{"n1", "n2", "n4"} {
		if slices.ContainsFunc(log, func(l string) bool { return strings.HasSuffix(l, " "+n) || strings.Contains(l, " "+n+" ") }) {
			t.Errorf("kubectl changed %s: %q", n, log)
		}
	}
	for _, n := range f.nodes[1:3] {
		if got := n.state(t, true); got != before[n.name] {
			t.Errorf("%s (skipped) was touched", n.name)
		}
	}
	if got := f.nodes[4].state(t, true); got != before["n4"] {
		t.Error("n4 (after the failed batch) was touched")
	}
	for _, want := range []string{
		"n1: skipped, node n1 is not Ready",
		"n2: skipped, node n2 is cordoned (unschedulable) before the rollout",
		"nokmem: n3 FAILED: nokmem | node Ready after the run (not within 4 s)",
		"It stays cordoned (kubectl uncordon n3",
		"left cordoned [n3]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if index(log, "cordon n3") < 0 || index(log, "uncordon n3") >= 0 {
		t.Errorf("n3 must be cordoned and stay so: %q", log)
	}
	if s := f.status("n3"); s["cordoned"] != true || s["state"] != "repair" {
		t.Errorf("n3 status %v", s)
	}
	if s := f.status("n1"); s["state"] != "not_ready" || s["skipped"] != "not Ready" {
		t.Errorf("n1 status %v", s)
	}
	if r := rc["n3"]; r.failed != 1 {
		t.Errorf("n3 recap %+v", r)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "reports", "n4")); err == nil {
		t.Error("n4 has reports: the rollout did not stop")
	}
}

// Check mode runs detect from a temporary copy of verify and removes it,
// also when a later task fails (issue 25, item 9).
func TestCheckModeLeavesNothing(t *testing.T) {
	f := newFleet(t, built(t))
	n := f.add("c1", memcgsim.RHEL78)
	f.canary = []string{"c1"}
	before := n.state(t, true)
	out, code, _ := f.play("site.yml", "--check")
	if code != 0 || !strings.Contains(out, "c1: would cordon") {
		t.Fatalf("--check: exit %d\n%s", code, out)
	}
	leftovers := func() []string {
		m, _ := filepath.Glob(n.path("tmp/*nokmem-check*"))
		return m
	}
	if m := leftovers(); len(m) > 0 {
		t.Errorf("--check left %v", m)
	}
	if got := n.state(t, true); got != before {
		t.Errorf("--check changed c1:\n%s\nwas\n%s", got, before)
	}
	// A task after the copy fails (detect's flags are not a list): the
	// copy is removed all the same, and the failure is raised.
	n.vars = map[string]any{"nokmem_detect_flags": "not-a-list"}
	out, code, _ = f.play("site.yml", "--check")
	if code == 0 || !strings.Contains(out, "nokmem: c1 FAILED: nokmem | pre-check") {
		t.Fatalf("--check with a failing pre-check task: exit %d\n%s", code, out)
	}
	if m := leftovers(); len(m) > 0 {
		t.Errorf("--check that failed left %v", m)
	}
}

// The role against a Python 2.7 interpreter on the node, as on CentOS 7
// (python 2.7.5): Debian 12 has no python2.7 package, so this runs where one
// is installed (NOKMEM_PYTHON27, or pyenv's 2.7), and says so otherwise.
// The yum tasks are not covered: they need the yum/dnf Python bindings of
// the node's own Python.
func TestRolloutPython27Target(t *testing.T) {
	py := os.Getenv("NOKMEM_PYTHON27")
	if py == "" {
		for _, p := range []string{"/usr/bin/python2.7", filepath.Join(os.Getenv("HOME"), ".pyenv", "versions", "2.7.18", "bin", "python2.7")} {
			if _, err := os.Stat(p); err == nil {
				py = p
				break
			}
		}
	}
	if py == "" {
		t.Skip("no Python 2.7 here (Debian 12 ships none): set NOKMEM_PYTHON27 to a python2.7 to run the role against a CentOS 7-style target")
	}
	if out, err := exec.Command(py, "-c", "import sys; assert sys.version_info[:2] == (2, 7)").CombinedOutput(); err != nil {
		t.Fatalf("%s is not Python 2.7: %v %s", py, err, out)
	}
	f := newFleet(t, built(t))
	n := f.add("c1", memcgsim.RHEL78)
	n.vars = map[string]any{"ansible_python_interpreter": py}
	f.canary = []string{"c1"}
	out, code, _ := f.play("site.yml")
	if code != 0 {
		t.Fatalf("rollout on a Python 2.7 target: exit %d\n%s", code, out)
	}
	n.checkRepaired(t)
	f.checkReports("c1")
}
