package install

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/release/sums"
)

// BenchmarkInstallRollback installs and rolls back a 64 MiB binary (the size
// class of a static kubelet): release check, backup, atomic copy with fsync.
func BenchmarkInstallRollback(b *testing.B) {
	const size = 64 << 20
	rel, bin, state := b.TempDir(), b.TempDir(), b.TempDir()
	art := append([]byte("#!/bin/sh\necho 'Kubernetes v1.12.4+nokmem'\nexit 0\n"), bytes.Repeat([]byte{'x'}, size)...)
	if err := os.WriteFile(filepath.Join(rel, "kubelet"), art, 0o755); err != nil {
		b.Fatal(err)
	}
	if _, err := sums.Write(rel, []string{"kubelet"}, nil); err != nil {
		b.Fatal(err)
	}
	target := filepath.Join(bin, "kubelet")
	if err := os.WriteFile(target, []byte("#!/bin/sh\necho 'Kubernetes v1.12.4'\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	o := Options{Artifacts: rel, StateDir: state, Targets: []Target{{Name: "kubelet", Path: target}}}
	b.SetBytes(size)
	for b.Loop() {
		if _, err := Install(o); err != nil {
			b.Fatal(err)
		}
		if _, err := Rollback(state); err != nil {
			b.Fatal(err)
		}
	}
}
