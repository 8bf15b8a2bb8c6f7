package kubeletnode_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/kubeletnode"
	"github.com/nokmem/nokmem/internal/runcproof"
	"github.com/nokmem/nokmem/verify/acceptance"
)

// release310 is the kernel release verify is told (with the kmem view, the
// node behaves as a RHEL 7.8 node for verify).
const release310 = "3.10.0-1127.el7.x86_64"

// runScenario: stock node → kmem writes seen → verify run --bundle under the
// real kubelet (stop, install, migrate, start, assert) → the checks.
func runScenario(t *testing.T, fault string) *scenario {
	total := time.Now()
	s := setup(t, fault)
	ctx := s.ctx
	memDir := s.cg.Memory()

	// 2. kmem, observed on the stock processes.
	before, err := s.ctd.Snapshot(ctx, s.cg.Name)
	must(t, err)
	kw, err := kubeletnode.KmemWrites(s.traces("kubelet"))
	must(t, err)
	for _, uid := range s.uids {
		s.check(checkStockKubeletKmem+" (pod "+uid+")", wroteFor(kw, "pod"+uid), "no write for pod%s among %d writes", uid, len(kw))
	}
	if s.art.StockRunc != "" {
		rw, err := kubeletnode.KmemWrites(s.traces("runc"))
		must(t, err)
		for _, c := range before {
			s.check(checkStockRuncKmem+" ("+c.Name+")", wroteFor(rw, c.ID), "no write for container %s among %d writes", c.ID, len(rw))
		}
	}
	s.figure("stock node: %d kubelet and %d runc writes to memory.kmem.limit_in_bytes", len(kw), countWrites(s.traces("runc")))

	// The kmem view: verify sees the scratch cgroup as a 3.10 memory hierarchy.
	viewDir := filepath.Join(s.dir, "view")
	must(t, os.MkdirAll(viewDir, 0o755))
	s.view, err = kubeletnode.MountKmemView(viewDir, memDir, []string{filepath.Join(s.kl.TraceDir, "*.strace"), filepath.Join(s.ctd.TraceDir, "*.strace")})
	must(t, err)
	t.Cleanup(func() {
		if err := s.view.Unmount(); err != nil {
			t.Errorf("cleanup: unmount %s: %v", viewDir, err)
		}
	})
	osr := filepath.Join(s.dir, "osrelease")
	must(t, os.WriteFile(osr, []byte(release310+"\n"), 0o644))

	// What must survive the migration.
	limits, err := kubeletnode.Limits(memDir, "kubepods")
	must(t, err)
	oldIno := ino(filepath.Join(memDir, "kubepods"))
	runcBefore := s.traces("runc")

	// 3. verify run under the real kubelet, healthz and process polled every 50 ms.
	stopCmd, startCmd := s.kl.StopScript, s.kl.StartScript
	var victim kubeletnode.Container
	for _, c := range sortedContainers(before) {
		if !c.Sandbox {
			victim = c
			break
		}
	}
	switch s.fault {
	case "stock-kubelet":
		// The node ends up running the stock build where the bundle's was installed.
		k := filepath.Join(s.bin, "kubelet")
		startCmd = fmt.Sprintf("cp %s %s.new && mv -f %s.new %s && %s", s.art.StockKubelet, k, k, k, startCmd)
	case "container-restart":
		// The stop command also kills a container: the kubelet restarts it.
		stopCmd = fmt.Sprintf("%s && kill -KILL %d", stopCmd, victim.Pid)
	case "lost-process":
		// The stop command moves a pod process out of kubepods, where the
		// migration does not look: the process is lost to its pod cgroup.
		stopCmd = fmt.Sprintf("%s && echo %d > %s/cgroup.procs", stopCmd, victim.Pid, memDir)
	}
	poll := startPoller(s.kl.HealthzURL(), s.kl.Pid)
	report := filepath.Join(s.dir, "report.json")
	runStart := time.Now()
	out, stderr, code := s.verify("run", "--os-release", osr, "--search-dirs", s.bin,
		"--kubelet-path", filepath.Join(s.bin, "kubelet"), "--runc-path", filepath.Join(s.bin, "runc"),
		"--bundle", s.art.Bundle, "--pubkey", s.art.Pub, "--tmp-dir", filepath.Join(s.dir, "tmp"),
		"--stop-cmd", stopCmd, "--start-cmd", startCmd, "--healthz", s.kl.HealthzURL(), "--kubelet-timeout", "2m",
		"--report", report, "-o", "json")
	runTook := time.Since(runStart)
	// Wait for healthz to be back (the run may have failed before).
	for i := 0; i < 600 && !kubeletnode.Healthy(s.kl.HealthzURL()); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	gap := poll.stop()
	t.Logf("verify run exit %d\n%s", code, stderr)
	var res acceptance.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		s.fatal("verify run JSON: %v\n%s\n%s", err, out, stderr)
	}
	s.check(checkRunPassed, code == 0 && res.Outcome == acceptance.OutcomePassed, "exit %d, outcome %s, stopped at %s", code, res.Outcome, res.StoppedAt)
	s.figure("verify run: %s total, exit %d, outcome %s", runTook.Round(time.Millisecond), code, res.Outcome)

	// Containers: same ids and pids, no new ones, attempts unchanged; same cgroups.
	s.waitKubeletSynced()
	after, err := s.ctd.Snapshot(ctx, s.cg.Name)
	must(t, err)
	var lost, moved []string
	for id, b := range before {
		a, ok := after[id]
		switch {
		case !ok:
			lost = append(lost, fmt.Sprintf("%s/%s gone", b.PodName, b.Name))
		case a.Pid != b.Pid || a.Status != "RUNNING" || a.Attempt != b.Attempt:
			lost = append(lost, fmt.Sprintf("%s/%s pid %d→%d %s attempt %d→%d", b.PodName, b.Name, b.Pid, a.Pid, a.Status, b.Attempt, a.Attempt))
		case a.Cgroup != b.Cgroup:
			moved = append(moved, fmt.Sprintf("%s/%s pid %d: %s → %s", b.PodName, b.Name, b.Pid, b.Cgroup, a.Cgroup))
		}
	}
	for id, a := range after {
		if _, ok := before[id]; !ok {
			lost = append(lost, fmt.Sprintf("new container %s/%s (attempt %d)", a.PodName, a.Name, a.Attempt))
		}
	}
	s.check(checkContainersKept, len(lost) == 0, "%s", strings.Join(lost, "; "))
	s.check(checkSameCgroup, len(moved) == 0, "%s", strings.Join(moved, "; "))
	limitsAfter, err := kubeletnode.Limits(memDir, "kubepods")
	must(t, err)
	var diff []string
	for rel, v := range limits {
		if limitsAfter[rel] != v {
			diff = append(diff, fmt.Sprintf("%s %s → %q", rel, v, limitsAfter[rel]))
		}
	}
	sort.Strings(diff)
	s.check(checkLimits, len(diff) == 0, "%s", strings.Join(diff, "; "))
	newIno := ino(filepath.Join(memDir, "kubepods"))
	s.check(checkFreshTree, newIno != 0 && newIno != oldIno, "kubepods inode %d before, %d after", oldIno, newIno)
	s.figure("%d containers (%d pods) kept their id and pid; %d memory cgroups compared", len(before), len(s.pods), len(limits))

	// The restarted kubelet reports the pods running.
	rp, err := s.kl.RunningPods()
	want := map[string]bool{}
	for _, p := range s.pods {
		want[p.Name+"-"+s.node] = true
	}
	got := 0
	for _, p := range rp {
		if want[p.Name] && len(p.Containers) >= 2 {
			got++
		}
	}
	s.check(checkKubeletPods, err == nil && got == len(s.pods), "%d of %d pods in /runningpods/ (%v): %+v", got, len(s.pods), err, rp)

	// Downtime: verify's figure (stop issued → kubelet process running)
	// against the test's own 50 ms polls.
	s.figure("kubelet downtime: reported %.3f s; measured: process gap %.3f s, healthz gap %.3f s (poll 50 ms)",
		res.DowntimeSeconds, gap.process.Seconds(), gap.healthz.Seconds())
	s.check(checkDowntime, gap.healthz > 0 && res.DowntimeSeconds > 0 &&
		abs(res.DowntimeSeconds-gap.process.Seconds()) <= downtimeTolerance.Seconds() &&
		res.DowntimeSeconds <= gap.healthz.Seconds()+pollInterval.Seconds(),
		"reported %.3f s, process gap %.3f s, healthz gap %.3f s (tolerance %s)", res.DowntimeSeconds, gap.process.Seconds(), gap.healthz.Seconds(), downtimeTolerance)

	// A pod added afterwards: cgroups under the fresh kubepods; one removed: cgroups gone.
	added := kubeletnode.Pod{Name: "added-" + s.suffix, QoS: "Burstable", Memory: "48Mi"}
	must(t, added.Write(s.kl.ManifestDir))
	snap := s.waitRunning(len(s.pods) + 1)
	var addedUID string
	var inFresh []string
	ok := true
	for _, c := range snap {
		if c.PodName != added.Name+"-"+s.node || c.Sandbox {
			continue
		}
		addedUID = c.PodUID
		wantPrefix := "kubepods/burstable/pod" + c.PodUID + "/"
		if !strings.HasPrefix(c.Cgroup, wantPrefix) || ino(filepath.Join(memDir, "kubepods")) != newIno {
			ok = false
		}
		inFresh = append(inFresh, c.Cgroup)
	}
	s.check(checkNewPod, ok && len(inFresh) == 2, "containers of %s in %q", added.Name, inFresh)
	removed := s.pods[2]
	removedUID := ""
	for _, c := range snap {
		if c.PodName == removed.Name+"-"+s.node {
			removedUID = c.PodUID
		}
	}
	must(t, removed.Remove(s.kl.ManifestDir))
	podCg := filepath.Join(memDir, "kubepods", "besteffort", "pod"+removedUID)
	gone := false
	for i := 0; i < 600 && !gone; i++ {
		_, err := os.Stat(podCg)
		gone = os.IsNotExist(err)
		time.Sleep(100 * time.Millisecond)
	}
	s.check(checkRemovedPod, removedUID != "" && gone, "%s still there 60 s after its manifest was removed", podCg)

	// kmem writes after the install: the kubelet's traces after the first
	// start, the runc traces since the run.
	restarted := s.traces("kubelet")
	if len(restarted) > 0 {
		restarted = restarted[1:]
	}
	kw, err = kubeletnode.KmemWrites(restarted)
	must(t, err)
	s.check(checkNokmemKubelet, len(restarted) > 0 && len(kw) == 0, "%d writes in %d traced starts, e.g. %+v", len(kw), len(restarted), first(kw))
	var runcAfter []string
	for _, f := range s.traces("runc") {
		if !containsStr(runcBefore, f) {
			runcAfter = append(runcAfter, f)
		}
	}
	rw, err := kubeletnode.KmemWrites(runcAfter)
	must(t, err)
	s.check(checkNokmemRunc, len(runcAfter) > 0 && len(rw) == 0, "%d writes in %d runc runs, e.g. %+v", len(rw), len(runcAfter), first(rw))
	s.figure("after the run: pod %s added (uid %s), pod %s removed; %d runc runs traced, kmem writes: kubelet %d, runc %d", added.Name, addedUID, removed.Name, len(runcAfter), len(kw), len(rw))

	// verify assert and detect, on the migrated node.
	out, stderr, code = s.verify("assert", "-o", "json")
	s.check(checkAssert, code == 0, "exit %d\n%s%s", code, out, stderr)
	out, stderr, code = s.verify("detect", "-o", "json", "--os-release", osr, "--search-dirs", s.bin,
		"--kubelet-path", filepath.Join(s.bin, "kubelet"), "--runc-path", filepath.Join(s.bin, "runc"),
		"--known-sums", filepath.Join(s.bundle, "SHA256SUMS"))
	var det struct {
		Binaries []struct{ Name, Kind, SHA256, Path string }
	}
	json.Unmarshal([]byte(out), &det)
	kinds := map[string]string{}
	for _, b := range det.Binaries {
		kinds[b.Name] = b.Kind
	}
	s.check(checkDetect, kinds["kubelet"] == "nokmem" && kinds["runc"] == "nokmem", "binaries %+v (exit %d) %s", det.Binaries, code, stderr)
	s.figure("total scenario: %s", time.Since(total).Round(time.Second))
	return s
}

// Downtime comparison. verify's figure runs to the moment it finds the new
// kubelet process (it hashes the binary first, issue 24), the test's
// process poll to the moment it sees the new pid.
const (
	pollInterval      = 50 * time.Millisecond
	downtimeTolerance = 2 * time.Second
)

// gaps are what the poller measured.
type gaps struct{ process, healthz time.Duration }

type poller struct {
	done chan struct{}
	res  chan gaps
}

// startPoller polls healthz and the kubelet's pid every 50 ms: the healthz
// gap runs from the last 200 before the first failure to the first 200
// after it, the process gap from the first poll without the old pid to the
// first with a new kubelet process.
func startPoller(url string, kubeletPid func() int) *poller {
	oldPid := kubeletPid()
	p := &poller{done: make(chan struct{}), res: make(chan gaps, 1)}
	go func() {
		var lastOK, downAt, upAt, procGone, procBack time.Time
		for {
			now := time.Now()
			healthy := kubeletnode.Healthy(url)
			switch {
			case healthy && downAt.IsZero():
				lastOK = now
			case !healthy && downAt.IsZero() && !lastOK.IsZero():
				downAt = now
			case healthy && !downAt.IsZero() && upAt.IsZero():
				upAt = now
			}
			pid := kubeletPid()
			switch {
			case pid == oldPid:
			case procGone.IsZero():
				procGone = now
			}
			if !procGone.IsZero() && procBack.IsZero() && pid != 0 && pid != oldPid {
				procBack = now
			}
			select {
			case <-p.done:
				g := gaps{}
				if !upAt.IsZero() {
					g.healthz = upAt.Sub(lastOK)
				}
				if !procBack.IsZero() {
					g.process = procBack.Sub(procGone)
				}
				p.res <- g
				return
			case <-time.After(pollInterval):
			}
		}
	}()
	return p
}

func (p *poller) stop() gaps { close(p.done); return <-p.res }

// waitKubeletSynced waits until the restarted kubelet answers
// /runningpods/ with every pod (it relists the runtime on start).
func (s *scenario) waitKubeletSynced() {
	for i := 0; i < 300; i++ {
		if rp, err := s.kl.RunningPods(); err == nil && len(rp) >= len(s.pods) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verify runs the bundle's verify with --root the kmem view.
func (s *scenario) verify(args ...string) (string, string, int) {
	cmd := exec.CommandContext(s.ctx, filepath.Join(s.bundle, "verify"), append([]string{"--root", s.view.Dir, "--state-dir", filepath.Join(s.dir, "verify-state")}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.fatal("verify %s: %v", args[0], err)
	}
	return out.String(), errb.String(), code
}

// traces lists the strace logs of the kubelet (in start order) or of runc.
func (s *scenario) traces(of string) []string {
	dir := s.kl.TraceDir
	if of == "runc" {
		dir = s.ctd.TraceDir
	}
	files, _ := filepath.Glob(filepath.Join(dir, of+".*.strace"))
	sort.Slice(files, func(i, j int) bool { return modTime(files[i]).Before(modTime(files[j])) })
	if of == "kubelet" {
		// kubelet.<n>.strace, n the start number.
		sort.Slice(files, func(i, j int) bool { return traceNum(files[i]) < traceNum(files[j]) })
	}
	return files
}

func traceNum(f string) int {
	var n int
	fmt.Sscanf(filepath.Base(f), "kubelet.%d.strace", &n)
	return n
}

func modTime(f string) time.Time {
	fi, err := os.Stat(f)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func countWrites(files []string) int {
	ws, _ := kubeletnode.KmemWrites(files)
	return len(ws)
}

func wroteFor(ws []runcproof.Write, part string) bool {
	for _, w := range ws {
		if strings.Contains(w.Path, "/"+part+"/") {
			return true
		}
	}
	return false
}

func first[T any](s []T) any {
	if len(s) == 0 {
		return nil
	}
	return s[0]
}

func containsStr(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func ino(p string) uint64 {
	var st syscall.Stat_t
	if syscall.Stat(p, &st) != nil {
		return 0
	}
	return st.Ino
}

func sortedContainers(m map[string]kubeletnode.Container) []kubeletnode.Container {
	var out []kubeletnode.Container
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PodName+out[i].Name < out[j].PodName+out[j].Name })
	return out
}
