package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/testenv"
)

// The kept dpkg-query answer is used only while dpkg's status file is the
// same file: once dpkg replaced it, SystemPackages asks dpkg-query again.
func TestSystemPackagesCache(t *testing.T) {
	testenv.RequireCommand(t, "dpkg-query")
	status := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(status, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := dpkgStatus
	dpkgStatus = status
	t.Cleanup(func() { dpkgStatus = old })
	ctx := context.Background()
	l := &pins.Lock{Build: pins.Build{CGO: true}}
	g := GoBuilder{CacheDir: t.TempDir()}

	real, err := inputs.CgoToolchain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := g.SystemPackages(ctx, l)
	if err != nil || len(first) != len(real) || first[0] != real[0] {
		t.Fatalf("first answer %v, %v; want dpkg-query's %v", first, err, real)
	}
	// Poison the kept answer: while the status file is unchanged, it is used.
	files, _ := filepath.Glob(filepath.Join(g.CacheDir, "dpkg-*"))
	if len(files) != 1 {
		t.Fatalf("kept answers %v, want one", files)
	}
	if err := os.WriteFile(files[0], []byte(`[{"Name":"gcc","Version":"kept"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := g.SystemPackages(ctx, l); err != nil || len(got) != 1 || got[0].Version != "kept" {
		t.Fatalf("second answer %v, %v; want the kept one", got, err)
	}
	// dpkg replaces its status file: ask again.
	tmp := status + "-new"
	if err := os.WriteFile(tmp, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, status); err != nil {
		t.Fatal(err)
	}
	if got, err := g.SystemPackages(ctx, l); err != nil || len(got) != len(real) || got[0] != real[0] {
		t.Fatalf("after a package change: %v, %v; want dpkg-query's %v", got, err, real)
	}
}
