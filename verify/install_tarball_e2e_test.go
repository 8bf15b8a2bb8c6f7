package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/internal/memcgsim"
)

// TestInstallTarballThisTree runs `verify install --bundle <tarball>` with
// verify built from this tree (TestMain) on a tarball that internal/bundle
// packs in the test, then `install --rollback`. It is the tarball install
// of the code under test; TestRunRepairsSimulatedNode installs the
// prebuilt _output bundle with the verify inside it.
func TestInstallTarballThisTree(t *testing.T) {
	n := newNode(t, memcgsim.RHEL78)
	tgz := filepath.Join(t.TempDir(), filepath.Base(n.bundle.Dir)+bundle.TarExt)
	if err := bundle.Pack(n.bundle.Dir, tgz, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	unpackTo := t.TempDir()
	if out, stderr, code := n.verify("install", "--bundle", tgz, "--pubkey", n.bundle.Pub, "--tmp-dir", unpackTo, "--search-dirs", n.path("bin")); code != 0 {
		t.Fatalf("install --bundle %s: exit %d\nstdout %s\nstderr %s", tgz, code, out, stderr)
	}
	for name, want := range map[string]string{"bin/kubelet": bundletest.Kubelet, "bin/runc": bundletest.Runc} {
		if got, _ := os.ReadFile(n.path(name)); string(got) != want {
			t.Errorf("%s holds %q after the install", name, got)
		}
	}
	if left, _ := os.ReadDir(unpackTo); len(left) != 0 {
		t.Errorf("unpacked bundle left in --tmp-dir: %v", left)
	}
	if out, stderr, code := n.verify("install", "--rollback"); code != 0 {
		t.Fatalf("install --rollback: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	for name, want := range map[string]string{"bin/kubelet": stockKubelet, "bin/runc": stockRunc} {
		if got, _ := os.ReadFile(n.path(name)); string(got) != want {
			t.Errorf("%s holds %q after the rollback", name, got)
		}
	}
}
