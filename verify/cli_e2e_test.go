package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/assert"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/memcg"
)

// nobodyVerify copies the verify binary where uid 65534 can run it.
func nobodyVerify(t *testing.T) string {
	t.Helper()
	pub, err := os.MkdirTemp("", "verify-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(verifyBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pub, "verify")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func asNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// TestAssertAsNobodyCreatesNothing is the "read-only is not": assert
// made and removed a probe cgroup under the memory root on every run (as
// uid 65534: `mkdir …/nokmem-probe-…: permission denied`, exit 1). Now it
// (and detect without a probe flag) only reads, on the simulator (3.10, where it passes) and on this
// machine's real memory hierarchy (not applicable); --probe is refused as
// uid 65534 before anything is done, and as root probes under the kubepods
// it checks.
func TestAssertAsNobodyCreatesNothing(t *testing.T) {
	bin := nobodyVerify(t)
	n := newNode(t, memcgsim.RHEL78)
	n.Kubepods(memcgtest.QoS, 3, 1)
	// The simulator's mount and the node's files are in t.TempDir()s.
	for _, d := range []string{filepath.Dir(n.dir), n.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(n.path("osrelease"), 0o644); err != nil {
		t.Fatal(err)
	}
	tried := changes(n.Sim)
	args := []string{"--root", n.Mount.Memory, "assert", "--os-release", n.path("osrelease")}
	stdout, stderr, code := runBin(t, asNobody(exec.Command(bin, args...)))
	if code != 0 || !strings.HasPrefix(stdout, "PASS: ") || tried.Load() != 0 {
		t.Errorf("assert as uid 65534 on the simulator: exit %d, %d changes\nstdout %s\nstderr %s", code, tried.Load(), stdout, stderr)
	}

	// detect without a probe flag reads only, too.
	detectArgs := append([]string{"--root", n.Mount.Memory, "--state-dir", n.path("state"), "detect"}, n.detectArgs()...)
	stdout, stderr, code = runBin(t, asNobody(exec.Command(bin, detectArgs...)))
	if code != 1 || !strings.Contains(stdout, "verdict:") || tried.Load() != 0 {
		t.Errorf("detect as uid 65534: exit %d (want 1: stock binaries), %d changes\nstdout %s\nstderr %s", code, tried.Load(), stdout, stderr)
	}

	stdout, stderr, code = runBin(t, asNobody(exec.Command(bin, append(args, "--probe")...)))
	if code == 0 || !strings.Contains(stderr, "verify assert --probe creates cgroups") || !strings.Contains(stderr, "refused before anything was written") || tried.Load() != 0 {
		t.Errorf("assert --probe as uid 65534: exit %d, %d changes\nstdout %s\nstderr %s", code, tried.Load(), stdout, stderr)
	}

	var ops []string
	n.Sim.SetHook(func(op memcgsim.Op) error {
		if op.Kind != memcgsim.OpRead {
			ops = append(ops, string(op.Kind)+" "+op.Cgroup)
		}
		return nil
	})
	stdout, stderr, code = n.verify("assert", "--os-release", n.path("osrelease"), "--probe", "-o", "json")
	var r assert.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 0 || !strings.HasPrefix(r.Probe, "kubepods/nokmem-assert-") {
		t.Fatalf("assert --probe as root: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if len(ops) != 2 || ops[0] != "mkdir "+r.Probe || ops[1] != "rmdir "+r.Probe {
		t.Errorf("assert --probe changed %v, want one mkdir and rmdir of %s", ops, r.Probe)
	}
	if !strings.Contains(stderr, "creating a probe child under") {
		t.Errorf("assert --probe did not say what it does first: %s", stderr)
	}

	// On this machine's real hierarchy (6.18: not applicable) the old
	// assert failed as uid 65534 with mkdir's permission denied.
	t.Run("real hierarchy", func(t *testing.T) {
		testenv.RequireCgroupV1Memory(t)
		stdout, stderr, code := runBin(t, asNobody(exec.Command(bin, "assert", "--kubepods", "nokmem-test-absent")))
		if code != 0 || !strings.Contains(stdout, "not applicable") {
			t.Errorf("assert as uid 65534 on %s: exit %d\nstdout %s\nstderr %s", memcg.DefaultRoot, code, stdout, stderr)
		}
	})
}

// TestRunModernKernelChangesNothing is the issue's "verify run on a kernel
// without 3.10 semantics creates a probe and reports nothing changed": not
// one operation may reach the hierarchy, and the report says "changed:
// nothing".
func TestRunModernKernelChangesNothing(t *testing.T) {
	n := newNode(t, memcgsim.Modern)
	n.kubelet("kubepods", 2)
	tried := changes(n.Sim)
	args := n.runArgs()
	args = args[:len(args)-2] // text output, not -o json
	stdout, stderr, code := n.verify(args...)
	if code != 0 || !strings.Contains(stdout, "changed: nothing") || tried.Load() != 0 {
		t.Errorf("run on a modern kernel: exit %d, %d changes to the hierarchy\nstdout %s\nstderr %s", code, tried.Load(), stdout, stderr)
	}
	var res acceptance.Result
	b, err := os.ReadFile(n.path("report.json"))
	if err != nil || json.Unmarshal(b, &res) != nil || len(res.Changed) != 0 {
		t.Errorf("report changed %v, %v", res.Changed, err)
	}
}

// TestRunSaysWhatItChanged: a repair lists the install, the kubelet stop
// and start, the migration, the cleanup and the assert probe, in order.
func TestRunSaysWhatItChanged(t *testing.T) {
	n := newMigratableNode(t, 4, 1)
	proc, kubelet := n.path("proc"), n.path("bin/kubelet")
	n.write("proc/4242/comm", "kubelet\n", 0o644)
	if err := os.Symlink(kubelet, n.path("proc/4242/exe")); err != nil {
		t.Fatal(err)
	}
	args := n.runArgs("--proc", proc, "--kubelet-timeout", "20s",
		"--stop-cmd", fmt.Sprintf("rm -rf %s/4242", proc),
		"--start-cmd", fmt.Sprintf("mkdir -p %[1]s/4242 && echo kubelet > %[1]s/4242/comm && ln -s %[2]s %[1]s/4242/exe", proc, kubelet))
	out, stderr, code := n.verify(args...)
	var res acceptance.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("run: exit %d, %v\n%s\n%s", code, err, out, stderr)
	}
	want := []string{"installed ", "issued the kubelet stop command", "migrated " + n.Mount.Memory + "/kubepods", "started the kubelet", "cleanup: ", "assert probe: created and removed " + n.Mount.Memory + "/kubepods/nokmem-assert-"}
	i := 0
	for _, c := range res.Changed {
		if i < len(want) && strings.HasPrefix(c, want[i]) {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("changed %q, want entries starting with %q in order", res.Changed, want)
	}
}

// hangingBinary is the stand-in: it prints a version and keeps its
// stdout open for two minutes.
const hangingBinary = "#!/bin/sh\necho 'Kubernetes v1.12.4'\nsleep 120\n"

// TestDetectHangingVersion is the hang: with kubelet, runc and
// docker-runc stand-ins that keep stdout open (`sleep 120`), detect ran
// past 60 s. Every --version now has a hard deadline (its process group is
// killed, exec.Cmd.WaitDelay), the three run at once, so detect's total
// time is bounded by one --version-timeout (default 10 s) plus
// nodeexec.WaitDelay; the test logs the time measured at the defaults.
func TestDetectHangingVersion(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	n.Kubepods(memcgtest.QoS, 2, 1)
	for _, b := range binary.Names {
		n.write("bin/"+b, hangingBinary, 0o755)
	}
	start := time.Now()
	stdout, stderr, code := n.verify(append([]string{"detect"}, n.detectArgs()...)...)
	took := time.Since(start)
	t.Logf("detect with 3 hanging binaries (default --version-timeout %s) took %s", binary.DefaultVersionTimeout, took.Round(time.Millisecond))
	if took > 60*time.Second {
		t.Fatalf("detect hung for %s", took)
	}
	timedOut := 0
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "PROBLEM:") && strings.Contains(l, "--version: timed out after 10s") {
			timedOut++
		}
	}
	if code != 1 || timedOut != 3 {
		t.Errorf("exit %d, want 1 with 3 binaries that timed out\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}

// TestUsageErrors is the "scripting": a usage error exited 1, like
// "problem found"; detect --npd --bogus printed no line; -o json errors left
// stdout empty; install --rollback --bundle … rolled back with exit 0. Each
// now exits 64 (the usage row of the exit-code table), changes nothing,
// with --npd prints its one line and with -o json one JSON object.
func TestUsageErrors(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 1)
	tests := []struct {
		name string
		args []string
		want string // in the message
		npd  bool
		json bool
	}{
		{"unknown flag", []string{"--bogus"}, "unknown flag: --bogus", false, false},
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`, false, false},
		{"detect unknown flag", []string{"detect", "--bogus"}, "unknown flag: --bogus", false, false},
		{"detect --npd --bogus", []string{"detect", "--npd", "--bogus"}, "unknown flag: --bogus", true, false},
		{"detect --bogus --npd", []string{"detect", "--bogus", "--npd"}, "unknown flag: --bogus", true, false},
		{"detect stray argument", []string{"detect", "extra"}, `unknown command "extra"`, false, false},
		{"detect -o json --bogus", []string{"detect", "-o", "json", "--bogus"}, "unknown flag: --bogus", false, true},
		{"bad -o", []string{"detect", "-o", "yaml"}, `-o "yaml"`, false, false},
		{"detect --npd -o json", []string{"detect", "--npd", "-o", "json"}, "--npd cannot be combined with --output=json", true, false},
		{"install --rollback --bundle", []string{"install", "--rollback", "--bundle", "/nonexistent", "--insecure-skip-signature"}, "--rollback cannot be combined with --bundle, --insecure-skip-signature", false, false},
		{"run --pubkey without --bundle", []string{"run", "--pubkey", "/x"}, "--pubkey needs --bundle", false, false},
		{"migrate --rollback --dry-run", []string{"migrate", "--rollback", "--dry-run"}, "none of the others can be", false, false},
	}
	before := n.state()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tried := changes(n.Sim)
			stdout, stderr, code := n.verify(tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d (usage)\nstdout %s\nstderr %s", code, exitUsage, stdout, stderr)
			}
			if !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "--help)") {
				t.Errorf("stderr %q lacks %q and the help hint", stderr, tt.want)
			}
			switch {
			case tt.npd:
				if !strings.HasPrefix(stdout, "unknown: usage: ") || strings.Count(stdout, "\n") != 1 {
					t.Errorf("npd stdout %q, want one unknown: line", stdout)
				}
			case tt.json:
				var e errorReport
				dec := json.NewDecoder(strings.NewReader(stdout))
				if err := dec.Decode(&e); err != nil || e.ExitCode != exitUsage || e.ExitName != "usage" || !strings.Contains(e.Error, tt.want) || dec.More() {
					t.Errorf("json stdout %q: %+v, %v; want one error object", stdout, e, err)
				}
			case stdout != "":
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if tried.Load() != 0 {
				t.Errorf("%d changes to the hierarchy", tried.Load())
			}
		})
	}
	if n.state() != before {
		t.Errorf("the node changed")
	}
	if _, err := os.Stat(n.path("state")); err == nil {
		t.Errorf("state dir created")
	}
	// cobra's own commands are no usage errors.
	for _, args := range [][]string{{"help"}, {"help", "detect"}, {"completion", "bash"}, {"--help"}, {"detect", "--help"}, {"--version"}} {
		if stdout, stderr, code := runBin(t, exec.Command(verifyBin, args...)); code != 0 || stdout == "" {
			t.Errorf("verify %v: exit %d\n%s", args, code, stderr)
		}
	}
}

// TestJSONErrors: with -o json every failure writes exactly one JSON
// object on stdout (the command's own report, or an error object).
func TestJSONErrors(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 1)
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"detect --known-sums missing", append(append([]string{"detect", "-o", "json"}, n.detectArgs()...), "--known-sums", n.path("missing")), exitUnknown},
		{"detect, problem found", append([]string{"detect", "-o", "json"}, n.detectArgs()...), exitProblem},
		{"assert without kubepods", []string{"assert", "-o", "json", "--os-release", n.path("osrelease"), "--kubepods", "absent"}, exitProblem},
		{"wrong root", []string{"--root", t.TempDir(), "detect", "-o", "json"}, exitUnknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := n.verify(tt.args...)
			dec := json.NewDecoder(strings.NewReader(stdout))
			var v map[string]any
			if err := dec.Decode(&v); err != nil || dec.More() || code != tt.code {
				t.Errorf("exit %d (want %d), stdout %q: %v; want one JSON object\nstderr %s", code, tt.code, stdout, err, stderr)
			}
			if e, ok := v["error"]; ok && (v["exit_code"] != float64(code) || e == "") {
				t.Errorf("error object %v for exit %d", v, code)
			}
		})
	}
}

// TestDetectOutputOnStdout is the issue's `verify detect | grep …` finding
// nothing: the human report is on stdout, diagnostics on stderr.
func TestDetectOutputOnStdout(t *testing.T) {
	testenv.RequireCommand(t, "grep")
	n := newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 1)
	cmd := exec.Command("sh", "-c", `"$@" | grep '^verdict:'`, "sh", verifyBin, "--root", n.Mount.Memory, "--state-dir", n.path("state"), "detect")
	cmd.Args = append(cmd.Args, n.detectArgs()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.HasPrefix(stdout.String(), "verdict:           problem found (exit 1)") {
		t.Errorf("verify detect | grep '^verdict:': %v\nstdout %q\nstderr %q", err, stdout.String(), stderr.String())
	}
	if strings.Contains(stderr.String(), "verdict:") {
		t.Errorf("the report went to stderr too: %s", stderr.String())
	}
}

// TestExitCodeTable: one table, every code once, usage apart from "problem
// found", every run step in it, and `verify exit-codes` prints it.
func TestExitCodeTable(t *testing.T) {
	seen := map[int]string{}
	for _, c := range exitCodeTable() {
		if prev, dup := seen[c.Code]; dup {
			t.Errorf("exit %d is both %s and %s", c.Code, prev, c.Name)
		}
		seen[c.Code] = c.Name
	}
	if seen[exitUsage] != "usage" || exitUsage == exitProblem || exitUsage == exitUnknown {
		t.Errorf("usage exit %d: %q", exitUsage, seen[exitUsage])
	}
	for step, code := range acceptance.ExitCodes {
		if seen[code] != "run-"+step {
			t.Errorf("run step %s (exit %d) is %q in the table", step, code, seen[code])
		}
	}
	var want bytes.Buffer
	if err := writeExitCodeTable(&want); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runBin(t, exec.Command(verifyBin, "exit-codes"))
	if code != 0 || stdout != want.String() || !strings.Contains(stdout, "| 64 | usage |") {
		t.Errorf("verify exit-codes: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// systemdNode is a 3.10 node whose kubelet uses the systemd cgroup driver:
// a kubepods.slice tree built as systemd and libcontainer's systemd manager
// build it (no kmem activation), a task in every container scope, and the
// stock kubelet v1.12.4 and runc rc5 of newNode.
func systemdNode(t *testing.T) (*node, []string) {
	n := newNode(t, memcgsim.RHEL78)
	ctrs := n.Kubepods(memcgtest.Systemd, 6, 2)
	for _, c := range ctrs {
		if _, err := n.Sim.AddTask(c, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	n.write("proc/1/comm", "systemd\n", 0o644)
	// A maintained runc: the stock rc5 stand-in's known vulnerabilities
	// would make the node a problem whatever its cgroups show.
	n.write("bin/runc", "#!/bin/sh\necho 'runc version 1.4.4'\n", 0o755)
	return n, ctrs
}

// TestSystemdDriverByEvidence is the issue's "wrong advice for
// systemd-driver nodes": run stopped at detect with "boot with
// cgroup.memory=nokmem instead" (exit 10) whatever the cgroups showed. A
// systemd-driver node with no kmem-active cgroup is healthy (detect exit 0,
// run exit 0, nothing changed, said why); one where a pod requested a
// kernel-memory limit is a problem naming the cgroup, its cause and the
// options.
func TestSystemdDriverByEvidence(t *testing.T) {
	t.Run("no kmem-active cgroup", func(t *testing.T) {
		n, _ := systemdNode(t)
		before := n.state()
		tried := changes(n.Sim)
		stdout, stderr, code := n.verify(append([]string{"detect"}, n.detectArgs()...)...)
		if code != 0 || !strings.Contains(stdout, "verdict:           healthy") || !strings.Contains(stdout, "activate kmem only when a kernel-memory limit is requested") {
			t.Errorf("detect: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
		}
		stdout, _, code = n.verify(append([]string{"detect", "--npd"}, n.detectArgs()...)...)
		if code != 0 || !strings.HasPrefix(stdout, "OK: ") || !strings.Contains(stdout, "systemd driver") {
			t.Errorf("detect --npd: exit %d %q", code, stdout)
		}
		out, stderr, code := n.verify(n.runArgs("--proc", n.path("proc"))...)
		var res acceptance.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Outcome != acceptance.OutcomeHealthy || len(res.Changed) != 0 {
			t.Fatalf("run: exit %d, %v, outcome %q, changed %v\n%s", code, err, res.Outcome, res.Changed, stderr)
		}
		if res.Steps[0].Name != acceptance.StepDetect || !strings.Contains(res.Steps[0].Details, "nothing to migrate") {
			t.Errorf("detect step %+v does not say why", res.Steps[0])
		}
		if n.state() != before || tried.Load() != 0 || n.serviceLog() != "" {
			t.Errorf("run changed the node (%d operations, service log %q)", tried.Load(), n.serviceLog())
		}
	})
	t.Run("a pod requested a kernel-memory limit", func(t *testing.T) {
		n, ctrs := systemdNode(t)
		pod := ctrs[0][:strings.LastIndex(ctrs[0], "/")]
		// A pod cgroup created with a kernel-memory limit, and its
		// container scope below it (which inherits the accounting).
		active := pod + "/docker-kmem.scope"
		if err := n.H.Mkdir(active); err != nil {
			t.Fatal(err)
		}
		if err := n.H.Write(active, memcg.KmemLimit, "104857600"); err != nil {
			t.Fatal(err)
		}
		if err := n.H.Mkdir(active + "/sub"); err != nil {
			t.Fatal(err)
		}
		before := n.state()
		stdout, stderr, code := n.verify(append([]string{"detect"}, n.detectArgs()...)...)
		for _, want := range []string{
			"2 kmem-active cgroups under kubepods.slice (systemd cgroup driver)",
			active + " (a kernel-memory limit of 104857600 bytes was requested)",
			active + "/sub (inherited from " + active + ")",
			"cgroup.memory=nokmem", "drain the pods of these cgroups and recreate them",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("detect output lacks %q", want)
			}
		}
		if code != 1 || strings.Contains(stdout, "PROBLEM:           kubelet") || strings.Contains(stdout, "PROBLEM:           runc") {
			t.Errorf("detect: exit %d, want 1, and no PROBLEM for the stock binaries\nstdout %s\nstderr %s", code, stdout, stderr)
		}
		out, stderr, code := n.verify(n.runArgs("--proc", n.path("proc"))...)
		var res acceptance.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != acceptance.ExitCodes[acceptance.StepDetect] || len(res.Changed) != 0 {
			t.Fatalf("run: exit %d, %v, changed %v\n%s", code, err, res.Changed, stderr)
		}
		if msg := res.Steps[0].Message; !strings.Contains(msg, active) || !strings.Contains(msg, "cgroup.memory=nokmem") || strings.Contains(msg, "this tool migrates only") {
			t.Errorf("run's detect message: %s", msg)
		}
		if n.state() != before || n.serviceLog() != "" {
			t.Errorf("run changed the node")
		}
	})
}
