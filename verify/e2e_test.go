package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"
	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/assert"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
	"github.com/nokmem/nokmem/verify/nodelock"
)

// verifyBin is verify built from this tree by TestMain (for the tests of
// this tree's behaviour); the bundle tests run the verify of the bundle.
var verifyBin, tmpRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "verify-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Readable by the unprivileged user of TestInstallRefusesNonRoot.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tmpRoot = dir
	verifyBin = filepath.Join(dir, "verify")
	// The node lock of every verify run of these tests, in process or not,
	// lives here rather than in /run/nokmem, shared by the whole machine.
	os.Setenv(nodelock.DirEnv, filepath.Join(dir, "lock"))
	out, err := exec.Command("go", "build", "-o", verifyBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build verify: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pipelineBundle is the node bundle that `go tool mage build` published,
// unpacked once per test binary (the kubelet in it is about 140 MB).
type pipelineBundle struct {
	Tarball, Pub, Dir string
	Manifest          *bundle.Manifest
}

var (
	realBundleOnce sync.Once
	realBundle     *pipelineBundle
	realBundleErr  error
)

// builtBundle returns the bundle under ../_output/bundle (fails without it
// under NOKMEM_STRICT: run `go tool mage build` first).
func builtBundle(t *testing.T) *pipelineBundle {
	t.Helper()
	tgzs, _ := filepath.Glob(filepath.Join("..", "_output", "bundle", bundle.NamePrefix+"*"+bundle.TarExt))
	if len(tgzs) == 0 {
		testenv.RequireFile(t, "the node bundle of `go tool mage build`", filepath.Join("..", "_output", "bundle", bundle.NamePrefix+"*"+bundle.TarExt))
	}
	realBundleOnce.Do(func() {
		// The newest, when earlier builds left others.
		slices.SortFunc(tgzs, func(a, b string) int {
			fa, _ := os.Stat(a)
			fb, _ := os.Stat(b)
			return fb.ModTime().Compare(fa.ModTime())
		})
		b := &pipelineBundle{Tarball: tgzs[0], Pub: filepath.Join("..", "_output", "nokmem-release.pub")}
		parent, err := os.MkdirTemp(tmpRoot, "bundle-")
		if err != nil {
			realBundleErr = err
			return
		}
		if b.Dir, realBundleErr = bundle.Unpack(b.Tarball, parent); realBundleErr != nil {
			return
		}
		b.Manifest, realBundleErr = bundle.Verify(b.Dir, b.Pub)
		realBundle = b
	})
	if realBundleErr != nil {
		t.Fatalf("the bundle of `go tool mage build`: %v", realBundleErr)
	}
	return realBundle
}

// Stock binaries of the simulated node.
const (
	stockKubelet = "#!/bin/sh\necho 'Kubernetes v1.12.4'\n"
	stockRunc    = "#!/bin/sh\necho 'runc version 1.0.0-rc5'\n"
)

// node is a simulated node: the simulator mounted over FUSE, a kernel
// release file, stock kubelet and runc scripts, a small signed bundle of
// nokmem builds (internal/bundle/bundletest) and a fake service command
// that logs what it is asked to do.
type node struct {
	*memcgtest.Node // the simulator, mounted

	t        *testing.T
	dir      string // holds osrelease, bin/, state/, service.log
	bundle   *bundletest.Fixture
	podPid   int
	podGroup string
}

func newNode(t *testing.T, p memcgsim.Profile) *node {
	t.Helper()
	testenv.RequireCommand(t, "sh")
	n := &node{Node: memcgtest.Sim(t, p), t: t, dir: t.TempDir()}
	kernel := "3.10.0-1127.el7.x86_64"
	if p == memcgsim.Modern {
		kernel = "6.18.44"
	}
	n.write("osrelease", kernel+"\n", 0o644)
	n.write("bin/kubelet", stockKubelet, 0o755)
	n.write("bin/runc", stockRunc, 0o755)
	n.bundle = bundletest.Make(t, "nokmem-v1.12.4-v1.0.0-rc5+nokmem.test", "", "")
	// The bundle's stand-ins are no published nokmem builds: detect knows
	// them by their sha256 (--known-sums), as an operator would list a
	// build of their own.
	sums, err := os.ReadFile(filepath.Join(n.bundle.Dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	n.write("known.sums", string(sums), 0o644)
	return n
}

// knownSums adds the sha256 of the node's files rels to --known-sums.
func (n *node) knownSums(rels ...string) {
	n.t.Helper()
	f, err := os.OpenFile(n.path("known.sums"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		n.t.Fatal(err)
	}
	defer f.Close()
	for _, rel := range rels {
		sum, err := binary.FileSHA256(n.path(rel))
		if err != nil {
			n.t.Fatal(err)
		}
		fmt.Fprintf(f, "%s  %s\n", sum, filepath.Base(rel))
	}
}

func (n *node) path(rel string) string { return filepath.Join(n.dir, rel) }

// nokmemKubelet writes a stand-in for an installed nokmem kubelet (only its
// --version and sha256 are read) and returns its path, for migrate's
// precondition in tests that are not about the bundle.
func (n *node) nokmemKubelet() string {
	p := n.path("nokmem/kubelet")
	if _, err := os.Stat(p); err != nil {
		n.write("nokmem/kubelet", "#!/bin/sh\necho 'Kubernetes v1.12.4+nokmem'\n", 0o755)
	}
	return p
}

// nokmemKubeletArgs are migrate's flags for nokmemKubelet: its path, and
// --known-sums with its sha256 (a nokmem build is known by its digest);
// and the node's --os-release.
func (n *node) nokmemKubeletArgs() []string {
	n.t.Helper()
	p := n.nokmemKubelet()
	sum, err := binary.FileSHA256(p)
	if err != nil {
		n.t.Fatal(err)
	}
	n.write("nokmem/SHA256SUMS", sum+"  kubelet\n", 0o644)
	return []string{"--kubelet-path", p, "--known-sums", n.path("nokmem/SHA256SUMS"), "--os-release", n.path("osrelease")}
}

func (n *node) write(rel, content string, mode os.FileMode) {
	n.t.Helper()
	p := n.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		n.t.Fatal(err)
	}
}

// kubelet builds a kubepods tree the way a stock kubelet and runc do on
// RHEL 7: kmem activated on kubepods (runc writes 1 then -1), inherited by
// everything created below, then churns short-lived pods, each of which
// leaks its memcg ID. It leaves one running pod.
func (n *node) kubelet(top string, churn int) {
	n.t.Helper()
	must := func(err error) {
		n.t.Helper()
		if err != nil {
			n.t.Fatal(err)
		}
	}
	must(n.H.Mkdir(top))
	must(n.H.Write(top, memcg.KmemLimit, "1"))
	must(n.H.Write(top, memcg.KmemLimit, "-1"))
	must(n.H.Mkdir(top + "/burstable"))
	n.podGroup = top + "/burstable/podA"
	must(n.H.Mkdir(n.podGroup))
	must(n.H.WriteInt(n.podGroup, memcg.Limit, 300<<20))
	pid, err := n.Sim.AddTask(n.podGroup, 20<<20)
	must(err)
	n.podPid = pid
	for i := range churn {
		p := fmt.Sprintf("%s/burstable/job%d", top, i)
		must(n.H.Mkdir(p))
		must(n.H.Rmdir(p))
	}
}

// verify runs the real binary against the simulator and returns stdout,
// stderr and the exit code.
func (n *node) verify(args ...string) (string, string, int) {
	n.t.Helper()
	return n.verifyWith(verifyBin, args...)
}

// verifyWith runs the verify program bin (the bundle's, for example).
func (n *node) verifyWith(bin string, args ...string) (string, string, int) {
	n.t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", n.Mount.Memory, "--state-dir", n.path("state")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		n.t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// detectArgs point detect at the simulator's /proc/cgroups and slab dir and
// at the node's binaries.
func (n *node) detectArgs() []string {
	return []string{"--os-release", n.path("osrelease"), "--proc-cgroups", n.Mount.ProcCgroups, "--slab-dir", n.Mount.Slab,
		"--search-dirs", n.path("bin"), "--known-sums", n.path("known.sums")}
}

func (n *node) runArgs(extra ...string) []string {
	args := append([]string{"run"}, n.detectArgs()...)
	args = append(args, "--bundle", n.bundle.Dir, "--pubkey", n.bundle.Pub,
		"--stop-cmd", "echo stop >> "+n.path("service.log"),
		"--start-cmd", "echo start >> "+n.path("service.log"),
		"--junit", n.path("junit.xml"), "--report", n.path("report.json"), "-o", "json")
	return append(args, extra...)
}

func (n *node) serviceLog() string {
	b, err := os.ReadFile(n.path("service.log"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		n.t.Fatal(err)
	}
	return string(b)
}

// state is everything a run could change: the cgroup tree with its kmem
// state, the task's cgroup, the binaries, the leaked IDs.
func (n *node) state() string {
	n.t.Helper()
	var b strings.Builder
	all, err := n.H.Walk("")
	if err != nil {
		n.t.Fatal(err)
	}
	for _, rel := range all {
		if rel == "" {
			continue
		}
		active, err := n.Sim.KmemActive(rel)
		if err != nil {
			n.t.Fatal(err)
		}
		fmt.Fprintf(&b, "cgroup %s kmem=%v\n", rel, active)
	}
	if n.podPid != 0 {
		cg, err := n.Sim.TaskCgroup(n.podPid)
		if err != nil {
			n.t.Fatal(err)
		}
		fmt.Fprintf(&b, "task %d in %s\n", n.podPid, cg)
	}
	for _, f := range []string{"bin/kubelet", "bin/runc"} {
		c, err := os.ReadFile(n.path(f))
		if err != nil {
			n.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %q\n", f, c)
	}
	fmt.Fprintf(&b, "leaked %v\n", n.Sim.LeakedIDs())
	return b.String()
}

func TestDetectOnSimulator(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 7)
	out, stderr, code := n.verify(append([]string{"detect", "-o", "json"}, n.detectArgs()...)...)
	if code != 1 { // kmem-active cgroups and stock binaries: problem found
		t.Fatalf("detect exit %d, want 1: %s", code, stderr)
	}
	var r detect.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("detect JSON: %v\n%s", err, out)
	}
	wantActive := []string{"kubepods", "kubepods/burstable", "kubepods/burstable/podA"}
	if !r.Semantics310 || r.Driver != memcg.DriverCgroupfs || r.KubepodsCgroups != 3 || !slices.Equal(r.KmemActive, wantActive) {
		t.Errorf("detect: semantics %v driver %s cgroups %d active %v; want 3.10, cgroupfs, 3, %v", r.Semantics310, r.Driver, r.KubepodsCgroups, r.KmemActive, wantActive)
	}
	if leaked := len(n.Sim.LeakedIDs()); leaked != 7 || r.Leaked.IDs != leaked {
		t.Errorf("leaked IDs: detect says %d, simulator holds %d, want 7", r.Leaked.IDs, leaked)
	}
	if r.ProcCgroups.NumCgroups != n.Sim.Live() || r.Kernel != "3.10.0-1127.el7.x86_64" {
		t.Errorf("proc cgroups %+v (live %d), kernel %q", r.ProcCgroups, n.Sim.Live(), r.Kernel)
	}
	if len(r.Binaries) != 2 || r.Binaries[0].Kind != binary.KindStock || r.Binaries[1].Kind != binary.KindStock {
		t.Errorf("binaries %+v", r.Binaries)
	}

	// The ID probe stops at exhaustion and gives every ID back.
	n.Sim.LimitIDs(n.Sim.IDsInUse() + 5)
	out, stderr, code = n.verify(append([]string{"detect", "-o", "json", "--probe-ids", "100"}, n.detectArgs()...)...)
	if code != 1 {
		t.Fatalf("detect --probe-ids exit %d: %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.IDProbe == nil || r.IDProbe.Created != 5 || !r.IDProbe.Exhausted || !strings.Contains(stderr, "briefly uses memcg IDs") {
		t.Errorf("ID probe %+v, stderr %s", r.IDProbe, stderr)
	}

	// Prometheus textfile and node-problem-detector mode.
	prom := n.path("nokmem.prom")
	if _, stderr, code := n.verify(append([]string{"detect", "--textfile", prom}, n.detectArgs()...)...); code != 1 {
		t.Fatalf("detect --textfile exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nokmem_kmem_active_cgroups 3\n", "nokmem_leaked_ids_estimate 7\n", "nokmem_problem 1\n", `nokmem_kernel_semantics_310{kernel="3.10.0-1127.el7.x86_64"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("textfile lacks %q:\n%s", want, b)
		}
	}
	out, _, code = n.verify(append([]string{"detect", "--npd"}, n.detectArgs()...)...)
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "3 kmem-active cgroups") {
		t.Errorf("npd: exit %d, %q; want exit 1 and one line", code, out)
	}
	out, _, code = n.verify("detect", "--npd", "--os-release", n.path("missing"))
	if code != 2 || !strings.HasPrefix(out, "unknown:") {
		t.Errorf("npd without kernel release: exit %d, %q; want 2", code, out)
	}
}

// TestRunRepairsSimulatedNode is the acceptance run end to end on what the
// pipeline ships: the bundle tarball that `go tool mage build` published
// (real kubelet, runc and verify, real signature), installed and run by the
// bundle's own verify against the 3.10 simulator, with fake service
// commands, a fake process table and a loopback healthz endpoint.
func TestRunRepairsSimulatedNode(t *testing.T) {
	b := builtBundle(t)
	bundled := filepath.Join(b.Dir, "verify")
	n := newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 3)
	if _, _, code := n.verifyWith(bundled, "assert", "--os-release", n.path("osrelease")); code != 1 {
		t.Fatalf("assert before the repair: exit %d, want 1", code)
	}
	if out, _, code := n.verifyWith(bundled, "version"); code != 0 || !strings.Contains(out, b.Manifest.Name) || !strings.Contains(out, b.Manifest.Binary("verify").Version) {
		t.Errorf("bundled verify version: exit %d %q, want its version and bundle %s", code, out, b.Manifest.Name)
	}
	// The kubelet "runs" while <proc>/4242/exe points at the node's kubelet.
	proc := n.path("proc")
	kubelet := n.path("bin/kubelet")
	n.write("proc/4242/comm", "kubelet\n", 0o644)
	if err := os.Symlink(kubelet, n.path("proc/4242/exe")); err != nil {
		t.Fatal(err)
	}
	healthz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Lstat(n.path("proc/4242/exe")); err != nil {
			http.Error(w, "kubelet down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(healthz.Close)
	args := append([]string{"run"}, n.detectArgs()...)
	args = append(args, "--bundle", b.Tarball, "--pubkey", b.Pub, "--tmp-dir", t.TempDir(),
		"--proc", proc, "--healthz", healthz.URL+"/healthz", "--kubelet-timeout", "20s",
		"--stop-cmd", fmt.Sprintf("rm -rf %s/4242 && echo stop >> %s", proc, n.path("service.log")),
		"--start-cmd", fmt.Sprintf("sleep 0.2 && mkdir -p %[1]s/4242 && ln -s %[2]s %[1]s/4242/exe && echo start >> %[3]s", proc, kubelet, n.path("service.log")),
		"--junit", n.path("junit.xml"), "--report", n.path("report.json"), "-o", "json")
	start := time.Now()
	out, stderr, code := n.verifyWith(bundled, args...)
	if code != 0 {
		t.Fatalf("run exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	t.Logf("verify run --bundle took %s", time.Since(start).Round(time.Millisecond))
	var res acceptance.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("run JSON: %v\n%s", err, out)
	}
	if res.Outcome != acceptance.OutcomePassed || res.Assert == nil || !res.Assert.Passed || res.Install == nil {
		t.Fatalf("run result %+v", res)
	}
	if !res.Install.Signed || res.Install.SignatureSkipped || res.Install.Bundle.Name != b.Manifest.Name {
		t.Errorf("install record: signed %v skipped %v bundle %q", res.Install.Signed, res.Install.SignatureSkipped, res.Install.Bundle.Name)
	}
	if b.Manifest.SigningKey.Development && !strings.Contains(stderr, "DEVELOPMENT KEY "+b.Manifest.SigningKey.ID) {
		t.Errorf("a bundle signed with the development key installed without the red flag:\n%s", stderr)
	}
	if got := n.serviceLog(); got != "stop\nstart\n" {
		t.Errorf("service log %q, want stop then start", got)
	}
	// The downtime runs from the stop command to the kubelet process being
	// back (the start command sleeps 0.2 s), and is in all three reports.
	if res.Downtime < 200*time.Millisecond || res.Downtime > 20*time.Second || res.DowntimeSeconds != res.Downtime.Seconds() {
		t.Errorf("kubelet downtime %s (%v s)", res.Downtime, res.DowntimeSeconds)
	}
	var startStep string
	for _, s := range res.Steps {
		if s.Name == acceptance.StepStart {
			startStep = s.Details
		}
	}
	if !strings.Contains(startStep, "pid 4242") || !strings.Contains(startStep, "answered 200") {
		t.Errorf("start step details %q: want the kubelet process and healthz", startStep)
	}
	// kmem off everywhere, the pod where it was, its limit kept.
	all, err := n.H.Walk("")
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range all {
		if rel == "" {
			continue
		}
		if active, err := n.Sim.KmemActive(rel); err != nil || active {
			t.Errorf("%s kmem-active after run: %v, %v", rel, active, err)
		}
	}
	if cg, err := n.Sim.TaskCgroup(n.podPid); err != nil || cg != "kubepods/burstable/podA" {
		t.Errorf("pod task in %q (%v), want kubepods/burstable/podA", cg, err)
	}
	if lim, err := n.H.ReadInt("kubepods/burstable/podA", memcg.Limit); err != nil || lim != 300<<20 {
		t.Errorf("podA limit %d (%v), want 300 MiB", lim, err)
	}
	// Both binaries are the bundle's, byte for byte.
	for _, name := range []string{"kubelet", "runc"} {
		if !sameFile(t, n.path("bin/"+name), filepath.Join(b.Dir, name)) {
			t.Errorf("bin/%s is not the bundle's %s", name, name)
		}
	}
	// Both reports are written and parse, with the downtime.
	var fromFile acceptance.Result
	data, err := os.ReadFile(n.path("report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fromFile); err != nil || fromFile.Outcome != acceptance.OutcomePassed || fromFile.Downtime != res.Downtime {
		t.Errorf("report.json: %v, outcome %q downtime %s", err, fromFile.Outcome, fromFile.Downtime)
	}
	data, err = os.ReadFile(n.path("junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc junit.Testsuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit.xml does not parse: %v\n%s", err, data)
	}
	if len(doc.Suites) != 1 || doc.Suites[0].Tests != len(acceptance.Steps) || doc.Suites[0].Failures != 0 {
		t.Errorf("junit suites %+v", doc.Suites)
	}
	if !strings.Contains(string(data), `name="kubelet_downtime_seconds" value="`+fmt.Sprintf("%.3f", res.DowntimeSeconds)+`"`) {
		t.Errorf("junit.xml lacks the kubelet downtime property:\n%s", data)
	}
	// The node now passes assert and the NPD check.
	if out, stderr, code := n.verifyWith(bundled, "assert", "--os-release", n.path("osrelease"), "-o", "json"); code != 0 {
		t.Errorf("assert after run: exit %d\n%s%s", code, out, stderr)
	}
	if out, _, code := n.verifyWith(bundled, append([]string{"detect", "--npd"}, n.detectArgs()...)...); code != 0 {
		t.Errorf("npd after run: exit %d %q", code, out)
	}
	// A cgroup made under the migrated tree the way the kubelet makes pod
	// cgroups (mkdir; the patched runc then writes no kmem limit, which
	// internal/runcproof proves on the real binary) inherits no kmem
	// accounting, unlike one made under the old tree.
	if err := n.H.Mkdir("kubepods/burstable/podB"); err != nil {
		t.Fatal(err)
	}
	if active, err := n.Sim.KmemActive("kubepods/burstable/podB"); err != nil || active {
		t.Errorf("new pod cgroup under the migrated tree: kmem-active %v, %v", active, err)
	}
	// Rollback restores both stock binaries byte for byte.
	start = time.Now()
	if _, stderr, code := n.verifyWith(bundled, "install", "--rollback"); code != 0 {
		t.Fatalf("install --rollback exit %d: %s", code, stderr)
	}
	t.Logf("install --rollback took %s", time.Since(start).Round(time.Millisecond))
	for name, want := range map[string]string{"kubelet": stockKubelet, "runc": stockRunc} {
		if got, _ := os.ReadFile(n.path("bin/" + name)); string(got) != want {
			t.Errorf("%s after rollback: %.60q, want the stock script", name, got)
		}
	}
	if _, stderr, code := n.verifyWith(bundled, "rollback"); code != 0 || !strings.Contains(stderr, "nothing to roll back") {
		t.Errorf("second rollback: exit %d %q, want exit 0 and nothing to roll back", code, stderr)
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	sa, err := sums.File(sums.SHA256, a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sums.File(sums.SHA256, b)
	if err != nil {
		t.Fatal(err)
	}
	return sa == sb
}

// TestInstallRefusesNonRoot runs verify as nobody (uid 65534): install and
// rollback refuse before writing anything.
func TestInstallRefusesNonRoot(t *testing.T) {
	testenv.RequireRoot(t)
	n := newNode(t, memcgsim.RHEL78)
	before := n.state()
	for _, args := range [][]string{
		{"install", "--bundle", n.bundle.Dir, "--pubkey", n.bundle.Pub, "--search-dirs", n.path("bin")},
		{"install", "--rollback"},
	} {
		cmd := exec.Command(verifyBin, append([]string{"--state-dir", n.path("state")}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(string(out), "must run as root") {
			t.Errorf("%v as uid 65534: %v\n%s\nwant a refusal naming root", args, err, out)
		}
	}
	if after := n.state(); after != before {
		t.Errorf("node changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	if _, err := os.Stat(n.path("state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir written by an unprivileged install: %v", err)
	}
}

func TestRunModernKernelNotApplicable(t *testing.T) {
	n := newNode(t, memcgsim.Modern)
	n.kubelet("kubepods", 3)
	before := n.state()
	out, stderr, code := n.verify(n.runArgs()...)
	if code != 0 {
		t.Fatalf("run exit %d: %s", code, stderr)
	}
	var res acceptance.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Outcome != acceptance.OutcomeNotApplicable || res.Assert == nil || res.Assert.Applicable || !strings.Contains(res.Assert.Reason, "not applicable") {
		t.Fatalf("result %+v assert %+v", res, res.Assert)
	}
	if after := n.state(); after != before {
		t.Errorf("modern run changed the node:\nbefore\n%s\nafter\n%s", before, after)
	}
	if log := n.serviceLog(); log != "" {
		t.Errorf("service commands ran: %q", log)
	}
	if _, _, code := n.verify(n.runArgs("--strict")...); code != acceptance.ExitCodes[acceptance.StepAssert] {
		t.Errorf("--strict on a modern kernel: exit %d, want %d", code, acceptance.ExitCodes[acceptance.StepAssert])
	}
	out, _, code = n.verify("assert", "-o", "json")
	var a assert.Result
	if err := json.Unmarshal([]byte(out), &a); err != nil || code != 0 || a.Applicable {
		t.Errorf("assert on modern: exit %d, %+v, %v", code, a, err)
	}
	if after := n.state(); after != before {
		t.Errorf("modern assert changed the node")
	}
}

// bundletestPub is the public key of another bundle: a wrong key.
func bundletestPub(t *testing.T) string {
	return bundletest.Make(t, "nokmem-v0-v0+other", "", "").Pub
}

// TestRunRefuses covers nodes run must not touch: each fails at detect (or
// binaries) with a clear message, and nothing changes.
func TestRunRefuses(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(n *node)
		args     []string
		wantStep string
		wantMsg  string
	}{
		{"no kubepods", func(n *node) {}, nil, acceptance.StepDetect, "no kubepods cgroup"},
		{"systemd driver", func(n *node) { n.kubelet("kubepods.slice", 1) }, nil, acceptance.StepDetect, "systemd cgroup driver"},
		{"tampered binary, re-summed", func(n *node) {
			n.kubelet("kubepods", 1)
			if err := os.WriteFile(filepath.Join(n.bundle.Dir, "runc"), []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
				n.t.Fatal(err)
			}
			var names []string
			listed, _ := sums.Parse(filepath.Join(n.bundle.Dir, "SHA256SUMS"))
			for name := range listed {
				names = append(names, name)
			}
			if _, err := sums.Write(n.bundle.Dir, names, nil); err != nil {
				n.t.Fatal(err)
			}
		}, nil, acceptance.StepInstall, "signature does not verify"},
		{"wrong key", func(n *node) { n.kubelet("kubepods", 1) }, []string{"--pubkey", bundletestPub(t)}, acceptance.StepInstall, "signature does not verify"},
		{"missing key", func(n *node) { n.kubelet("kubepods", 1) }, []string{"--pubkey", "/nonexistent/release.pub"}, acceptance.StepInstall, "no release public key at /nonexistent/release.pub"},
		{"symlink target", func(n *node) {
			n.kubelet("kubepods", 1)
			if err := os.Rename(n.path("bin/runc"), n.path("bin/runc.real")); err != nil {
				n.t.Fatal(err)
			}
			if err := os.Symlink("runc.real", n.path("bin/runc")); err != nil {
				n.t.Fatal(err)
			}
		}, nil, acceptance.StepInstall, "is a symlink"},
		{"unknown kubelet", func(n *node) {
			n.kubelet("kubepods", 1)
			n.write("bin/kubelet", "#!/bin/sh\necho 'my kubelet'\n", 0o755)
		}, nil, acceptance.StepInstall, "unknown kubelet"},
		{"stock runtime without a bundle", func(n *node) { n.kubelet("kubepods", 1) }, []string{"--bundle="}, acceptance.StepBinaries, "runc at"},
		// run installs through the same plan as install (issue 21, 1).
		{"kubelet of another minor release that only claims nokmem", func(n *node) {
			n.kubelet("kubepods", 1)
			n.write("bin/kubelet", "#!/bin/sh\necho 'Kubernetes v1.20.15+nokmem.5f2e1c1'\n", 0o755)
		}, nil, acceptance.StepInstall, "claims nokmem"},
		{"Docker CE 18.06.3's runc", func(n *node) {
			n.kubelet("kubepods", 1)
			n.write("bin/runc", "#!/bin/sh\necho 'runc version 1.0.0-rc5+dev'\necho 'commit: a592beb5bc4c4092b1b1bac971afed27687340c5'\n", 0o755)
		}, nil, acceptance.StepInstall, "--allow-security-downgrade"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, memcgsim.RHEL78)
			tt.setup(n)
			before := n.state()
			out, stderr, code := n.verify(n.runArgs(tt.args...)...)
			if want := acceptance.ExitCodes[tt.wantStep]; code != want {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, want, out, stderr)
			}
			var res acceptance.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatal(err)
			}
			if res.StoppedAt != tt.wantStep || res.Next == "" {
				t.Errorf("stopped at %q, next %q", res.StoppedAt, res.Next)
			}
			var msg string
			for _, s := range res.Steps {
				if s.Name == tt.wantStep {
					msg = s.Message
				}
			}
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("step %s message %q, want %q\n%s", tt.wantStep, msg, tt.wantMsg, stderr)
			}
			if after := n.state(); after != before {
				t.Errorf("node changed:\nbefore\n%s\nafter\n%s", before, after)
			}
			if log := n.serviceLog(); log != "" {
				t.Errorf("service commands ran: %q", log)
			}
		})
	}
}

// TestRealHierarchyBinary runs the real binary on this machine's memory
// hierarchy, judged by oracles detect does not use: the kernel line from
// uname(2) (3.x has 3.10 semantics, ≥4.7 frees IDs at rmdir) and a
// read-only bind mount of the hierarchy (detect must not even try to
// write). assert on a scratch kubepods tree with a real process gives the
// verdict that fits the kernel line.
func TestRealHierarchyBinary(t *testing.T) {
	tr := memcgtest.Real(t)
	tr.Kubepods(memcgtest.Flat, 2, 1)
	tr.Sleep("kubepods/pod0/ctr0")
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("uname release %q: %v", release, err)
	}
	want310 := major == 3
	ro := t.TempDir()
	if err := unix.Mount(testenv.MemoryRoot, ro, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(ro, 0); err != nil {
			t.Errorf("unmount %s: %v", ro, unix.Unmount(ro, unix.MNT_DETACH))
		}
	})
	if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	if err := unix.Mkdir(filepath.Join(ro, "nokmem-test-rw"), 0o755); !errors.Is(err, unix.EROFS) {
		t.Fatalf("mkdir on the read-only bind mount: %v, want EROFS", err)
	}
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(verifyBin, append([]string{"--state-dir", t.TempDir()}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		t.Logf("verify %v: exit %d\n%s", args, cmd.ProcessState.ExitCode(), stderr.String())
		return stdout.String(), cmd.ProcessState.ExitCode()
	}
	leftovers := func() bool {
		kids, err := tr.H.Children("")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			if strings.HasPrefix(k, migrate.TempPrefix) {
				return true
			}
		}
		return false
	}
	before := leftovers()
	out, code := run("detect", "-o", "json", "--root", ro, "--search-dirs", t.TempDir())
	var r detect.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("detect: exit %d, %v\n%s", code, err, out)
	}
	if r.Semantics310 != want310 || r.Kernel != release || r.ProcCgroups.NumCgroups == 0 {
		t.Errorf("detect on kernel %s: semantics %+v, kernel %q, num_cgroups %d", release, r.Semantics, r.Kernel, r.ProcCgroups.NumCgroups)
	}
	if !want310 && major >= 5 && r.Semantics.Kind != memcg.KindModern {
		t.Errorf("kernel %s: semantics %s, want modern", release, r.Semantics.Kind)
	}
	// Healthy (0) unless another run left a temporary tree meanwhile (1).
	if stable := leftovers(); before == stable && code != map[bool]int{false: 0, true: 1}[stable] {
		t.Errorf("detect on the read-only hierarchy: exit %d (leftover trees: %v)\n%s", code, stable, out)
	}
	out, code = run("detect", "--npd", "--root", ro, "--search-dirs", t.TempDir())
	if !want310 && before == leftovers() && !before && (code != 0 || !strings.HasPrefix(out, "OK: kernel "+release)) {
		t.Errorf("detect --npd on the read-only hierarchy: exit %d %q", code, out)
	}
	out, code = run("assert", "-o", "json", "--kubepods", tr.Rel("kubepods"))
	var a assert.Result
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("assert JSON: %v\n%s", err, out)
	}
	if !want310 && (code != 0 || a.Applicable) {
		t.Errorf("assert on kernel %s: exit %d %+v, want not applicable", release, code, a)
	}
	if want310 && (code != 0 || !a.Passed) {
		t.Errorf("assert on a fresh scratch tree with 3.10 semantics: exit %d %+v", code, a)
	}
	if _, code := run("assert", "--strict", "--kubepods", tr.Rel("kubepods")); !want310 && code != 1 {
		t.Errorf("assert --strict: exit %d, want 1", code)
	}
}
