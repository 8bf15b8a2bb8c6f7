package kubeletnode_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/kubeletnode"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/nodelock"
)

// Checks of the scenario, by name: a fault test expects its check to fail.
const (
	checkStockKubeletKmem = "stock kubelet writes memory.kmem.limit_in_bytes of its pod cgroups"
	checkStockRuncKmem    = "stock runc writes memory.kmem.limit_in_bytes of its container cgroups"
	checkRunPassed        = "verify run passes"
	checkContainersKept   = "every container keeps its id and pid, none added (restart counts unchanged)"
	checkSameCgroup       = "every pod process is in the same relative cgroup of the fresh tree"
	checkLimits           = "every memory limit is equal in the fresh tree"
	checkFreshTree        = "kubepods is a fresh cgroup"
	checkKubeletBack      = "the kubelet is up after verify run"
	checkKubeletPods      = "the restarted kubelet reports every pod running"
	checkDowntime         = "reported kubelet downtime agrees with the measured one"
	checkHealthzDowntime  = "reported healthz downtime agrees with the measured one"
	checkNewPod           = "a pod added afterwards gets its cgroups under the fresh kubepods"
	checkRemovedPod       = "a pod removed afterwards has its cgroups removed"
	checkNokmemKubelet    = "the nokmem kubelet writes no memory.kmem.limit_in_bytes"
	checkNokmemRunc       = "the nokmem runc writes no memory.kmem.limit_in_bytes"
	checkAssert           = "verify assert passes"
	checkDetect           = "verify detect reports the nokmem kubelet and runc"
)

// Faults planted into verify run; each must fail its check.
var faults = []struct{ name, check string }{
	{"stock-kubelet", checkNokmemKubelet},
	{"container-restart", checkContainersKept},
	{"lost-process", checkSameCgroup},
}

// FaultsEnv runs TestKubeletNodeFaults (go tool mage e2e:kubeletFaults).
const FaultsEnv = "NOKMEM_E2E_FAULTS"

// The staging acceptance scenario on this machine (docs/staging-acceptance.md).
func TestKubeletNode(t *testing.T) {
	s := runScenario(t, "")
	s.print()
	for _, f := range s.failed {
		t.Errorf("FAILED: %s", f)
	}
}

// Each planted fault makes its check fail (and the scenario red).
func TestKubeletNodeFaults(t *testing.T) {
	if os.Getenv(FaultsEnv) != "1" {
		t.Skipf("the planted faults run with %s=1 (go tool mage e2e:kubeletFaults)", FaultsEnv)
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			s := runScenario(t, f.name)
			s.print()
			if !slices.ContainsFunc(s.failed, func(m string) bool { return strings.HasPrefix(m, f.check) }) {
				t.Errorf("fault %s planted, but the check %q did not fail (failed: %q)", f.name, f.check, s.failed)
			} else {
				t.Logf("red as it must be: %s", f.check)
			}
		})
	}
}

// scenario is one run: the node, what was measured, and the failed checks.
type scenario struct {
	t       *testing.T
	ctx     context.Context
	fault   string
	dir     string
	art     *kubeletnode.Artifacts
	bundle  string // unpacked bundle
	bin     string // the node's binaries (kubelet, runc)
	cg      *kubeletnode.Cgroups
	ctd     *kubeletnode.Containerd
	kl      *kubeletnode.Kubelet
	view    *kubeletnode.KmemView
	node    string
	suffix  string
	pods    []kubeletnode.Pod
	uids    []string
	figures []string
	failed  []string
}

func (s *scenario) check(name string, ok bool, format string, a ...any) {
	if ok {
		s.t.Logf("ok: %s", name)
		return
	}
	s.failed = append(s.failed, name+": "+fmt.Sprintf(format, a...))
}

func (s *scenario) figure(format string, a ...any) {
	s.figures = append(s.figures, fmt.Sprintf(format, a...))
}

func (s *scenario) print() {
	for _, f := range s.figures {
		s.t.Logf("figure: %s", f)
	}
}

func (s *scenario) fatal(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf(format, a...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// setup checks the machine, creates the scratch cgroups, starts containerd
// with the local images and the stock kubelet with three pods. Everything
// is undone in t.Cleanup, in reverse order, on failure too.
func setup(t *testing.T, fault string) *scenario {
	testenv.RequireCgroupV1Memory(t)
	testenv.RequireFUSE(t)
	for _, c := range []string{"containerd", "ctr", "strace", "gcc", "busybox", "setsid"} {
		testenv.RequireCommand(t, c)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	art, err := kubeletnode.FindArtifacts(root)
	if err != nil {
		if testenv.Strict() {
			t.Fatalf("artifacts: %v", err)
		}
		t.Skipf("artifacts: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir, err := os.MkdirTemp("", "nokmem-kubeletnode-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("NOKMEM_KEEP") == "1" {
			t.Logf("kept %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	os.Setenv(nodelock.DirEnv, filepath.Join(dir, "lock"))
	s := &scenario{t: t, ctx: ctx, fault: fault, dir: dir, art: art, bin: filepath.Join(dir, "bin"), suffix: randomHex(3)}
	s.node = "nokmem-node-" + s.suffix
	t.Logf("node dir %s, bundle %s", dir, art.Bundle)

	// The bundle, unpacked and verified as verify will.
	must(t, os.MkdirAll(filepath.Join(dir, "bundle"), 0o755))
	s.bundle, err = bundle.Unpack(art.Bundle, filepath.Join(dir, "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Verify(s.bundle, art.Pub)
	if err != nil {
		t.Fatal(err)
	}
	must(t, art.ForBundle(m))
	t.Logf("bundle: kubelet %s, runc %s; stock runc %q", m.Binary("kubelet").Version, m.Binary("runc").Version, art.StockRunc)
	// The node's binaries before the install: the stock builds.
	must(t, os.MkdirAll(s.bin, 0o755))
	stockRunc := art.StockRunc
	if stockRunc == "" {
		stockRunc = filepath.Join(s.bundle, "runc")
		t.Logf("no stock build of the bundle's runc: the node starts with the bundle's runc")
	}
	copyFile(t, art.StockKubelet, filepath.Join(s.bin, "kubelet"))
	copyFile(t, stockRunc, filepath.Join(s.bin, "runc"))

	// Scratch cgroups in every hierarchy: the kubelet's --cgroup-root.
	s.cg, err = kubeletnode.NewCgroups("nokmem-test-" + randomHex(6))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range s.cg.Pids() {
			// Left by a failed teardown: processes of this test's runtime.
			if err := kubeletnode.KillPid(pid); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if err := s.cg.Remove(30 * time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// Every hierarchy, cgroup2's included (libcontainer creates the
		// kubelet's cgroups there too).
		if left, _ := filepath.Glob(filepath.Join(kubeletnode.CgroupMount, "*", s.cg.Name)); len(left) > 0 {
			t.Errorf("cleanup: scratch cgroups left: %v", left)
		}
	})

	// Images: static pause from the kubelet tree, busybox from Debian.
	pause := filepath.Join(dir, "pause")
	must(t, kubeletnode.BuildPause(ctx, art.PauseC, pause))
	busybox, err := exec.LookPath("busybox")
	must(t, err)
	must(t, kubeletnode.WritePauseImage(pause, filepath.Join(dir, "images", "pause.tar")))
	must(t, kubeletnode.WriteBusyboxImage(busybox, filepath.Join(dir, "images", "busybox.tar")))

	// containerd with CRI, runc = the node's runc under strace.
	s.ctd, err = kubeletnode.StartContainerd(ctx, filepath.Join(dir, "containerd"), filepath.Join(s.bin, "runc"))
	t.Cleanup(func() {
		if s.ctd != nil {
			if err := s.ctd.Teardown(context.Background()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.figure("containerd start (socket answers): %s", s.ctd.Started.Round(time.Millisecond))
	for _, img := range []string{"pause.tar", "busybox.tar"} {
		must(t, s.ctd.Import(ctx, filepath.Join(dir, "images", img)))
	}

	// The kubelet, standalone, with three static pods.
	s.kl, err = kubeletnode.NewKubelet(filepath.Join(dir, "kubelet"), filepath.Join(s.bin, "kubelet"), "/"+s.cg.Name, s.ctd.Socket, s.node)
	must(t, err)
	t.Cleanup(func() {
		if err := s.kl.Stop(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		s.removePodLogs()
	})
	s.pods = []kubeletnode.Pod{
		{Name: "guaranteed-" + s.suffix, QoS: "Guaranteed", Memory: "64Mi"},
		{Name: "burstable-" + s.suffix, QoS: "Burstable", Memory: "96Mi"},
		{Name: "besteffort-" + s.suffix, QoS: "BestEffort"},
	}
	for _, p := range s.pods {
		must(t, p.Write(s.kl.ManifestDir))
	}
	took, err := s.kl.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.figure("stock kubelet start (healthz 200): %s", took.Round(time.Millisecond))
	start := time.Now()
	s.waitRunning(len(s.pods))
	s.figure("%d pods (%d containers, %d sandboxes) running after %s", len(s.pods), 2*len(s.pods), len(s.pods), time.Since(start).Round(time.Millisecond))
	return s
}

// removePodLogs removes what the kubelet 1.12 writes outside --root-dir:
// /var/log/pods/<uid> and the /var/log/containers links of this test's pods.
func (s *scenario) removePodLogs() {
	links, _ := filepath.Glob("/var/log/containers/*" + s.suffix + "*")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, "/var/log/pods/") {
			rel := strings.TrimPrefix(target, "/var/log/pods/")
			os.RemoveAll(filepath.Join("/var/log/pods", strings.SplitN(rel, "/", 2)[0]))
		}
		os.Remove(l)
	}
	for _, uid := range s.uids {
		os.RemoveAll(filepath.Join("/var/log/pods", uid))
	}
}

// waitRunning waits until n pods with two running containers each run.
func (s *scenario) waitRunning(n int) map[string]kubeletnode.Container {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		snap, err := s.ctd.Snapshot(s.ctx, s.cg.Name)
		if err == nil {
			perPod := map[string]int{}
			for _, c := range snap {
				if !c.Sandbox && c.Status == "RUNNING" {
					perPod[c.PodUID]++
				}
			}
			full := 0
			for uid, k := range perPod {
				if k == 2 {
					full++
					if !slices.Contains(s.uids, uid) {
						s.uids = append(s.uids, uid)
					}
				}
			}
			if full == n {
				return snap
			}
		}
		if time.Now().After(deadline) {
			s.fatal("%d pods not running after 3m (%v)\nkubelet log:\n%s", n, err, s.kl.Log(4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o755))
}
