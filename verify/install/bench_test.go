package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/bundle/bundletest"
)

// BenchmarkInstallRollback installs and rolls back a bundle with a 64 MiB
// kubelet (the size class of a static kubelet) and a small runc: signature
// and bundle check, backups, atomic copies with fsync, record.
func BenchmarkInstallRollback(b *testing.B) {
	const size = 64 << 20
	f := bundletest.Make(b, bundleName, bundletest.Kubelet+"#"+strings.Repeat("x", size)+"\n", "")
	bin, state := b.TempDir(), b.TempDir()
	for name, v := range map[string]string{"kubelet": "Kubernetes v1.12.4", "runc": "runc version 1.0.0-rc5"} {
		if err := os.WriteFile(filepath.Join(bin, name), script(v), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(size)
	for b.Loop() {
		ob, err := Open(f.Dir, f.Pub, false, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		o := ob.Options()
		o.StateDir = state
		if o.Targets, err = ob.Targets(nil, []string{bin}, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := Install(o); err != nil {
			b.Fatal(err)
		}
		if _, err := Rollback(state, false); err != nil {
			b.Fatal(err)
		}
	}
}
