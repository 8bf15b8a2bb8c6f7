package srctree_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/modfetch/modfetchtest"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
)

const godepsJSON = `{"ImportPath": "example.com/proj", "Deps": [
	{"ImportPath": "example.com/dep", "Rev": "aaa"},
	{"ImportPath": "example.com/dep/sub", "Rev": "aaa"},
	{"ImportPath": "old.host/mirror", "Rev": "bbb"},
	{"ImportPath": "example.com/tool/cmd/x", "Rev": "ccc"}
]}`

var (
	source = modfetchtest.Module{Path: "example.com/proj", Version: "v1.0.0", Files: map[string]string{
		"Godeps/Godeps.json":                godepsJSON,
		"cmd/proj/main.go":                  "package main\n\nimport (\n\t\"example.com/dep\"\n\t\"example.io/alpha\"\n\t\"old.host/mirror\"\n)\n\nfunc main() { println(dep.X + alpha.X + mirror.X) }\n",
		"staging/src/example.io/alpha/a.go": "package alpha\n\nconst X = \"alpha\"\n",
		"staging/src/example.io/beta/b.go":  "package beta\n",
		"staging/src/example.io/README.md":  "not a repo\n",
		"hack/build.sh":                     "#!/bin/sh\n",
		"vendor/OWNERS":                     "kept by module zips\n",
	}}
	dep = modfetchtest.Module{Path: "example.com/dep", Version: "v0.1.0", Files: map[string]string{
		"dep.go": "package dep\n\nconst X = \"dep\"\n", "sub/sub.go": "package sub\n",
	}}
	mirror = modfetchtest.Module{Path: "example.com/mirror", Version: "v0.0.0-20200101000000-bbbbbbbbbbbb", Files: map[string]string{
		"m.go": "package mirror\n\nconst X = \"mirror\"\n",
	}}
)

// fixture publishes the fake modules and returns a lock for them.
func fixture(t *testing.T) (*modfetchtest.Proxy, *pins.Lock) {
	t.Helper()
	p := modfetchtest.New(t)
	l := &pins.Lock{
		Project: "proj", Version: "v1.0.0",
		Source:  pins.Source{Module: p.Add(t, source), Commit: "abc", CommitTime: "2020-01-01T00:00:00Z", ImportPath: "example.com/proj"},
		Staging: &pins.Staging{Dir: "staging/src", Prefix: "example.io"},
		Vendor: []pins.VendorEntry{
			{Root: "old.host/mirror", Module: p.Add(t, mirror), UpstreamRev: "bbb"},
			{Root: "example.com/dep", Module: p.Add(t, dep), UpstreamRev: "aaa"},
		},
		Excluded: []pins.Excluded{{Root: "example.com/tool", Reason: "build tool"}},
	}
	return p, l
}

func TestAssemble(t *testing.T) {
	p, l := fixture(t)
	buildDir := filepath.Join(t.TempDir(), "_build", "proj", "v1.0.0")
	tree, err := srctree.Assemble(context.Background(), &modfetch.Fetcher{Env: p.Env(t)}, l, buildDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := srctree.Paths(l, buildDir); tree != want {
		t.Errorf("tree %+v, want %+v", tree, want)
	}
	if want := filepath.Join(buildDir, "gopath", "src", "example.com", "proj"); tree.Root != want {
		t.Errorf("root %s, want %s", tree.Root, want)
	}
	for _, f := range []string{"cmd/proj/main.go", "vendor/example.com/dep/dep.go", "vendor/example.com/dep/sub/sub.go", "vendor/old.host/mirror/m.go", "hack/build.sh"} {
		fi, err := os.Stat(filepath.Join(tree.Root, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if fi.Mode().Perm()&0o200 == 0 {
			t.Errorf("%s is not writable: %v", f, fi.Mode())
		}
	}
	for repo, want := range map[string]string{"alpha": "../../staging/src/example.io/alpha", "beta": "../../staging/src/example.io/beta"} {
		link := filepath.Join(tree.Root, "vendor", "example.io", repo)
		got, err := os.Readlink(link)
		if err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(tree.Root, "vendor", "example.io", "README.md")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file in the staging dir got a link: %v", err)
	}
	checkNoLeftovers(t, buildDir)

	// The tree builds in GOPATH mode: vendor/, the mirror and the staging links resolve.
	cmd := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "proj"), "./cmd/proj")
	cmd.Dir = tree.Root
	cmd.Env = append(os.Environ(), "GO111MODULE=off", "GOPATH="+tree.GOPATH, "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in the assembled tree: %v\n%s", err, out)
	}
}

func TestAssembleWithoutStaging(t *testing.T) {
	p, l := fixture(t)
	l.Staging = nil
	tree, err := srctree.Assemble(context.Background(), &modfetch.Fetcher{Env: p.Env(t)}, l, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(tree.Root, "vendor", "example.io")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging links made without the staging option: %v", err)
	}
}

// A failed run leaves the earlier tree exactly as it was and no temp dir;
// a good run replaces it.
func TestAssembleReplacesOnlyOnSuccess(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock)
		wantErr []string
	}{
		{"good rerun", func(*testing.T, *modfetchtest.Proxy, *pins.Lock) {}, nil},
		{
			"tampered vendor zip",
			func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) {
				evil := dep
				evil.Files = map[string]string{"dep.go": "package dep\n\nconst X = \"evil\"\n", "sub/sub.go": "package sub\n"}
				p.WriteZip(t, evil)
			},
			[]string{"example.com/dep@v0.1.0", "h1 hash mismatch"},
		},
		{
			"staging repo clashes with a vendor root",
			func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) {
				l.Vendor = append(l.Vendor, pins.VendorEntry{Root: "example.io/alpha", Module: l.Vendor[1].Module, UpstreamRev: "aaa"})
			},
			[]string{"staging example.io/alpha", "file exists"},
		},
		{
			"Godeps revision differs from the lock",
			func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) { l.Vendor[1].UpstreamRev = "zzz" },
			[]string{"Godeps/Godeps.json of example.com/proj@v1.0.0", "example.com/dep: upstream has revision aaa, the lock's root example.com/dep says zzz"},
		},
		{
			"Godeps import path not vendored",
			func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) { l.Excluded = nil },
			[]string{"example.com/tool/cmd/x: no vendor root in the lock"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, l := fixture(t)
			f := &modfetch.Fetcher{Env: p.Env(t)}
			buildDir := t.TempDir()
			tree, err := srctree.Assemble(context.Background(), f, l, buildDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(tree.Root, "marker-from-first-run")
			if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			tc.break_(t, p, l)
			// A fresh module cache, so that the rerun downloads again.
			f = &modfetch.Fetcher{Env: p.Env(t)}
			_, err = srctree.Assemble(context.Background(), f, l, buildDir, nil)
			_, markerErr := os.Stat(marker)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !errors.Is(markerErr, os.ErrNotExist) {
					t.Errorf("the rerun did not replace the tree: %v", markerErr)
				}
				checkNoLeftovers(t, buildDir)
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if markerErr != nil {
				t.Errorf("the failed run touched the earlier tree: %v", markerErr)
			}
			checkNoLeftovers(t, buildDir)
		})
	}
}

// checkNoLeftovers fails when buildDir holds anything but the gopath tree.
func checkNoLeftovers(t *testing.T, buildDir string) {
	t.Helper()
	entries, err := os.ReadDir(buildDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "gopath" {
			t.Errorf("leftover in %s: %s", buildDir, e.Name())
		}
	}
}

// A vndr-style project (runc): vendor.conf instead of Godeps.json, no staging.
func TestAssembleVendorConf(t *testing.T) {
	const conf = "# comment\nexample.com/dep v0.1.0\n\nold.host/mirror bbb https://example.com/mirror # moved\n"
	tests := []struct {
		name    string
		conf    string
		edit    func(*pins.Lock)
		wantErr string
	}{
		{"good", conf, func(*pins.Lock) {}, ""},
		{"revision differs", conf, func(l *pins.Lock) { l.Vendor[1].UpstreamRev = "v0.2.0" }, "example.com/dep: upstream has revision v0.1.0, the lock's root example.com/dep says v0.2.0"},
		{"root not in the lock", conf + "example.com/other v1\n", func(*pins.Lock) {}, "example.com/other: no vendor root in the lock"},
		{"malformed line", conf + "example.com/norev\n", func(*pins.Lock) {}, `vendor.conf of example.com/runclike@v1.0.0-rc5: line 5: want "importpath revision [repository]"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := modfetchtest.New(t)
			src := modfetchtest.Module{Path: "example.com/runclike", Version: "v1.0.0-rc5", Files: map[string]string{
				"vendor.conf": tc.conf, "main.go": "package main\n",
			}}
			l := &pins.Lock{
				Project: "runclike", Version: "v1.0.0-rc5",
				Source: pins.Source{Module: p.Add(t, src), ImportPath: "example.com/runclike"},
				Vendor: []pins.VendorEntry{
					{Root: "old.host/mirror", Module: p.Add(t, mirror), UpstreamRev: "bbb"},
					{Root: "example.com/dep", Module: p.Add(t, dep), UpstreamRev: "v0.1.0"},
				},
			}
			tc.edit(l)
			_, err := srctree.Assemble(context.Background(), &modfetch.Fetcher{Env: p.Env(t)}, l, t.TempDir(), nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
