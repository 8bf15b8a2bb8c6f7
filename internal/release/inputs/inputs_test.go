package inputs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/pins"
)

func TestDirHash(t *testing.T) {
	tests := []struct {
		h1, want string
		ok       bool
	}{
		// in-toto's digest_set.md example.
		{"h1:Khu2En+0gcYPZ2kuIihfswbzxv/mIHXgzPZ018Oty48=", "2a1bb6127fb481c60f67692e22285fb306f3c6ffe62075e0ccf674d7c3adcb8f", true},
		{"Khu2En+0gcYPZ2kuIihfswbzxv/mIHXgzPZ018Oty48=", "", false},
		{"h1:c2hvcnQ=", "", false},
		{"h1:!!", "", false},
	}
	for _, tt := range tests {
		got, err := DirHash(tt.h1)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("DirHash(%q) = %q, %v; want %q ok=%v", tt.h1, got, err, tt.want, tt.ok)
		}
	}
}

func TestFromLock(t *testing.T) {
	patchDir := t.TempDir()
	for _, n := range []string{"0002-b.patch", "0001-a.patch", "README"} {
		if err := os.WriteFile(filepath.Join(patchDir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := &pins.Lock{
		Project: "runc", Version: "v1.0.0-rc5",
		Source: pins.Source{Module: pins.Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc5", H1: "h1:x"}, Commit: "c", CommitTime: "t", ImportPath: "github.com/opencontainers/runc"},
		Build:  pins.Build{Packages: []pins.BuildPackage{{Package: ".", Output: "runc"}}, CGO: true, Tags: []string{"seccomp"}},
		Vendor: []pins.VendorEntry{{Root: "github.com/pkg/errors", Module: pins.Module{Path: "github.com/pkg/errors", Version: "v0.8.0", H1: "h1:y"}}},
	}
	in, err := FromLock(l, patchDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Patches) != 2 || in.Patches[0].Name != "0001-a.patch" || in.Patches[1].Name != "0002-b.patch" {
		t.Fatalf("patches %+v, want 0001-a then 0002-b", in.Patches)
	}
	// sha256("0001-a.patch")
	if in.Patches[0].SHA256 != "fff4fee00094c979c2c3c43ca8b379ee25a500533c537d9c12f5f981af355281" {
		t.Errorf("sha256 of 0001-a.patch = %s", in.Patches[0].SHA256)
	}
	if len(in.Vendor) != 1 || in.Vendor[0].Module.Version != "v0.8.0" || in.Build.Packages[0] != "." || !in.Build.CGO || in.Build.Tags[0] != "seccomp" {
		t.Fatalf("inputs not filled from the lock: %+v", in)
	}
	none, err := PatchFiles(filepath.Join(patchDir, "missing"))
	if err != nil || len(none) != 0 {
		t.Fatalf("PatchFiles of a missing folder = %v, %v; want none", none, err)
	}
}

func TestDpkgVersions(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a Debian system")
	}
	got, err := DpkgVersions(context.Background(), "dpkg")
	if err != nil || len(got) != 1 || got[0].Name != "dpkg" || got[0].Version == "" {
		t.Fatalf("DpkgVersions(dpkg) = %v, %v", got, err)
	}
	if _, err := DpkgVersions(context.Background(), "dpkg", "nokmem-no-such-package"); err == nil {
		t.Fatal("DpkgVersions accepted a package that is not installed")
	} else if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestFromBuild(t *testing.T) {
	l := &pins.Lock{
		Project: "runc", Version: "v1.0.0-rc5",
		Source: pins.Source{Module: pins.Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc5", H1: "h1:x"}, Commit: "c", CommitTime: "t", ImportPath: "github.com/opencontainers/runc"},
		Build:  pins.Build{Packages: []pins.BuildPackage{{Package: ".", Output: "runc"}}, CGO: true, Static: true, Tags: []string{"seccomp"}},
	}
	s := gobuild.Spec{
		Go: "/somewhere/bin/go", GOPATH: "/build/gopath", ImportPath: l.Source.ImportPath, Packages: l.Build.Packages,
		OutDir: "/build/out", CGO: true, Static: true, Tags: l.Build.Tags, X: []string{"main.version=1.0.0-rc5+nokmem.abc"},
	}
	in, err := FromBuild(l, t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(in.Build.Command, " ")
	for _, want := range []string{"go build", "-trimpath", "-o runc", "-X main.version=1.0.0-rc5+nokmem.abc", "-extldflags -static"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %q lacks %q", cmd, want)
		}
	}
	if strings.Contains(cmd, "/build/") {
		t.Errorf("command %q names the build machine's paths", cmd)
	}
	if !slices.Equal(in.Build.Tags, []string{"seccomp", "netgo", "osusergo"}) {
		t.Errorf("tags %q, want the lock's plus the static ones", in.Build.Tags)
	}
	if !slices.Contains(in.Build.LDFlags, "main.version=1.0.0-rc5+nokmem.abc") {
		t.Errorf("ldflags %q lack the version stamp", in.Build.LDFlags)
	}
	if !slices.Contains(in.Build.Env, "CGO_ENABLED=1") || !slices.Contains(in.Build.Env, "GO111MODULE=off") || len(in.Build.Env) != 5 {
		t.Errorf("env %q, want exactly the GOPATH-mode settings", in.Build.Env)
	}
}

func TestGCCMajor(t *testing.T) {
	tests := []struct{ v, want string }{
		{"4:12.2.0-3", "12"},
		{"4:14.2.0-1", "14"},
		{"12.2.0-14+deb12u1", "12"},
		{"4:", ""},
		{"x.y", ""},
	}
	for _, tt := range tests {
		got, err := gccMajor(tt.v)
		if (err == nil) != (tt.want != "") || got != tt.want {
			t.Errorf("gccMajor(%q) = %q, %v; want %q", tt.v, got, err, tt.want)
		}
	}
}

func TestCgoToolchain(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a Debian system")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler")
	}
	got, err := CgoToolchain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if len(got) != 4 || !strings.HasPrefix(names[3], "gcc-") {
		t.Fatalf("CgoToolchain = %v, want gcc, binutils, libc6-dev and gcc-<major>", names)
	}
}

func TestPackageChanges(t *testing.T) {
	recorded, err := ParsePackages([]byte("gcc 4:12.2.0-3\nlibc6-dev 2.36-9+deb12u14\n\nbinutils 2.40-2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatPackages(recorded); got != "gcc 4:12.2.0-3\nlibc6-dev 2.36-9+deb12u14\nbinutils 2.40-2\n" {
		t.Errorf("FormatPackages round trip: %q", got)
	}
	if c := PackageChanges(recorded, recorded); c != nil {
		t.Errorf("same packages: changes %q", c)
	}
	current := []SystemPackage{{"gcc", "4:12.2.0-3"}, {"libc6-dev", "2.36-9+deb12u15"}, {"libseccomp-dev", "2.5.4-1+deb12u1"}}
	want := []string{"- binutils 2.40-2", "libc6-dev 2.36-9+deb12u14 -> 2.36-9+deb12u15", "+ libseccomp-dev 2.5.4-1+deb12u1"}
	if got := PackageChanges(recorded, current); !slices.Equal(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
	if _, err := ParsePackages([]byte("gcc\n")); err == nil {
		t.Error("a line without a version was accepted")
	}
}
