// Package ansible holds the tests of the fleet playbook (site.yml,
// rollback.yml and the nokmem_node role): they run the real
// ansible-playbook against an inventory of simulated nodes.
package ansible

import (
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/memcg"
)

// Stock binaries of a simulated node (detect reads their version output).
const (
	stockKubelet = "#!/bin/sh\necho 'Kubernetes v1.12.4'\n"
	stockRunc    = "#!/bin/sh\necho 'runc version 1.0.0-rc5'\n"
	// Upstream versions that never activate kmem (kubelet v1.21.2+ vendors
	// runc rc95 or later; runc rc94+ dropped the kmem activation).
	unaffectedKubelet = "#!/bin/sh\necho 'Kubernetes v1.22.0'\n"
	// A maintained runc: an older one's known vulnerabilities make detect
	// report a problem on any kernel.
	unaffectedRunc = "#!/bin/sh\necho 'runc version 1.4.4'\necho 'spec: 1.3.0'\n"
)

// artifacts are what `go tool mage build` published.
type artifacts struct{ verify, bundle, pub string }

func built(t *testing.T) artifacts {
	t.Helper()
	out, _ := filepath.Abs(filepath.Join("..", "..", "_output"))
	a := artifacts{verify: filepath.Join(out, "verify", "verify"), pub: filepath.Join(out, "nokmem-release.pub")}
	tgz, _ := filepath.Glob(filepath.Join(out, "bundle", "nokmem-*.tar.gz"))
	if len(tgz) == 0 {
		testenv.RequireFile(t, "the node bundle of `go tool mage build`", filepath.Join(out, "bundle", "nokmem-*.tar.gz"))
	}
	if len(tgz) > 1 {
		t.Fatalf("several bundles under _output/bundle: %v", tgz)
	}
	a.bundle = tgz[0]
	testenv.RequireFile(t, "verify of `go tool mage build`", a.verify)
	return a
}

// node is one simulated node: its own simulator mount, stock kubelet and
// runc, a fake systemctl that logs its calls and keeps a fake process table
// (<dir>/proc/4242/exe points at the kubelet while it "runs").
type node struct {
	name string
	dir  string
	bin  string // where kubelet and runc are, relative to dir
	vars map[string]any
	sim  *memcgsim.Sim
	m    *memcgsim.Mount
	h    memcg.Hierarchy
	pod  int
}

func newNode(t *testing.T, root, name, bin string, p memcgsim.Profile) *node {
	return newNodeWith(t, root, name, bin, p, stockKubelet, stockRunc)
}

// newNodeWith is newNode with the given kubelet and runc scripts; with
// binaries other than the stock ones the kubepods tree is not kmem-active.
func newNodeWith(t *testing.T, root, name, bin string, p memcgsim.Profile, kubelet, runc string) *node {
	t.Helper()
	sim, m := memcgsim.MountForTest(t, p)
	n := &node{name: name, dir: filepath.Join(root, name), bin: bin, sim: sim, m: m, h: memcg.Hierarchy{Root: m.Memory}}
	kernel := "3.10.0-1127.el7.x86_64"
	if p == memcgsim.Modern {
		kernel = "6.18.44"
	}
	n.write("osrelease", kernel+"\n", 0o644)
	n.write(bin+"/kubelet", kubelet, 0o755)
	n.write(bin+"/runc", runc, 0o755)
	n.write("sbin/systemctl", fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]s/systemctl.log
case "$1" in
stop) rm -rf %[1]s/proc/4242 ;;
start) mkdir -p %[1]s/proc/4242 && echo kubelet > %[1]s/proc/4242/comm && ln -sf %[1]s/%[2]s/kubelet %[1]s/proc/4242/exe ;;
esac
`, n.dir, bin), 0o755)
	// The stock kubelet runs, with a kmem-active kubepods tree.
	n.write("proc/4242/comm", "kubelet\n", 0o644)
	if err := os.Symlink(n.path(bin+"/kubelet"), n.path("proc/4242/exe")); err != nil {
		t.Fatal(err)
	}
	if p != memcgsim.Modern && kubelet == stockKubelet {
		n.kubepods(t)
	}
	return n
}

func (n *node) path(rel string) string { return filepath.Join(n.dir, rel) }

func (n *node) write(rel, content string, mode os.FileMode) {
	if err := os.MkdirAll(filepath.Dir(n.path(rel)), 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(n.path(rel), []byte(content), mode); err != nil {
		panic(err)
	}
}

// kubepods makes the tree a stock kubelet and runc make on RHEL 7: kmem
// active on kubepods and inherited below, one running pod, churned pods
// that leaked their IDs.
func (n *node) kubepods(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n.h.Mkdir("kubepods"))
	must(n.h.Write("kubepods", memcg.KmemLimit, "1"))
	must(n.h.Write("kubepods", memcg.KmemLimit, "-1"))
	must(n.h.Mkdir("kubepods/burstable"))
	must(n.h.Mkdir("kubepods/burstable/podA"))
	must(n.h.WriteInt("kubepods/burstable/podA", memcg.Limit, 300<<20))
	pid, err := n.sim.AddTask("kubepods/burstable/podA", 20<<20)
	must(err)
	n.pod = pid
	for i := range 3 {
		p := fmt.Sprintf("kubepods/burstable/job%d", i)
		must(n.h.Mkdir(p))
		must(n.h.Rmdir(p))
	}
}

// state is everything a rollout could change on the node; withTools
// includes verify and the public key that the bundle method puts under
// opt/nokmem and etc/nokmem before the pre-check.
func (n *node) state(t *testing.T, withTools bool) string {
	t.Helper()
	var b strings.Builder
	all, err := n.h.Walk("")
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range all {
		active, err := n.sim.KmemActive(rel)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "cgroup %q kmem=%v\n", rel, active)
	}
	if n.pod != 0 {
		cg, err := n.sim.TaskCgroup(n.pod)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "task in %s\n", cg)
	}
	filepath.WalkDir(n.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, n.dir)
		if !withTools && (strings.HasPrefix(rel, "/opt/nokmem/") || strings.HasPrefix(rel, "/etc/nokmem/")) {
			return nil
		}
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "file %s sha256 %x\n", rel, sha256.Sum256(data))
		return nil
	})
	return b.String()
}

// repaired: kmem off everywhere, the pod kept with its limit, the bundle's
// kubelet in place, the service stopped then started once.
func (n *node) checkRepaired(t *testing.T) {
	t.Helper()
	all, err := n.h.Walk("")
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range all {
		if active, _ := n.sim.KmemActive(rel); active && rel != "" {
			t.Errorf("%s: %s still kmem-active", n.name, rel)
		}
	}
	if cg, err := n.sim.TaskCgroup(n.pod); err != nil || cg != "kubepods/burstable/podA" {
		t.Errorf("%s: pod task in %q (%v)", n.name, cg, err)
	}
	if b, _ := os.ReadFile(n.path(n.bin + "/kubelet")); string(b) == stockKubelet {
		t.Errorf("%s: kubelet still the stock one", n.name)
	}
	if log, _ := os.ReadFile(n.path("systemctl.log")); string(log) != "stop kubelet\nstart kubelet\n" {
		t.Errorf("%s: systemctl calls %q, want stop then start", n.name, log)
	}
}

// fleet is an inventory of simulated nodes and the controller's fake kubectl.
type fleet struct {
	t          *testing.T
	a          artifacts
	dir        string // controller: inventory, kubectl, kubectl.log, reports/
	nodes      []*node
	canary     []string
	playbookOK bool
	healthz    *httptest.Server
}

func newFleet(t *testing.T, a artifacts) *fleet {
	for _, tool := range []string{"ansible-playbook", "sh"} {
		testenv.RequireCommand(t, tool)
	}
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	f := &fleet{t: t, a: a, dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(f.dir, "kubectl"), []byte(fmt.Sprintf(fakeKubectl, f.dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.dir, "kstate"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The nodes' kubelet healthz: 200 unless kstate/<node>.unhealthy exists.
	f.healthz = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(f.dir, "kstate", path.Base(r.URL.Path)+".unhealthy")); err == nil {
			http.Error(w, "not ok", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(f.healthz.Close)
	return f
}

// fakeKubectl is the controller's kubectl: it logs the calls that change
// the cluster (cordon, drain, uncordon) in kubectl.log and keeps each
// node's state in kstate/: <node>.cordoned (unschedulable), <node>.notready
// (Ready False), <node>.notready-after-cordon (goes NotReady when cordoned,
// as a node that does not come back), <node>.drain-fails (drain exits 1),
// <node>.drain-fails-once (the first drain exits 1).
// `version --client` prints kstate/version.json or a kubectl 1.12.
const fakeKubectl = `#!/bin/sh
d=%[1]s
case "$1" in
version) cat $d/kstate/version.json 2>/dev/null || echo '{"clientVersion":{"major":"1","minor":"12","gitVersion":"v1.12.4"}}'; exit 0 ;;
get)
  n=$3; ready=True; unsched=false
  [ -f $d/kstate/$n.notready ] && ready=False
  [ -f $d/kstate/$n.cordoned ] && unsched=true
  printf '{"kind":"Node","metadata":{"name":"%%s"},"spec":{"unschedulable":%%s},"status":{"conditions":[{"type":"Ready","status":"%%s"}]}}\n' "$n" $unsched $ready
  exit 0 ;;
esac
echo "$*" >> $d/kubectl.log
case "$1" in
cordon) touch $d/kstate/$2.cordoned; [ -f $d/kstate/$2.notready-after-cordon ] && touch $d/kstate/$2.notready ;;
uncordon) rm -f $d/kstate/$2.cordoned ;;
drain)
  [ -f $d/kstate/$2.drain-fails ] && { echo "drain failed" >&2; exit 1; }
  [ -f $d/kstate/$2.drain-fails-once ] && { rm $d/kstate/$2.drain-fails-once; echo "drain failed once" >&2; exit 1; } ;;
esac
exit 0
`

// mark creates kstate/<node>.<what> (see fakeKubectl).
func (f *fleet) mark(node, what string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "kstate", node+"."+what), nil, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) add(name string, p memcgsim.Profile) *node {
	n := newNode(f.t, filepath.Join(f.dir, "nodes"), name, "bin", p)
	f.nodes = append(f.nodes, n)
	return n
}

// inventory writes the INI inventory and one host_vars file per node.
func (f *fleet) inventory() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[nokmem_canary]\n%s\n\n[nokmem_nodes]\n", strings.Join(f.canary, "\n"))
	for _, n := range f.nodes {
		fmt.Fprintln(&b, n.name)
	}
	fmt.Fprintf(&b, "\n[all:vars]\nansible_connection=local\nansible_python_interpreter=%s\n", python(f.t))
	inv := filepath.Join(f.dir, "inventory")
	if err := os.MkdirAll(filepath.Join(inv, "host_vars"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inv, "hosts.ini"), []byte(b.String()), 0o644); err != nil {
		f.t.Fatal(err)
	}
	for _, n := range f.nodes {
		vars := map[string]any{
			"nokmem_install_method":  "bundle",
			"nokmem_verify_src":      f.a.verify,
			"nokmem_bundle_src":      f.a.bundle,
			"nokmem_pubkey_src":      f.a.pub,
			"nokmem_verify":          n.path("opt/nokmem/bin/verify"),
			"nokmem_bundle":          n.path("opt/nokmem/bundle/current.tar.gz"),
			"nokmem_pubkey":          n.path("etc/nokmem/release.pub"),
			"nokmem_verify_flags":    []string{"--root", n.m.Memory, "--state-dir", n.path("state")},
			"nokmem_detect_flags":    []string{"--os-release", n.path("osrelease"), "--proc-cgroups", n.m.ProcCgroups, "--slab-dir", n.m.Slab, "--search-dirs", n.path(n.bin)},
			"nokmem_run_flags":       []string{"--proc", n.path("proc"), "--tmp-dir", n.path("tmp"), "--kubelet-timeout", "20s"},
			"nokmem_migrate_flags":   []string{"--proc", n.path("proc"), "--kubelet-path", n.path(n.bin + "/kubelet"), "--os-release", n.path("osrelease")},
			"nokmem_stop_cmd":        n.path("sbin/systemctl") + " stop kubelet",
			"nokmem_start_cmd":       n.path("sbin/systemctl") + " start kubelet",
			"nokmem_kubectl":         filepath.Join(f.dir, "kubectl"),
			"nokmem_node_report_dir": n.path("reports"),
			"nokmem_report_dir":      filepath.Join(f.dir, "reports"),
			"nokmem_drain_flags":     []string{"--ignore-daemonsets"},
			"nokmem_drain_delay":     1,
			"nokmem_healthz_url":     f.healthz.URL + "/healthz/" + nodeName(n),
			"nokmem_ready_timeout":   4,
			"nokmem_ready_delay":     1,
			// The check-mode copy of verify goes into the node's folder, where
			// node.state sees it if it is left behind.
			"nokmem_check_tmp_dir": n.path("tmp"),
			// Each node's own lock folder: the nodes of a batch run at once on
			// this one machine (a verify without the node lock ignores it).
			"nokmem_verify_environment": map[string]string{"NOKMEM_LOCK_DIR": n.path("lock")},
		}
		for k, v := range n.vars {
			vars[k] = v
		}
		if err := os.MkdirAll(n.path("tmp"), 0o755); err != nil {
			f.t.Fatal(err)
		}
		data, err := json.MarshalIndent(vars, "", "  ")
		if err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(inv, "host_vars", n.name+".yml"), data, 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	return filepath.Join(inv, "hosts.ini")
}

func python(t *testing.T) string {
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recap is one host's line of the PLAY RECAP.
type recap struct{ ok, changed, unreachable, failed, skipped int }

var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)`)

// play runs ansible-playbook and returns its output, exit code and recap.
func (f *fleet) play(playbook string, args ...string) (string, int, map[string]recap) {
	f.t.Helper()
	inv := f.inventory()
	cmd := exec.Command("ansible-playbook", append([]string{"-i", inv, playbook, "-e", `{"nokmem_serial": [1, 2]}`}, args...)...)
	cmd.Dir = "."
	tmp := f.t.TempDir()
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(mustAbs(f.t, "."), "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(tmp, "local"), "ANSIBLE_REMOTE_TEMP="+filepath.Join(tmp, "remote"),
		"ANSIBLE_HOME="+filepath.Join(tmp, "home"), "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	f.t.Logf("ansible-playbook %s %v: exit %d in %s for %d nodes", playbook, args, code, time.Since(start).Round(time.Millisecond), len(f.nodes))
	r := map[string]recap{}
	for _, m := range recapLine.FindAllStringSubmatch(string(out), -1) {
		n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
		r[m[1]] = recap{n(2), n(3), n(4), n(5), n(6)}
	}
	return string(out), code, r
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (f *fleet) kubectlLog() []string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "kubectl.log"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (f *fleet) status(host string) map[string]any {
	f.t.Helper()
	var s map[string]any
	b, err := os.ReadFile(filepath.Join(f.dir, "reports", host, "status.json"))
	if err != nil {
		f.t.Fatalf("status of %s: %v", host, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		f.t.Fatalf("status of %s: %v", host, err)
	}
	return s
}

// checkReports: the JSON and JUnit reports of a repaired node arrived on
// the controller and say passed.
func (f *fleet) checkReports(host string) {
	f.t.Helper()
	dir := filepath.Join(f.dir, "reports", host)
	var res struct {
		Outcome  string `json:"outcome"`
		ExitCode int    `json:"exit_code"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(b, &res) != nil || res.Outcome != "passed" {
		f.t.Errorf("%s report.json on the controller: %v %+v", host, err, res)
	}
	var suites struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	b, err = os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil || xml.Unmarshal(b, &suites) != nil || len(suites.Suites) != 1 || suites.Suites[0].Failures != 0 || suites.Suites[0].Tests == 0 {
		f.t.Errorf("%s junit.xml on the controller: %v %+v", host, err, suites)
	}
}

// nodeName is the node's Kubernetes name (nokmem_node_name).
func nodeName(n *node) string {
	if v, ok := n.vars["nokmem_node_name"].(string); ok {
		return v
	}
	return n.name
}

// index of the first kubectl call with this line, -1 if none.
func index(log []string, line string) int { return slices.Index(log, line) }

// A fleet of five: canary c1, then batches [n2], [n3, n4], [n5] (serial
// [1, 2]); n5 runs a kernel without 3.10 semantics. Check mode changes
// nothing; the rollout repairs the canary first, then the batches in
// order, skips n5 and says why, fetches the reports; a second run changes
// nothing; rollback.yml puts one node back.
func TestRolloutCanaryThenBatches(t *testing.T) {
	f := newFleet(t, built(t))
	for _, name := range []string{"c1", "n2", "n3", "n4"} {
		f.add(name, memcgsim.RHEL78)
	}
	modern := f.add("n5", memcgsim.Modern)
	// n6: a 3.10 node whose stock kubelet and runc never activate kmem:
	// healthy, never "repaired" with the older kubelet of the bundle.
	unaffected := newNodeWith(t, filepath.Join(f.dir, "nodes"), "n6", "bin", memcgsim.RHEL78, unaffectedKubelet, unaffectedRunc)
	f.nodes = append(f.nodes, unaffected)
	f.canary = []string{"c1"}
	before := map[string]string{}
	for _, n := range f.nodes {
		before[n.name] = n.state(t, true)
	}

	// --check: verify migrate --dry-run on each node, nothing changes.
	out, code, rc := f.play("site.yml", "--check")
	if code != 0 {
		t.Fatalf("--check: exit %d\n%s", code, out)
	}
	for _, n := range f.nodes {
		if got := n.state(t, true); got != before[n.name] {
			t.Errorf("--check changed %s:\n%s\nwas\n%s", n.name, got, before[n.name])
		}
		if _, ok := rc[n.name]; !ok {
			t.Errorf("--check: no recap for %s", n.name)
		}
	}
	if log := f.kubectlLog(); len(log) != 1 || log[0] != "" {
		t.Errorf("--check called kubectl: %q", log)
	}
	for _, want := range []string{"c1: would cordon, drain, install and run verify; migrate --dry-run exit 0", "dry run: nothing was changed", "n5: skipped, not applicable", "n6: skipped, healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("--check output lacks %q:\n%s", want, out)
		}
	}

	// The rollout.
	out, code, rc = f.play("site.yml")
	if code != 0 {
		t.Fatalf("rollout: exit %d\n%s", code, out)
	}
	log := f.kubectlLog()
	for _, n := range f.nodes[:4] {
		n.checkRepaired(t)
		f.checkReports(n.name)
		if s := f.status(n.name); s["state"] != "repair" || s["failure"] != "" || s["cordoned"] != false {
			t.Errorf("%s status %v", n.name, s)
		}
		c, d, u := index(log, "cordon "+n.name), index(log, "drain "+n.name+" --ignore-daemonsets --delete-local-data"), index(log, "uncordon "+n.name)
		if c < 0 || d < c || u < d {
			t.Errorf("%s: kubectl calls cordon %d drain %d uncordon %d in %q", n.name, c, d, u, log)
		}
	}
	// Canary first, then the batches in order.
	if !(index(log, "uncordon c1") < index(log, "cordon n2") && index(log, "uncordon n2") < index(log, "cordon n3") && index(log, "uncordon n2") < index(log, "cordon n4")) {
		t.Errorf("kubectl calls out of canary/batch order: %q", log)
	}
	if got, want := modern.state(t, false), stateWithout(before["n5"]); got != want {
		t.Errorf("n5 (not applicable) changed:\n%s", got)
	}
	if slices.ContainsFunc(log, func(l string) bool { return strings.HasSuffix(l, " n5") }) {
		t.Errorf("kubectl called for n5: %q", log)
	}
	if !strings.Contains(out, "n5: skipped, not applicable (kernel 6.18.44") {
		t.Errorf("the rollout does not say why n5 is skipped:\n%s", out)
	}
	if s := f.status("n5"); s["state"] != "not_applicable" {
		t.Errorf("n5 status %v", s)
	}
	if got, want := unaffected.state(t, false), stateWithout(before["n6"]); got != want {
		t.Errorf("n6 (unaffected stock binaries) changed:\n%s", got)
	}
	if slices.ContainsFunc(log, func(l string) bool { return strings.HasSuffix(l, " n6") }) {
		t.Errorf("kubectl called for n6: %q", log)
	}
	if s := f.status("n6"); s["state"] != "healthy" {
		t.Errorf("n6 status %v", s)
	}

	// Second run: everything healthy, skipped, changed=0.
	after := map[string]string{}
	for _, n := range f.nodes {
		after[n.name] = n.state(t, true)
	}
	out, code, rc = f.play("site.yml")
	if code != 0 {
		t.Fatalf("second rollout: exit %d\n%s", code, out)
	}
	for _, n := range f.nodes {
		r, ok := rc[n.name]
		if !ok || r.changed != 0 || r.failed != 0 {
			t.Errorf("second run %s: recap %+v (present %v), want changed=0", n.name, r, ok)
		}
		if got := n.state(t, true); got != after[n.name] {
			t.Errorf("second run changed %s", n.name)
		}
	}
	if !strings.Contains(out, "c1: skipped, healthy") {
		t.Errorf("second run does not say the nodes are healthy:\n%s", out)
	}
	if got := f.kubectlLog(); len(got) != len(log) {
		t.Errorf("second run called kubectl: %q", got[len(log):])
	}

	// rollback.yml for one named host: the stock binaries come back.
	out, code, _ = f.play("rollback.yml", "-e", "nokmem_target=n3")
	if code != 0 {
		t.Fatalf("rollback: exit %d\n%s", code, out)
	}
	n3 := f.nodes[2]
	if b, _ := os.ReadFile(n3.path("bin/kubelet")); string(b) != stockKubelet {
		t.Errorf("n3 kubelet after rollback: %.40q", b)
	}
	if b, _ := os.ReadFile(n3.path("bin/runc")); string(b) != stockRunc {
		t.Errorf("n3 runc after rollback: %.40q", b)
	}
	if b, _ := os.ReadFile(f.nodes[3].path("bin/runc")); string(b) == stockRunc {
		t.Error("rollback of n3 touched n4")
	}
	if got := f.kubectlLog(); !slices.Equal(got[len(log):], []string{"cordon n3", "drain n3 --ignore-daemonsets --delete-local-data", "uncordon n3"}) {
		t.Errorf("rollback kubectl calls %q", got[len(log):])
	}
}

// A node whose migration fails (mkdir of the fresh tree fails with ENOSPC,
// as when the memcg IDs are exhausted) fails its batch: the other node of that batch
// finishes and is uncordoned, the failed node stays cordoned and is named,
// and the later batches are untouched.
func TestRolloutStopsAtFailedBatch(t *testing.T) {
	f := newFleet(t, built(t))
	for _, name := range []string{"c1", "n2", "n3", "n4", "n5", "n6"} {
		f.add(name, memcgsim.RHEL78)
	}
	f.canary = []string{"c1"}
	bad := f.nodes[2]
	bad.sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind == memcgsim.OpMkdir && strings.HasPrefix(op.Cgroup, "nokmem-migrate") {
			return syscall.ENOSPC
		}
		return nil
	})
	before := map[string]string{}
	for _, n := range f.nodes {
		before[n.name] = n.state(t, true)
	}
	out, code, rc := f.play("site.yml")
	if code == 0 {
		t.Fatalf("rollout with a failing node: exit 0\n%s", out)
	}
	log := f.kubectlLog()
	for _, n := range []*node{f.nodes[0], f.nodes[1], f.nodes[3]} {
		n.checkRepaired(t)
		f.checkReports(n.name)
		if index(log, "uncordon "+n.name) < 0 {
			t.Errorf("%s not uncordoned: %q", n.name, log)
		}
	}
	if index(log, "cordon n3") < 0 || index(log, "uncordon n3") >= 0 {
		t.Errorf("n3 must be cordoned and stay so: %q", log)
	}
	if s := f.status("n3"); s["cordoned"] != true || !strings.Contains(fmt.Sprint(s["failure"]), "verify run exit 14") {
		t.Errorf("n3 status %v", s)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "reports", "n3", "report.json")); err != nil {
		t.Errorf("the failed node's report did not arrive: %v", err)
	}
	for _, want := range []string{"nokmem: n3 FAILED: verify run exit 14", "It stays cordoned", "failed [n3]", "left cordoned [n3]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if r := rc["n3"]; r.failed != 1 {
		t.Errorf("n3 recap %+v", r)
	}
	for _, n := range f.nodes[4:] {
		if got := n.state(t, true); got != before[n.name] {
			t.Errorf("%s (a later batch) was touched", n.name)
		}
		if slices.ContainsFunc(log, func(l string) bool { return strings.HasSuffix(l, " "+n.name) }) {
			t.Errorf("kubectl called for %s: %q", n.name, log)
		}
		if _, err := os.Stat(filepath.Join(f.dir, "reports", n.name)); err == nil {
			t.Errorf("%s has reports: the rollout did not stop", n.name)
		}
	}
}

// stateWithout drops the tool lines (see node.state) from a full state.
func stateWithout(full string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(full, "\n") {
		if !strings.HasPrefix(l, "file /opt/nokmem/") && !strings.HasPrefix(l, "file /etc/nokmem/") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// A node whose kernel semantics detect cannot decide (a 4.19 release whose
// root memcg reads slabinfo EIO, as only 3.x kernels do) and whose runc
// has known vulnerabilities: detect exits 1 with semantics "unknown". The
// rollout neither skips it as not applicable nor repairs it: the node
// fails, untouched and uncordoned, and the rollout says why (verify
// migrate would refuse it too).
func TestRolloutFailsUndecidedKernel(t *testing.T) {
	f := newFleet(t, built(t))
	n := f.add("u1", memcgsim.RHEL78)
	n.write("osrelease", "4.19.0-1.x86_64\n", 0o644)
	f.canary = []string{"u1"}
	before := n.state(t, true)
	out, code, rc := f.play("site.yml")
	if code == 0 {
		t.Fatalf("rollout of an undecided node: exit 0\n%s", out)
	}
	for _, want := range []string{"u1 FAILED", "kmem semantics unknown"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "u1: skipped") {
		t.Errorf("the undecided node was skipped:\n%s", out)
	}
	if got, want := n.state(t, false), stateWithout(before); got != want {
		t.Errorf("the undecided node changed:\n%s\nwas\n%s", got, want)
	}
	if log := f.kubectlLog(); slices.ContainsFunc(log, func(l string) bool { return strings.HasPrefix(l, "cordon ") }) {
		t.Errorf("kubectl cordoned the undecided node: %q", log)
	}
	if r := rc["u1"]; r.failed != 1 {
		t.Errorf("u1 recap %+v", r)
	}
}
