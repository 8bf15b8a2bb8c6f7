package kubeletnode_test

import (
	"bytes"
	"context"
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
	// Only cgroups with a memory setting get the write (libcontainer's
	// MemoryGroup.Apply, memoryAssigned): BestEffort pods and sandboxes have none.
	limited := map[string]bool{}
	for _, p := range s.pods {
		limited[p.Name+"-"+s.node] = p.QoS != "BestEffort"
	}
	checked := map[string]bool{}
	for _, c := range sortedContainers(before) {
		if !c.Sandbox && limited[c.PodName] && !checked[c.PodUID] {
			checked[c.PodUID] = true
			s.check(checkStockKubeletKmem+" ("+c.PodName+")", wroteFor(kw, "pod"+c.PodUID), "no write for pod%s among %d writes", c.PodUID, len(kw))
		}
	}
	if s.art.StockRunc != "" {
		rw, err := kubeletnode.KmemWrites(s.traces("runc"))
		must(t, err)
		for _, c := range sortedContainers(before) {
			if !c.Sandbox && limited[c.PodName] {
				s.check(checkStockRuncKmem+" ("+c.PodName+"/"+c.Name+")", wroteFor(rw, c.ID), "no write for container %s among %d writes", c.ID, len(rw))
			}
		}
	}
	s.figure("stock node: %d kubelet and %d runc writes to memory.kmem.limit_in_bytes", len(kw), countWrites(s.traces("runc")))

	// The kmem view: verify sees the scratch cgroup as a 3.10 memory hierarchy.
	viewDir := filepath.Join(s.dir, "view")
	must(t, os.MkdirAll(viewDir, 0o755))
	s.view, err = kubeletnode.MountKmemView(viewDir, memDir, []string{filepath.Join(s.kl.TraceDir, "*.strace"), filepath.Join(s.ctd.TraceDir, "*.strace")})
	must(t, err)
	t.Cleanup(func() {
		// The kubelet that verify started goes first: a mount namespace
		// made while the view was mounted cannot hold it then.
		if err := s.kl.Stop(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
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
	kubeletTimeout := "2m"
	switch s.fault {
	case "stock-kubelet":
		// verify waits for a process of the installed binary, which never
		// comes: no need to wait the full two minutes.
		kubeletTimeout = "15s"
		// The node ends up running the stock build where the bundle's was installed.
		k := filepath.Join(s.bin, "kubelet")
		startCmd = fmt.Sprintf("cp %s %s.new && mv -f %s.new %s && %s", s.art.StockKubelet, k, k, k, startCmd)
	case "container-restart":
		// The start command first kills a container (after the migration):
		// the restarted kubelet starts it again.
		startCmd = fmt.Sprintf("kill -KILL %d && %s", victim.Pid, startCmd)
	case "lost-process":
		// The stop command moves a pod process out of kubepods, where the
		// migration does not look: the process is lost to its pod cgroup.
		stopCmd = fmt.Sprintf("%s && echo %d > %s/cgroup.procs", stopCmd, victim.Pid, memDir)
	}
	// The moment verify issues the stop command, as the command itself sees it.
	stopIssued := filepath.Join(s.dir, "stop-issued")
	stopCmd = fmt.Sprintf("date +%%s.%%N > %s && %s", stopIssued, stopCmd)
	poll := startPoller(s.kl.HealthzURL(), s.kl.Pid)
	report := filepath.Join(s.dir, "report.json")
	must(t, os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o755))
	runStart := time.Now()
	out, stderr, code := s.verify("run", "--os-release", osr, "--search-dirs", s.bin,
		"--kubelet-path", filepath.Join(s.bin, "kubelet"), "--runc-path", filepath.Join(s.bin, "runc"),
		"--bundle", s.art.Bundle, "--pubkey", s.art.Pub, "--tmp-dir", filepath.Join(s.dir, "tmp"),
		"--stop-cmd", stopCmd, "--start-cmd", startCmd, "--healthz", s.kl.HealthzURL(), "--kubelet-timeout", kubeletTimeout,
		"--report", report, "-o", "json")
	runTook := time.Since(runStart)
	// Wait for healthz to be back, unless a failed run left the kubelet stopped.
	for i := 0; i < 600 && s.kl.Pid() != 0 && !kubeletnode.Healthy(s.kl.HealthzURL()); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	up := kubeletnode.Healthy(s.kl.HealthzURL())
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
	if up {
		s.waitKubeletSynced()
	}
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
	s.check(checkKubeletBack, up, "healthz %s not 200 after verify run (exit %d, stopped at %s): the remaining checks need the kubelet", s.kl.HealthzURL(), code, res.StoppedAt)
	if !up {
		return s
	}

	// The restarted kubelet finds every pod with both containers in the
	// runtime (restart counts: the containerd attempts checked above).
	rp, err := s.kl.RunningPods()
	want := map[string]bool{}
	for _, c := range before {
		want[c.PodUID] = true
	}
	got := 0
	for _, p := range rp {
		if want[p.UID] && len(p.Containers) == 2 {
			got++
		}
	}
	s.check(checkKubeletPods, err == nil && got == len(s.pods), "%d of %d pods with 2 containers in /runningpods/ (%v): %+v", got, len(s.pods), err, rp)

	// Downtime: verify's figure (stop command issued → a process runs the
	// installed kubelet) against the same window measured here: from the
	// time the stop command wrote to the first 50 ms poll that sees the new
	// kubelet process. They agree within both polls' intervals (50 ms here,
	// 100 ms verify's). The healthz gap (last 200 before the stop to the
	// first 200 after) is the figure for users; a verify that reports the
	// healthz downtime too (kubelet_healthz_downtime_seconds: stop command
	// → healthz 200) is held to the healthz window measured the same way.
	window, healthzWindow := time.Duration(0), time.Duration(0)
	if b, err := os.ReadFile(stopIssued); err == nil {
		var sec float64
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%f", &sec); err == nil {
			issued := time.Unix(0, int64(sec*1e9))
			if !gap.procBack.IsZero() {
				window = gap.procBack.Sub(issued)
			}
			if !gap.healthzBack.IsZero() {
				healthzWindow = gap.healthzBack.Sub(issued)
			}
		}
	}
	var hz struct {
		Seconds float64 `json:"kubelet_healthz_downtime_seconds"`
	}
	json.Unmarshal([]byte(out), &hz)
	s.figure("kubelet downtime: reported %.3f s; measured: stop issued → new kubelet process %.3f s, healthz gap %.3f s (poll 50 ms)",
		res.DowntimeSeconds, window.Seconds(), gap.healthz.Seconds())
	s.check(checkDowntime, window > 0 && res.DowntimeSeconds > 0 && abs(res.DowntimeSeconds-window.Seconds()) <= downtimeTolerance.Seconds(),
		"reported %.3f s, measured %.3f s (stop issued → new kubelet process; tolerance %s), healthz gap %.3f s", res.DowntimeSeconds, window.Seconds(), downtimeTolerance, gap.healthz.Seconds())
	if hz.Seconds > 0 {
		s.figure("healthz downtime: reported %.3f s; measured: stop issued → healthz 200 %.3f s", hz.Seconds, healthzWindow.Seconds())
		s.check(checkHealthzDowntime, healthzWindow > 0 && abs(hz.Seconds-healthzWindow.Seconds()) <= downtimeTolerance.Seconds(),
			"reported %.3f s, measured %.3f s (stop issued → healthz 200; tolerance %s)", hz.Seconds, healthzWindow.Seconds(), downtimeTolerance)
	} else {
		s.figure("healthz downtime: not in this verify's report (kubelet_healthz_downtime_seconds); measured: stop issued → healthz 200 %.3f s", healthzWindow.Seconds())
	}

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
	out, stderr, code = s.verify("assert", "-o", "json", "--os-release", osr)
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

// Downtime comparison: the test polls every 50 ms, verify run every 100 ms
// (acceptance.KubeletCheck), so the two figures of one window differ by
// less than both intervals.
const (
	pollInterval      = 50 * time.Millisecond
	downtimeTolerance = pollInterval + 100*time.Millisecond
)

// gaps are what the poller measured: the healthz gap, when healthz
// answered 200 again and when a new kubelet process was first seen.
type gaps struct {
	healthz               time.Duration
	healthzBack, procBack time.Time
}

type poller struct {
	done chan struct{}
	res  chan gaps
}

// startPoller polls the kubelet's pid and healthz every 50 ms: the healthz
// gap runs from the last 200 before the first failure to the first 200
// after it; procBack is the first poll that sees a new kubelet process.
func startPoller(url string, kubeletPid func() int) *poller {
	oldPid := kubeletPid()
	p := &poller{done: make(chan struct{}), res: make(chan gaps, 1)}
	go func() {
		var lastOK, downAt, upAt, procGone, procBack time.Time
		for {
			now := time.Now()
			pid := kubeletPid()
			healthy := kubeletnode.Healthy(url)
			switch {
			case healthy && downAt.IsZero():
				lastOK = now
			case !healthy && downAt.IsZero() && !lastOK.IsZero():
				downAt = now
			case healthy && !downAt.IsZero() && upAt.IsZero():
				upAt = now
			}
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
					g.healthz, g.healthzBack = upAt.Sub(lastOK), upAt
				}
				g.procBack = procBack
				p.res <- g
				return
			case <-time.After(pollInterval):
			}
		}
	}()
	return p
}

func (p *poller) stop() gaps { close(p.done); return <-p.res }

// waitKubeletSynced waits until the restarted kubelet lists every pod with
// both containers on /runningpods/ (it relists the runtime on start), at
// most 30 s.
func (s *scenario) waitKubeletSynced() {
	for i := 0; i < 300; i++ {
		if rp, err := s.kl.RunningPods(); err == nil {
			full := 0
			for _, p := range rp {
				if len(p.Containers) == 2 {
					full++
				}
			}
			if full >= len(s.pods) {
				return
			}
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
