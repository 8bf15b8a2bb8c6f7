package install

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/internal/release/sums"
)

// packed writes the fixture's bundle folder as a tarball packed by
// internal/bundle in the test (the code under test, not a prebuilt
// _output bundle) and returns its path.
func packed(t *testing.T, f *bundletest.Fixture) string {
	t.Helper()
	tgz := filepath.Join(t.TempDir(), bundleName+bundle.TarExt)
	must(t, bundle.Pack(f.Dir, tgz, unixEpoch))
	return tgz
}

// TestInstallFromTarball opens a bundle tarball with this tree's Open (the
// signature checked over the unpacked folder), installs it with this
// tree's Install, and checks the record, the files and that the unpacked
// folder is gone after Close. The one other successful tarball install,
// TestRunRepairsSimulatedNode in verify, runs the verify inside the
// prebuilt bundle, so it cannot see a change to this code.
func TestInstallFromTarball(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(map[bool]string{false: "signed", true: "signature skipped"}[skip], func(t *testing.T) {
			n := newNode(t)
			f := bundletest.Make(t, bundleName, "", "")
			tgz := packed(t, f)
			tmp := t.TempDir()
			pub := f.Pub
			if skip {
				pub = ""
			}
			b, err := Open(tgz, pub, skip, tmp)
			if err != nil {
				t.Fatalf("Open(%s): %v", tgz, err)
			}
			if b.Source != tgz || !strings.HasPrefix(b.Dir, tmp+"/") || filepath.Base(b.Dir) != bundleName {
				t.Errorf("opened source %s dir %s, want the tarball unpacked under %s", b.Source, b.Dir, tmp)
			}
			if b.Signed == skip || b.SignatureSkipped != skip || (!skip && b.KeyID != f.Manifest.SigningKey.ID) {
				t.Errorf("opened signed %v skipped %v key %q, want signed=%v with %s", b.Signed, b.SignatureSkipped, b.KeyID, !skip, f.Manifest.SigningKey.ID)
			}
			if b.Manifest == nil || b.Manifest.Name != bundleName {
				t.Fatalf("manifest %+v", b.Manifest)
			}
			o := b.Options()
			if o.Targets, err = b.Targets(nil, []string{n.bin}, nil); err != nil {
				t.Fatal(err)
			}
			o.StateDir = n.state
			rec, err := Install(o)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Bundle.Source != tgz || rec.Signed == skip || rec.Bundle.Name != bundleName || len(rec.Entries) != 3 {
				t.Errorf("record source %s signed %v bundle %q entries %d", rec.Bundle.Source, rec.Signed, rec.Bundle.Name, len(rec.Entries))
			}
			for name, want := range map[string]string{"kubelet": bundletest.Kubelet, "runc": bundletest.Runc, "docker-runc": bundletest.Runc} {
				if got, _ := os.ReadFile(filepath.Join(n.bin, name)); string(got) != want {
					t.Errorf("%s holds %q after the install", name, got)
				}
			}
			must(t, b.Close())
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("unpacked folder left after Close: %v", left)
			}
		})
	}
}

// TestOpenTarballRefuses: a tarball whose unpacked bundle is bad is refused
// by Open, naming the cause, with nothing left unpacked and the node
// untouched.
func TestOpenTarballRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, f *bundletest.Fixture) (pub string)
		want   error
		msg    string
	}{
		{"wrong key", func(t *testing.T, f *bundletest.Fixture) string {
			return bundletest.Make(t, bundleName, "", "").Pub
		}, nil, "signature does not verify"},
		{"tampered binary, re-summed", func(t *testing.T, f *bundletest.Fixture) string {
			must(t, os.WriteFile(filepath.Join(f.Dir, "kubelet"), []byte(bundletest.Kubelet+"# evil\n"), 0o755))
			resum(t, f.Dir)
			return f.Pub
		}, nil, "signature does not verify"},
		{"extra kubelet.sha512", func(t *testing.T, f *bundletest.Fixture) string {
			d, err := sums.File(sums.Algorithms[1], filepath.Join(f.Dir, "kubelet"))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(f.Dir, "kubelet.sha512"), []byte(d+"  kubelet\n"), 0o644))
			return f.Pub
		}, bundle.ErrExtraFile, "kubelet.sha512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			f := bundletest.Make(t, bundleName, "", "")
			pub := tt.mutate(t, f)
			tgz := packed(t, f)
			before := n.snapshot(t)
			tmp := t.TempDir()
			_, err := Open(tgz, pub, false, tmp)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Open: %v, want %q", err, tt.msg)
			}
			sameSnapshot(t, tt.name, before, n.snapshot(t))
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("unpacked files left: %v", left)
			}
		})
	}
}
