package install

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/testenv"
)

func script(version string) []byte {
	return []byte("#!/bin/sh\necho '" + version + "'\n")
}

// release writes a release directory with kubelet and runc artifacts,
// checksums and, when key is set, a signature made with it.
func makeRelease(t *testing.T, secretKey string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"kubelet": script("Kubernetes v1.12.4+nokmem"),
		"runc":    script("runc version 1.0.0-rc5+nokmem"),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if secretKey == "" {
		if _, err := sums.Write(dir, []string{"kubelet", "runc"}, nil); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	in := &inputs.Inputs{
		Name:      "nokmem",
		Version:   "test",
		Source:    inputs.Source{Module: pins.Module{Path: "example.com/x", Version: "v1.0.0", H1: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, CommitTime: "2018-02-27T01:25:04Z"},
		Toolchain: pins.Module{Path: "golang.org/toolchain", Version: "v0.0.1-go1.26.11.linux-amd64", H1: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
	}
	if err := release.Write(dir, in, []string{"kubelet", "runc"}, secretKey); err != nil {
		t.Fatal(err)
	}
	return dir
}

func keyPair(t *testing.T) (secret, public string) {
	t.Helper()
	d := t.TempDir()
	secret, public = filepath.Join(d, "key.sec"), filepath.Join(d, "key.pub")
	if err := sign.GenerateKey(secret, public); err != nil {
		t.Fatal(err)
	}
	return secret, public
}

// node is a bin directory with stock kubelet and runc, and a state dir.
type node struct {
	bin, state string
}

func newNode(t *testing.T) node {
	t.Helper()
	testenv.RequireCommand(t, "sh")
	n := node{bin: t.TempDir(), state: filepath.Join(t.TempDir(), "state")}
	for name, v := range map[string]string{"kubelet": "Kubernetes v1.12.4", "runc": "runc version 1.0.0-rc5"} {
		p := filepath.Join(n.bin, name)
		if err := os.WriteFile(p, script(v), 0o751); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			// A distinctive owner, so that keeping it is visible.
			if err := os.Chown(p, testUID, testUID); err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// testUID owns the node's binaries when the tests run as root.
const testUID = 4321

func (n node) targets() []Target {
	return []Target{{Name: "kubelet", Path: filepath.Join(n.bin, "kubelet")}, {Name: "runc", Path: filepath.Join(n.bin, "runc")}}
}

// snapshot returns every file under the node's dirs with mode and content.
func (n node) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range []string{n.bin, n.state} {
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

func TestInstallRollback(t *testing.T) {
	secret, public := keyPair(t)
	for _, signed := range []bool{false, true} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) {
			n := newNode(t)
			key, pub := "", ""
			if signed {
				key, pub = secret, public
			}
			rel := makeRelease(t, key)
			before := n.snapshot(t)
			rec, err := Install(Options{Artifacts: rel, PubKey: pub, StateDir: n.state, Targets: n.targets()})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range rec.Entries {
				got, err := os.ReadFile(e.Path)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := os.ReadFile(filepath.Join(rel, e.Name))
				if !bytes.Equal(got, want) {
					t.Errorf("%s: installed content differs from the artifact", e.Path)
				}
				fi, err := os.Stat(e.Path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o751 {
					t.Errorf("%s: mode %v, want the old 0751", e.Path, fi.Mode())
				}
				if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != testUID || st.Gid != testUID) {
					t.Errorf("%s: owner %d:%d, want the old %d:%d", e.Path, st.Uid, st.Gid, testUID, testUID)
				}
				if e.OldKind != "stock" || !e.Existed || e.Backup == "" {
					t.Errorf("entry %+v", e)
				}
			}
			if _, err := Install(Options{Artifacts: rel, StateDir: n.state, Targets: n.targets()}); !errors.Is(err, ErrPreviousInstall) {
				t.Fatalf("second install: %v, want ErrPreviousInstall", err)
			}
			if _, err := Rollback(n.state); err != nil {
				t.Fatal(err)
			}
			after := n.snapshot(t)
			for p, v := range before {
				if after[p] != v {
					t.Errorf("%s after rollback: %q, want %q", p, after[p], v)
				}
			}
			if _, err := os.Stat(filepath.Join(n.state, RecordFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("record still there after rollback: %v", err)
			}
		})
	}
}

func TestInstallRefuses(t *testing.T) {
	secret, _ := keyPair(t)
	_, otherPub := keyPair(t)
	tests := []struct {
		name    string
		setup   func(t *testing.T, n node, rel string) Options
		wantErr error
		wantMsg string
	}{
		{"tampered artifact", func(t *testing.T, n node, rel string) Options {
			if err := os.WriteFile(filepath.Join(rel, "runc"), script("runc version 1.0.0-rc5 evil"), 0o755); err != nil {
				t.Fatal(err)
			}
			return Options{Artifacts: rel}
		}, sums.ErrMismatch, "runc"},
		{"wrong signature", func(t *testing.T, n node, rel string) Options {
			return Options{Artifacts: rel, PubKey: otherPub}
		}, sign.ErrBadSignature, "SHA256SUMS"},
		{"missing signature", func(t *testing.T, n node, rel string) Options {
			if err := os.Remove(filepath.Join(rel, "SHA256SUMS"+sign.Ext)); err != nil {
				t.Fatal(err)
			}
			return Options{Artifacts: rel, PubKey: otherPub}
		}, fs.ErrNotExist, "minisig"},
		{"missing SHA256SUMS", func(t *testing.T, n node, rel string) Options {
			if err := os.Remove(filepath.Join(rel, "SHA256SUMS")); err != nil {
				t.Fatal(err)
			}
			return Options{Artifacts: rel}
		}, fs.ErrNotExist, "SHA256SUMS"},
		{"symlinked target", func(t *testing.T, n node, rel string) Options {
			real := filepath.Join(n.bin, "runc.real")
			if err := os.Rename(filepath.Join(n.bin, "runc"), real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("runc.real", filepath.Join(n.bin, "runc")); err != nil {
				t.Fatal(err)
			}
			return Options{Artifacts: rel}
		}, nil, "is a symlink"},
		{"directory target", func(t *testing.T, n node, rel string) Options {
			p := filepath.Join(n.bin, "runc")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return Options{Artifacts: rel}
		}, nil, "not a regular file"},
		{"unknown kubelet", func(t *testing.T, n node, rel string) Options {
			if err := os.WriteFile(filepath.Join(n.bin, "kubelet"), script("my own kubelet fork"), 0o755); err != nil {
				t.Fatal(err)
			}
			return Options{Artifacts: rel}
		}, nil, "unknown kubelet"},
		{"artifact not in release", func(t *testing.T, n node, rel string) Options {
			return Options{Artifacts: rel, Targets: []Target{{Name: "docker-runc", Path: filepath.Join(n.bin, "runc")}}}
		}, nil, "docker-runc is not listed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			rel := makeRelease(t, secret)
			o := tt.setup(t, n, rel)
			o.StateDir = n.state
			if o.Targets == nil {
				o.Targets = n.targets()
			}
			before := n.snapshot(t)
			_, err := Install(o)
			if err == nil {
				t.Fatal("install succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantMsg)
			}
			if after := n.snapshot(t); !maps.Equal(before, after) {
				t.Errorf("node changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestInstallSymlinkAllowed(t *testing.T) {
	n := newNode(t)
	rel := makeRelease(t, "")
	real := filepath.Join(n.bin, "runc.real")
	if err := os.Rename(filepath.Join(n.bin, "runc"), real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("runc.real", filepath.Join(n.bin, "runc")); err != nil {
		t.Fatal(err)
	}
	rec, err := Install(Options{Artifacts: rel, StateDir: n.state, Targets: n.targets(), AllowSymlink: true})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(n.bin, "runc")); err != nil || l != "runc.real" {
		t.Fatalf("symlink replaced: %q, %v", l, err)
	}
	got, _ := os.ReadFile(real)
	want, _ := os.ReadFile(filepath.Join(rel, "runc"))
	if !bytes.Equal(got, want) || rec.Entries[1].Installed != real {
		t.Fatalf("link target not installed: %+v", rec.Entries[1])
	}
}

// TestInterruptedInstall interrupts the install of the second binary after
// its bytes are written and before the rename: the first binary must be put
// back, and no temporary or half-written file may remain.
func TestInterruptedInstall(t *testing.T) {
	n := newNode(t)
	rel := makeRelease(t, "")
	before := n.snapshot(t)
	boom := errors.New("injected failure mid-install")
	faultAfterCopy = func(dst string) error {
		if filepath.Base(dst) == "runc" {
			return boom
		}
		return nil
	}
	t.Cleanup(func() { faultAfterCopy = nil })
	_, err := Install(Options{Artifacts: rel, StateDir: n.state, Targets: n.targets()})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	after := n.snapshot(t)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed: %q, want %q", p, after[p], v)
		}
	}
	for p := range after {
		if strings.Contains(filepath.Base(p), ".nokmem-") {
			t.Errorf("temporary file left: %s", p)
		}
		if filepath.Base(p) == RecordFile {
			t.Errorf("record written for a failed install: %s", p)
		}
	}
	// The failed run left only backups; a retry must work.
	faultAfterCopy = nil
	if _, err := Install(Options{Artifacts: rel, StateDir: n.state, Targets: n.targets()}); err != nil {
		t.Fatalf("retry after interrupted install: %v", err)
	}
}
