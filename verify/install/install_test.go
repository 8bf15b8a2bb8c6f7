package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/testenv"
)

const bundleName = "nokmem-v1.12.4-v1.0.0-rc5+nokmem.test"

func script(version string) []byte {
	return []byte("#!/bin/sh\necho '" + version + "'\n")
}

// node is a bin directory with stock kubelet, runc and docker-runc, and a state dir.
type node struct {
	bin, state string
}

// testUID owns the node's binaries, so that keeping the old owner is visible.
const testUID = 4321

func newNode(t *testing.T) node {
	t.Helper()
	testenv.RequireCommand(t, "sh")
	testenv.RequireRoot(t)
	n := node{bin: t.TempDir(), state: filepath.Join(t.TempDir(), "state")}
	for name, v := range map[string]string{"kubelet": "Kubernetes v1.12.4", "runc": "runc version 1.0.0-rc5", "docker-runc": "runc version 1.0.0-rc5"} {
		n.put(t, name, script(v), 0o751)
	}
	return n
}

func (n node) put(t *testing.T, name string, data []byte, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(n.bin, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, testUID, testUID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// open checks the fixture bundle and returns install options for the node.
func (n node) open(t *testing.T, f *bundletest.Fixture) Options {
	t.Helper()
	b, err := Open(f.Dir, f.Pub, false, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := b.Options()
	if o.Targets, err = b.Targets(nil, []string{n.bin}, nil); err != nil {
		t.Fatal(err)
	}
	o.StateDir = n.state
	return o
}

// snapshot returns every file under the node's dirs with mode, owner and content.
func (n node) snapshot(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range append([]string{n.bin, n.state}, dirs...) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return nil
			}
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			v := fi.Mode().String()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				v += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
			}
			switch {
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				v += " " + string(b)
			case fi.Mode()&fs.ModeSymlink != 0:
				l, err := os.Readlink(p)
				if err != nil {
					return err
				}
				v += " -> " + l
			}
			out[p] = v
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s: %s changed: %q, want %q", what, p, after[p], v)
		}
	}
	for p, v := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared: %q", what, p, v)
		}
	}
}

func meta(t *testing.T, p string) (fs.FileMode, uint32, uint32) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode(), st.Uid, st.Gid
}

// TestInstallRollback installs a signed bundle over stock binaries (one of
// them setuid), checks what the record says and how the files look, and
// rolls back byte for byte with the old metadata.
func TestInstallRollback(t *testing.T) {
	n := newNode(t)
	n.put(t, "runc", script("runc version 1.0.0-rc5"), 0o4777|fs.ModeSetuid)
	must(t, os.Chmod(filepath.Join(n.bin, "runc"), 0o777|fs.ModeSetuid))
	before := n.snapshot(t)
	f := bundletest.Make(t, bundleName, "", "")
	rec, err := Install(n.open(t, f))
	if err != nil {
		t.Fatal(err)
	}
	keyID := f.Manifest.SigningKey.ID
	if !rec.Signed || rec.SignatureSkipped || rec.KeyID != keyID || rec.State != StateInstalled || rec.Bundle.Name != bundleName {
		t.Errorf("record: signed %v skipped %v key %q state %q bundle %q; want signed with %s", rec.Signed, rec.SignatureSkipped, rec.KeyID, rec.State, rec.Bundle.Name, keyID)
	}
	if len(rec.Entries) != 3 {
		t.Fatalf("entries %+v, want kubelet, runc, docker-runc", rec.Entries)
	}
	for _, name := range []string{"kubelet", "runc", "docker-runc"} {
		p := filepath.Join(n.bin, name)
		mode, uid, gid := meta(t, p)
		if mode != 0o755 || uid != 0 || gid != 0 {
			t.Errorf("%s installed as %s %d:%d, want 0755 root:root", name, mode, uid, gid)
		}
		want := bundletest.Kubelet
		if name != "kubelet" {
			want = bundletest.Runc
		}
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf("%s holds %q", name, got)
		}
	}
	runc := rec.Entry(filepath.Join(n.bin, "runc"))
	if runc == nil || runc.Original.Mode != 0o777|fs.ModeSetuid || runc.Original.UID != testUID || len(runc.Notes) == 0 || !strings.Contains(strings.Join(runc.Notes, ";"), "setuid") {
		t.Errorf("runc entry %+v: want the setuid 0777 %d-owned original reported", runc, testUID)
	}
	// The record on disk says the same.
	var disk map[string]any
	b, _ := os.ReadFile(filepath.Join(n.state, RecordFile))
	must(t, json.Unmarshal(b, &disk))
	if disk["signed"] != true || disk["signature_skipped"] != false {
		t.Errorf("install.json signed %v signature_skipped %v", disk["signed"], disk["signature_skipped"])
	}

	res, err := Rollback(n.state, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nothing || len(res.Actions) != 3 {
		t.Errorf("rollback %+v", res)
	}
	after := n.snapshot(t)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("after rollback %s is %q, want %q", p, after[p], v)
		}
	}
	// Nothing left to roll back: a report, not an error.
	res, err = Rollback(n.state, false)
	if err != nil || !res.Nothing || !strings.Contains(res.Message, "nothing to roll back") {
		t.Errorf("second rollback: %+v, %v", res, err)
	}
}

func TestInstallSkippedSignature(t *testing.T) {
	n := newNode(t)
	f := bundletest.Make(t, bundleName, "", "")
	b, err := Open(f.Dir, "", true, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !b.SignatureSkipped || b.Signed || len(b.Warnings) == 0 || !strings.Contains(b.Warnings[0], "NOT checked") {
		t.Errorf("opened %+v", b)
	}
	o := b.Options()
	o.StateDir = n.state
	if o.Targets, err = b.Targets(nil, []string{n.bin}, nil); err != nil {
		t.Fatal(err)
	}
	rec, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(n.state, RecordFile))
	if rec.Signed || !rec.SignatureSkipped || !strings.Contains(string(data), `"signature_skipped": true`) {
		t.Errorf("record signed %v skipped %v:\n%s", rec.Signed, rec.SignatureSkipped, data)
	}
	// Skipping the signature still refuses a tampered bundle.
	must(t, os.WriteFile(filepath.Join(f.Dir, "runc"), []byte("evil"), 0o755))
	if _, err := Open(f.Dir, "", true, t.TempDir()); !errors.Is(err, sums.ErrMismatch) {
		t.Errorf("unsigned open of a tampered bundle: %v", err)
	}
}

// TestOpenRefuses: each bad bundle or key is refused with the cause named,
// before anything on the node changes.
func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, f *bundletest.Fixture) (source, pub string)
		want   string
	}{
		{"missing key", func(t *testing.T, f *bundletest.Fixture) (string, string) {
			return f.Dir, filepath.Join(t.TempDir(), "release.pub")
		}, "no release public key at"},
		{"wrong key", func(t *testing.T, f *bundletest.Fixture) (string, string) {
			return f.Dir, bundletest.Make(t, bundleName, "", "").Pub
		}, "signature does not verify"},
		{"tampered binary, re-summed", func(t *testing.T, f *bundletest.Fixture) (string, string) {
			p := filepath.Join(f.Dir, "kubelet")
			must(t, os.WriteFile(p, []byte(bundletest.Kubelet+"# evil\n"), 0o755))
			resum(t, f.Dir)
			return f.Dir, f.Pub
		}, "signature does not verify"},
		{"extra file", func(t *testing.T, f *bundletest.Fixture) (string, string) {
			must(t, os.WriteFile(filepath.Join(f.Dir, "docker-runc"), []byte("x"), 0o755))
			return f.Dir, f.Pub
		}, "docker-runc: file not covered"},
		{"missing signature", func(t *testing.T, f *bundletest.Fixture) (string, string) {
			must(t, os.Remove(filepath.Join(f.Dir, "SHA256SUMS.minisig")))
			return f.Dir, f.Pub
		}, "SHA256SUMS.minisig: no such file"},
		{"truncated tarball", func(t *testing.T, f *bundletest.Fixture) (string, string) {
			tgz := filepath.Join(t.TempDir(), bundleName+".tar.gz")
			must(t, bundle.Pack(f.Dir, tgz, unixEpoch))
			data, _ := os.ReadFile(tgz)
			must(t, os.WriteFile(tgz, data[:len(data)-20], 0o644))
			return tgz, f.Pub
		}, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			f := bundletest.Make(t, bundleName, "", "")
			src, pub := tt.mutate(t, f)
			before := n.snapshot(t)
			tmp := t.TempDir()
			_, err := Open(src, pub, false, tmp)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open: %v, want %q", err, tt.want)
			}
			sameSnapshot(t, tt.name, before, n.snapshot(t))
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("unpacked files left: %v", left)
			}
		})
	}
}

var unixEpoch = bundleEpoch()

func resum(t *testing.T, dir string) {
	t.Helper()
	listed, err := sums.Parse(filepath.Join(dir, "SHA256SUMS"))
	must(t, err)
	var names []string
	for n := range listed {
		names = append(names, n)
	}
	_, err = sums.Write(dir, names, nil)
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestInstallRefuses: targets install must not touch, each refused before
// anything is written.
func TestInstallRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, n node, o *Options)
		want  string
	}{
		{"symlink target", func(t *testing.T, n node, o *Options) {
			p := filepath.Join(n.bin, "runc")
			must(t, os.Rename(p, p+".real"))
			must(t, os.Symlink("runc.real", p))
		}, "is a symlink"},
		{"unknown kubelet", func(t *testing.T, n node, o *Options) {
			n.put(t, "kubelet", script("my own kubelet"), 0o755)
		}, "unknown kubelet"},
		{"kubelet of another minor release", func(t *testing.T, n node, o *Options) {
			n.put(t, "kubelet", script("Kubernetes v1.14.10"), 0o755)
		}, "would change the node's Kubernetes minor version"},
		{"runc newer than the bundle's", func(t *testing.T, n node, o *Options) {
			n.put(t, "runc", script("runc version 1.0.0-rc10\ncommit: dc9208a3303feef5b3839f4323d9beb36df0a9dd"), 0o755)
		}, "newer than the bundle's"},
		{"not root", func(t *testing.T, n node, o *Options) {
			geteuid = func() int { return 65534 }
			t.Cleanup(func() { geteuid = os.Geteuid })
		}, "must run as root"},
		{"missing binary without --create", func(t *testing.T, n node, o *Options) {
			o.Targets = append(o.Targets, Target{Name: "kubelet", Path: filepath.Join(n.bin, "sub-kubelet")})
		}, "refusing to create it"},
		{"read-only target dir", func(t *testing.T, n node, o *Options) {
			ro := t.TempDir()
			must(t, unix.Mount("tmpfs", ro, "tmpfs", unix.MS_RDONLY, "size=1m"))
			t.Cleanup(func() { unix.Unmount(ro, 0) })
			o.Targets = append(o.Targets, Target{Name: "kubelet", Path: filepath.Join(ro, "kubelet"), Create: true})
		}, "cannot write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			f := bundletest.Make(t, bundleName, "", "")
			o := n.open(t, f)
			tt.setup(t, n, &o)
			before := n.snapshot(t)
			if _, err := Install(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Install: %v, want %q", err, tt.want)
			}
			sameSnapshot(t, tt.name, before, n.snapshot(t))
		})
	}
}

// TestInstallFailureAtEachStep fails every step of the transaction in turn,
// for a first install and for an upgrade: the node and the record must be
// exactly as before, and a retry must succeed.
func TestInstallFailureAtEachStep(t *testing.T) {
	for _, upgrade := range []bool{false, true} {
		for _, step := range []string{"backup kubelet", "backup runc", "backup docker-runc", "record", "swap kubelet", "swap runc", "swap docker-runc", "commit", "copy docker-runc", "enospc runc"} {
			t.Run(fmt.Sprintf("upgrade=%v/%s", upgrade, step), func(t *testing.T) {
				n := newNode(t)
				if upgrade {
					old := bundletest.Make(t, bundleName, "#!/bin/sh\necho 'Kubernetes v1.12.4+nokmem.old'\n", "#!/bin/sh\necho 'runc version 1.0.0-rc5+nokmem.old'\n")
					if _, err := Install(n.open(t, old)); err != nil {
						t.Fatal(err)
					}
				}
				f := bundletest.Make(t, bundleName, "", "")
				o := n.open(t, f)
				before := n.snapshot(t)
				boom := errors.New("injected failure at " + step)
				kind, name, _ := strings.Cut(step, " ")
				fired := false
				switch kind {
				case "copy", "enospc":
					faultAfterCopy = func(dst string) error {
						if dst == filepath.Join(n.bin, name) {
							fired = true
							if kind == "enospc" {
								return syscall.ENOSPC
							}
							return boom
						}
						return nil
					}
				default:
					faultStep = func(s string) error {
						if s == step || (name != "" && s == kind+" "+filepath.Join(n.bin, name)) {
							fired = true
							return boom
						}
						return nil
					}
				}
				t.Cleanup(func() { faultStep, faultAfterCopy = nil, nil })
				_, err := Install(o)
				if !fired {
					t.Fatalf("the fault at %q never fired (err %v)", step, err)
				}
				if err == nil || (!errors.Is(err, boom) && !errors.Is(err, syscall.ENOSPC)) {
					t.Fatalf("Install: %v, want the injected failure", err)
				}
				sameSnapshot(t, step, before, n.snapshot(t))
				faultStep, faultAfterCopy = nil, nil
				if _, err := Install(o); err != nil {
					t.Fatalf("retry: %v", err)
				}
			})
		}
	}
}

// TestKillBetweenSwaps kills a real install process (SIGKILL) after it
// swapped the kubelet and before it swapped runc; a rerun then finishes the
// install, and a rollback restores the originals.
func TestKillBetweenSwaps(t *testing.T) {
	if os.Getenv("NOKMEM_INSTALL_CHILD") != "" {
		return // only the parent runs this test body
	}
	for _, then := range []string{"rerun", "rollback"} {
		t.Run(then, func(t *testing.T) {
			n := newNode(t)
			before := n.snapshot(t)
			f := bundletest.Make(t, bundleName, "", "")
			cmd := exec.Command(os.Args[0], "-test.run=^TestInstallChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "NOKMEM_INSTALL_CHILD=1", "NOKMEM_CHILD_BIN="+n.bin, "NOKMEM_CHILD_STATE="+n.state,
				"NOKMEM_CHILD_BUNDLE="+f.Dir, "NOKMEM_CHILD_PUB="+f.Pub)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v, want killed by SIGKILL\n%s", err, out)
			}
			rec, err := ReadRecord(n.state)
			if err != nil || rec == nil || rec.State != StateInstalling {
				t.Fatalf("record after the kill: %+v, %v", rec, err)
			}
			if k, _ := os.ReadFile(filepath.Join(n.bin, "kubelet")); string(k) != bundletest.Kubelet {
				t.Fatalf("kubelet not swapped before the kill: %q", k)
			}
			if r, _ := os.ReadFile(filepath.Join(n.bin, "runc")); string(r) == bundletest.Runc {
				t.Fatal("runc swapped before the kill")
			}
			switch then {
			case "rerun":
				rec, err := Install(n.open(t, f))
				if err != nil || rec.State != StateInstalled {
					t.Fatalf("rerun: %+v, %v", rec, err)
				}
				for name, want := range map[string]string{"kubelet": bundletest.Kubelet, "runc": bundletest.Runc, "docker-runc": bundletest.Runc} {
					if got, _ := os.ReadFile(filepath.Join(n.bin, name)); string(got) != want {
						t.Errorf("%s after rerun: %q", name, got)
					}
				}
				if _, err := Rollback(n.state, false); err != nil {
					t.Fatal(err)
				}
			case "rollback":
				if _, err := Rollback(n.state, false); err != nil {
					t.Fatal(err)
				}
			}
			after := n.snapshot(t)
			for p, v := range before {
				if after[p] != v {
					t.Errorf("%s: %s is %q, want %q", then, p, after[p], v)
				}
			}
		})
	}
}

// TestInstallChild is the process TestKillBetweenSwaps kills.
func TestInstallChild(t *testing.T) {
	bin := os.Getenv("NOKMEM_CHILD_BIN")
	if os.Getenv("NOKMEM_INSTALL_CHILD") == "" {
		return // run by TestKillBetweenSwaps only
	}
	b, err := Open(os.Getenv("NOKMEM_CHILD_BUNDLE"), os.Getenv("NOKMEM_CHILD_PUB"), false, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := b.Options()
	o.StateDir = os.Getenv("NOKMEM_CHILD_STATE")
	if o.Targets, err = b.Targets(nil, []string{bin}, nil); err != nil {
		t.Fatal(err)
	}
	faultStep = func(s string) error {
		if s == "swap "+filepath.Join(bin, "runc") {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}
	_, err = Install(o)
	t.Fatalf("install was not killed: %v", err)
}

// TestUpgradeKeepsOriginals installs two bundles in turn: the second is an
// upgrade, and rollback goes back to the binaries before the first.
func TestUpgradeKeepsOriginals(t *testing.T) {
	n := newNode(t)
	before := n.snapshot(t)
	a := bundletest.Make(t, bundleName, "#!/bin/sh\necho 'Kubernetes v1.12.4+nokmem.a'\n", "")
	b := bundletest.Make(t, bundleName, "", "")
	ra, err := Install(n.open(t, a))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Install(n.open(t, b))
	if err != nil {
		t.Fatal(err)
	}
	k := rb.Entry(filepath.Join(n.bin, "kubelet"))
	if len(rb.History) != 1 || k == nil || k.Backup != ra.Entry(filepath.Join(n.bin, "kubelet")).Backup || len(k.Ours) != 2 || k.NewSHA256 != b.Manifest.Binary("kubelet").SHA256 {
		t.Errorf("upgrade record: history %v kubelet %+v", rb.History, k)
	}
	if _, err := Rollback(n.state, false); err != nil {
		t.Fatal(err)
	}
	after := n.snapshot(t)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s is %q, want %q", p, after[p], v)
		}
	}
}

// TestRollbackForeignChange: a kubelet replaced by someone else after the
// install is not overwritten; rollback names it and both digests, changes
// nothing, and only --force restores the original.
func TestRollbackForeignChange(t *testing.T) {
	n := newNode(t)
	orig, _ := os.ReadFile(filepath.Join(n.bin, "kubelet"))
	f := bundletest.Make(t, bundleName, "", "")
	if _, err := Install(n.open(t, f)); err != nil {
		t.Fatal(err)
	}
	n.put(t, "kubelet", script("Kubernetes v1.13.0"), 0o755)
	foreignSHA, _ := sums.File(sums.SHA256, filepath.Join(n.bin, "kubelet"))
	before := n.snapshot(t)
	_, err := Rollback(n.state, false)
	if !errors.Is(err, ErrForeignChange) || !strings.Contains(err.Error(), filepath.Join(n.bin, "kubelet")) ||
		!strings.Contains(err.Error(), foreignSHA) || !strings.Contains(err.Error(), f.Manifest.Binary("kubelet").SHA256) {
		t.Fatalf("rollback: %v; want a refusal naming the kubelet, its sha256 and the installed one", err)
	}
	sameSnapshot(t, "refused rollback", before, n.snapshot(t))
	// An upgrade over the foreign kubelet is refused the same way.
	if _, err := Install(n.open(t, f)); !errors.Is(err, ErrForeignChange) {
		t.Errorf("install over a foreign change: %v", err)
	}
	if _, err := Rollback(n.state, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(n.bin, "kubelet")); string(got) != string(orig) {
		t.Errorf("forced rollback: kubelet %q", got)
	}
}

// TestCreate: a binary the node lacks is created only when --create names it,
// and rollback removes it again.
func TestCreate(t *testing.T) {
	n := newNode(t)
	must(t, os.Remove(filepath.Join(n.bin, "docker-runc")))
	f := bundletest.Make(t, bundleName, "", "")
	b, err := Open(f.Dir, f.Pub, false, t.TempDir())
	must(t, err)
	ts, err := b.Targets(nil, []string{n.bin}, nil)
	must(t, err)
	for _, tg := range ts {
		if filepath.Base(tg.Path) == "docker-runc" {
			t.Errorf("docker-runc targeted without --create: %+v", ts)
		}
	}
	create := filepath.Join(n.bin, "docker-runc")
	ts, err = b.Targets(nil, []string{n.bin}, []string{create})
	must(t, err)
	o := b.Options()
	o.StateDir, o.Targets = n.state, ts
	if _, err := Install(o); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(create); string(got) != bundletest.Runc {
		t.Fatalf("docker-runc not created: %q", got)
	}
	if _, err := Rollback(n.state, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(create); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("created docker-runc left after rollback: %v", err)
	}
	if _, err := b.Targets(nil, []string{n.bin}, []string{filepath.Join(n.bin, "containerd")}); err == nil {
		t.Error("--create of a binary no bundle file replaces was accepted")
	}
}

// TestNotEnoughSpace puts runc on a 1 MiB tmpfs and gives the bundle a 2 MiB
// runc: the install is refused before anything is written, so the kubelet
// (on another file system, with room) is not replaced either.
func TestNotEnoughSpace(t *testing.T) {
	n := newNode(t)
	small := t.TempDir()
	must(t, unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() {
		if err := unix.Unmount(small, 0); err != nil {
			t.Errorf("unmount %s: %v", small, err)
		}
	})
	must(t, os.Rename(filepath.Join(n.bin, "docker-runc"), filepath.Join(n.bin, "docker-runc.off")))
	must(t, os.Remove(filepath.Join(n.bin, "docker-runc.off")))
	data, _ := os.ReadFile(filepath.Join(n.bin, "runc"))
	must(t, os.WriteFile(filepath.Join(small, "runc"), data, 0o755))
	must(t, os.Remove(filepath.Join(n.bin, "runc")))
	big := bundletest.Runc + "#" + strings.Repeat("x", 2<<20) + "\n"
	f := bundletest.Make(t, bundleName, "", big)
	b, err := Open(f.Dir, f.Pub, false, t.TempDir())
	must(t, err)
	o := b.Options()
	o.StateDir = n.state
	o.Targets, err = b.Targets(map[string]string{"runc": filepath.Join(small, "runc")}, []string{n.bin}, nil)
	must(t, err)
	before := n.snapshot(t, small)
	_, err = Install(o)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), small) {
		t.Fatalf("Install: %v, want ErrNoSpace naming %s", err, small)
	}
	sameSnapshot(t, "no space", before, n.snapshot(t, small))
}

func bundleEpoch() (t time.Time) { return time.Unix(1, 0) }

// TestVersionGuardAllows installs where the guard must not stand in the
// way: Docker CE 18.06's runc (rc5 plus commits, "+dev") and another patch
// release of the same kubelet minor, and with --allow-version-change over a
// binary the guard refuses.
func TestVersionGuardAllows(t *testing.T) {
	for _, tt := range []struct {
		name, binary, version string
		allow                 bool
	}{
		{"docker-runc of Docker CE 18.06", "docker-runc", "runc version 1.0.0-rc5+dev\ncommit: 69663f0bd4b60df09991c08812a60108003fa340", false},
		{"kubelet v1.12.2", "kubelet", "Kubernetes v1.12.2", false},
		// v1.11 (another minor, more known CVEs than v1.12.4: no security rule)
		{"kubelet v1.11.0 with --allow-version-change", "kubelet", "Kubernetes v1.11.0", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			n.put(t, tt.binary, script(tt.version), 0o755)
			o := n.open(t, bundletest.Make(t, bundleName, "", ""))
			o.AllowVersionChange = tt.allow
			if _, err := Install(o); err != nil {
				t.Fatalf("Install: %v", err)
			}
		})
	}
}
