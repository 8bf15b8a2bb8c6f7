package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/nodelock"
)

// installNode is a bin directory with stock kubelet, runc and docker-runc,
// a state, tmp and lock directory, and a signed bundle tarball of nokmem
// stand-ins (internal/bundle/bundletest) for the verify binary to install.
type installNode struct {
	t                          *testing.T
	bin, state, tmp, lock, tgz string
	pub                        string
}

func newInstallNode(t *testing.T) *installNode {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "sh")
	d := t.TempDir()
	n := &installNode{t: t, bin: filepath.Join(d, "bin"), state: filepath.Join(d, "state"), tmp: filepath.Join(d, "tmp"), lock: filepath.Join(d, "lock")}
	for _, dir := range []string{n.bin, n.tmp} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"kubelet": stockKubelet, "runc": stockRunc, "docker-runc": stockRunc} {
		if err := os.WriteFile(filepath.Join(n.bin, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := bundletest.Make(t, "nokmem-v1.12.4-v1.0.0-rc5+nokmem.test", "", "")
	n.pub = f.Pub
	n.tgz = filepath.Join(d, "bundle.tar.gz")
	if err := bundle.Pack(f.Dir, n.tgz, bundletestEpoch); err != nil {
		t.Fatal(err)
	}
	return n
}

// run runs bin (a verify) with the node's state and lock directories and env.
func (n *installNode) run(bin string, env []string, args ...string) (string, string, error) {
	n.t.Helper()
	cmd := exec.Command(bin, append([]string{"--state-dir", n.state, "--lock-dir", n.lock}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (n *installNode) installArgs() []string {
	return []string{"install", "--bundle", n.tgz, "--pubkey", n.pub, "--tmp-dir", n.tmp, "--search-dirs", n.bin}
}

// files lists every file under dir (relative), with mode and content.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return nil
		}
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		v := d.Type().String()
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, _ := d.Info()
			v = fi.Mode().String() + " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	faultVerifyOnce sync.Once
	faultVerify     string
	faultVerifyErr  error
)

// faultVerifyBin is verify built from this tree with -tags
// nokmem_faultpoints: NOKMEM_KILL_AT=<step> makes it SIGKILL itself there.
func faultVerifyBin(t *testing.T) string {
	t.Helper()
	faultVerifyOnce.Do(func() {
		faultVerify = filepath.Join(tmpRoot, "verify-faultpoints")
		out, err := exec.Command("go", "build", "-tags", "nokmem_faultpoints", "-o", faultVerify, ".").CombinedOutput()
		if err != nil {
			faultVerifyErr = fmt.Errorf("go build -tags nokmem_faultpoints: %v\n%s", err, out)
		}
	})
	if faultVerifyErr != nil {
		t.Fatal(faultVerifyErr)
	}
	return faultVerify
}

// TestInstallKilledAtEachStep is issue 21's "debris": a kill -9 during
// install left a partial .kubelet.nokmem-* in the target directory and the
// unpacked bundle in --tmp-dir, and neither a rerun nor a rollback removed
// them. The verify binary is killed with SIGKILL at each step of the
// transaction; a rerun then finishes the install and a rollback restores
// the originals, and no stray file is left in the target, tmp or state
// directory: the state directory holds the rolled-back record and the
// backups it names, nothing else.
func TestInstallKilledAtEachStep(t *testing.T) {
	bin := faultVerifyBin(t)
	steps := []string{"unpacked", "backup kubelet", "copy backup", "backup runc", "record", "swap kubelet", "copy kubelet", "swap runc", "copy docker-runc", "commit",
		// Killed while rolling back (after a complete install): a rerun of
		// the install is then a no-op, the second rollback finishes.
		"rollback: restore runc", "rollback: copy kubelet"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			n := newInstallNode(t)
			before := files(t, n.bin)
			step, rollback := strings.CutPrefix(step, "rollback: ")
			at := step
			if kind, name, ok := strings.Cut(step, " "); ok && name != "backup" {
				at = kind + " " + filepath.Join(n.bin, name)
			}
			args := n.installArgs()
			if rollback {
				if _, stderr, err := n.run(verifyBin, nil, args...); err != nil {
					t.Fatalf("install: %v\n%s", err, stderr)
				}
				args = []string{"rollback"}
			}
			_, stderr, err := n.run(bin, []string{"NOKMEM_KILL_AT=" + at}, args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("install: %v, want killed by SIGKILL at %q\n%s", err, at, stderr)
			}
			debris := 0
			for _, d := range []string{n.bin, n.tmp, n.state, filepath.Join(n.state, install.BackupDir)} {
				ents, _ := os.ReadDir(d)
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
						debris++
					}
				}
			}
			// Every kill of an install comes after the bundle was unpacked
			// into --tmp-dir; a rollback killed mid-copy leaves its temp file.
			if debris == 0 && (!rollback || strings.HasPrefix(step, "copy")) {
				t.Fatalf("killed at %s: no temporary file left to sweep (the test would prove nothing)", step)
			}
			if !rollback {
				if _, stderr, err := n.run(verifyBin, nil, n.installArgs()...); err != nil {
					t.Fatalf("rerun: %v\n%s", err, stderr)
				}
			}
			if _, stderr, err := n.run(verifyBin, nil, "rollback"); err != nil {
				t.Fatalf("rollback: %v\n%s", err, stderr)
			}
			if after := files(t, n.bin); !maps.Equal(before, after) {
				t.Errorf("target dir after rerun and rollback:\n%v\nwant\n%v", after, before)
			}
			if left := files(t, n.tmp); len(left) != 0 {
				t.Errorf("tmp dir holds %v", left)
			}
			state := files(t, n.state)
			var rolled string
			for rel := range state {
				if strings.HasPrefix(rel, install.RolledBackPrefix) {
					rolled = rel
				}
			}
			if rolled == "" {
				t.Fatalf("no rolled-back record in %v", state)
			}
			var rec install.Record
			if err := json.Unmarshal([]byte(strings.SplitN(state[rolled], " ", 2)[1]), &rec); err != nil {
				t.Fatal(err)
			}
			want := []string{rolled, install.BackupDir}
			for _, e := range rec.Entries {
				rel, _ := filepath.Rel(n.state, e.Backup)
				want = append(want, rel)
			}
			var got []string
			for rel := range state {
				got = append(got, rel)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("state dir holds %v, want only %v", got, want)
			}
		})
	}
}

// holdLock takes the node lock in dir from another process (flock(1)) and
// returns when it is held; the process ends with the test.
func holdLock(t *testing.T, dir string) {
	t.Helper()
	testenv.RequireCommand(t, "flock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("flock", "--exclusive", filepath.Join(dir, nodelock.FileName), "sh", "-c", "echo held; exec sleep 120")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("flock: %q, %v", line, err)
	}
}

// TestInstallCommandsTakeTheNodeLock (issue 25, 1): install, install
// --rollback, rollback and gc change binaries and the state directory, so
// each refuses while another process holds the node lock, naming it, and
// changes nothing.
func TestInstallCommandsTakeTheNodeLock(t *testing.T) {
	n := newInstallNode(t)
	stock := files(t, n.bin)
	if _, stderr, err := n.run(verifyBin, nil, n.installArgs()...); err != nil {
		t.Fatalf("install: %v\n%s", err, stderr)
	}
	holdLock(t, n.lock)
	before, beforeState := files(t, n.bin), files(t, n.state)
	for _, args := range [][]string{n.installArgs(), {"install", "--rollback"}, {"rollback"}, {"gc", "--tmp-dir", n.tmp}} {
		_, stderr, err := n.run(verifyBin, nil, args...)
		if err == nil || !strings.Contains(stderr, "holds the lock on "+filepath.Join(n.lock, nodelock.FileName)) {
			t.Errorf("verify %s while the lock is held: %v\n%s", strings.Join(args, " "), err, stderr)
		}
	}
	if !maps.Equal(before, files(t, n.bin)) || !maps.Equal(beforeState, files(t, n.state)) {
		t.Error("a refused command changed the node")
	}
	n.lock = filepath.Join(t.TempDir(), "free")
	if _, stderr, err := n.run(verifyBin, nil, "rollback"); err != nil {
		t.Fatalf("rollback with the lock free: %v\n%s", err, stderr)
	}
	if !maps.Equal(stock, files(t, n.bin)) {
		t.Error("rollback did not restore the stock binaries")
	}
}

// TestDetectInstallingRecord is issue 21's "install record": after a kill
// -9 left install.json at "installing", detect exited 0 (healthy). Now it
// is a problem: exit 1, the NPD line, and a metric.
func TestDetectInstallingRecord(t *testing.T) {
	bin := faultVerifyBin(t)
	n := newNode(t, memcgsim.Modern)
	n.kubelet("kubepods", 0)
	// A runc without known vulnerabilities (rc5's would be a problem on any kernel).
	n.write("bin/runc", "#!/bin/sh\necho 'runc version 1.4.4'\n", 0o755)
	args := append([]string{"detect"}, n.detectArgs()...)
	if _, stderr, code := n.verify(args...); code != 0 {
		t.Fatalf("clean node: exit %d\n%s", code, stderr)
	}
	cmd := exec.Command(bin, "--root", n.Mount.Memory, "--state-dir", n.path("state"), "install", "--bundle", n.bundle.Dir, "--pubkey", n.bundle.Pub, "--search-dirs", n.path("bin"))
	cmd.Env = append(os.Environ(), "NOKMEM_KILL_AT=swap "+filepath.Join(n.path("bin"), "kubelet"))
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("install was not killed\n%s", out)
	}
	out, stderr, code := n.verify(append([]string{"detect", "--npd"}, n.detectArgs()...)...)
	if code != 1 || !strings.Contains(out, "unfinished install") {
		t.Errorf("detect --npd: exit %d %q\n%s", code, out, stderr)
	}
	prom := n.path("detect.prom")
	if _, stderr, code := n.verify(append(args, "--textfile", prom)...); code != 1 {
		t.Errorf("detect: exit %d, want 1\n%s", code, stderr)
	}
	b, err := os.ReadFile(prom)
	if err != nil || !strings.Contains(string(b), "\nnokmem_install_unfinished 1\n") {
		t.Errorf("textfile lacks nokmem_install_unfinished 1 (%v):\n%s", err, b)
	}
}

// bundletestEpoch is the tarballs' file time.
var bundletestEpoch = time.Unix(1, 0)

// TestGarbageRecordAbandon is issue 21's "a garbage install.json shows in
// the NPD line as 'unsigned install' and blocks both install and rollback
// with no way out". Now install and rollback refuse it naming the file and
// --abandon; detect calls it untrusted; install --abandon sets it aside,
// changes nothing else and lists what is installed; install then works.
func TestGarbageRecordAbandon(t *testing.T) {
	n := newInstallNode(t)
	if _, stderr, err := n.run(verifyBin, nil, n.installArgs()...); err != nil {
		t.Fatalf("install: %v\n%s", err, stderr)
	}
	rec := filepath.Join(n.state, install.RecordFile)
	if err := os.WriteFile(rec, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := files(t, n.bin)
	for _, args := range [][]string{n.installArgs(), {"rollback"}} {
		_, stderr, err := n.run(verifyBin, nil, args...)
		if err == nil || !strings.Contains(stderr, "untrusted install record "+rec) || !strings.Contains(stderr, "--abandon") {
			t.Errorf("verify %s: %v\n%s", args[0], err, stderr)
		}
	}
	out, _, _ := n.run(verifyBin, nil, "detect", "--npd", "--search-dirs", n.bin)
	if !strings.Contains(out, "untrusted install record") {
		t.Errorf("detect --npd: %q", out)
	}
	out, stderr, err := n.run(verifyBin, nil, "install", "--abandon", "--search-dirs", n.bin)
	if err != nil || !strings.Contains(out, "set "+rec+" aside") || !strings.Contains(out, "installed now:") ||
		!strings.Contains(out, "kubelet "+filepath.Join(n.bin, "kubelet")) {
		t.Fatalf("install --abandon: %v\n%s%s", err, out, stderr)
	}
	if !maps.Equal(bin, files(t, n.bin)) {
		t.Error("--abandon changed a binary")
	}
	if aside, _ := filepath.Glob(filepath.Join(n.state, install.AbandonedPrefix+"*")); len(aside) != 1 {
		t.Errorf("set aside: %v", aside)
	}
	if _, stderr, err := n.run(verifyBin, nil, n.installArgs()...); err != nil {
		t.Errorf("install after --abandon: %v\n%s", err, stderr)
	}
}
