package srctree_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/modfetch/modfetchtest"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
)

// A go.mod project like kubernetes: a staging directory its zip lacks, an
// unserved module nothing imports, a dead host and a dependency.
var (
	gmSource = modfetchtest.Module{Path: "example.com/gm", Version: "v1.2.3", Files: map[string]string{
		"go.mod": `module example.com/gm

go 1.16

require (
	dead.host/util v0.0.0-20160121211510-db5cfe13f5cc
	example.com/lib v1.0.0
	example.io/staged v0.0.0
	example.io/unserved v0.0.0
)

replace (
	example.io/staged => ./staging/src/example.io/staged
	example.io/unserved => ./staging/src/example.io/unserved
)
`,
		"cmd/gm/main.go": "package main\n\nimport (\n\t\"dead.host/util\"\n\t\"example.com/lib\"\n\t\"example.io/staged\"\n)\n\nfunc main() { println(lib.X + staged.X + util.X) }\n",
	}}
	gmLib    = modfetchtest.Module{Path: "example.com/lib", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/lib\n", "lib.go": "package lib\n\nconst X = \"lib\"\n"}}
	gmStaged = modfetchtest.Module{Path: "example.io/staged", Version: "v0.2.3", Files: map[string]string{"go.mod": "module example.io/staged\n", "s.go": "package staged\n\nconst X = \"staged\"\n"}}
	gmMirror = modfetchtest.Module{Path: "example.com/mirror/util", Version: "v0.0.0-20160121211510-db5cfe13f5cc", Files: map[string]string{"u.go": "package util\n\nconst X = \"util\"\n"}}
)

// gomodFixture publishes the modules and returns the gomod lock for them.
func gomodFixture(t *testing.T) (*modfetchtest.Proxy, *pins.Lock) {
	t.Helper()
	p := modfetchtest.New(t)
	src := p.Add(t, gmSource)
	var mods []pins.GoModule
	for _, m := range []modfetchtest.Module{gmLib, gmStaged, gmMirror} {
		pm := p.Add(t, m)
		mods = append(mods, pins.GoModule{Path: m.Path, Version: m.Version, H1: pm.H1, GoModH1: modfetchtest.GoModH1(t, m)})
	}
	l := &pins.Lock{
		Project: "gm", Version: "v1.2.3",
		Source:    pins.Source{Module: src, Commit: "abc", CommitTime: "2020-01-01T00:00:00Z", ImportPath: "example.com/gm", Kind: pins.SourceGoMod},
		Toolchain: pins.Module{Path: "golang.org/toolchain", Version: "v0.0.1-go1.26.11.linux-amd64", H1: "h1:x"},
		Fix:       pins.Fix{Kind: pins.FixBuildTag, Tag: pins.NokmemTag, Requires: "vendor/example.com/lib/kmem_disabled.go"},
		Build:     pins.Build{Packages: []pins.BuildPackage{{Package: "cmd/gm", Output: "gm"}}, Tags: []string{pins.NokmemTag}},
		GoMod: &pins.GoMod{
			Load: []string{"./cmd/gm"},
			Replace: []pins.Replace{
				{Path: "example.io/staged", Kind: pins.ReplaceStaging, With: &pins.ModVersion{Path: "example.io/staged", Version: "v0.2.3"}, Reason: "published"},
				{Path: "example.io/unserved", Kind: pins.ReplaceStub, Reason: "not served, not imported"},
				{Path: "dead.host/util", Kind: pins.ReplaceMirror, With: &pins.ModVersion{Path: gmMirror.Path, Version: gmMirror.Version}, Reason: "host gone"},
			},
			Modules: mods,
		},
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	return p, l
}

// buildTree builds ./cmd/gm in the tree as the pipeline does: module mode,
// GOPROXY=off, the tree's module cache link.
func buildTree(t *testing.T, l *pins.Lock, tree srctree.Tree) (string, error) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "gm"), "./cmd/gm")
	cmd.Dir = tree.Root
	cmd.Env = gobuild.Env(tree.GOPATH, false, append(srctree.ModEnv(l, tree), "GOCACHE="+t.TempDir())...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestAssembleGoMod(t *testing.T) {
	p, l := gomodFixture(t)
	buildDir := filepath.Join(t.TempDir(), "_build", "gm", "v1.2.3")
	tree, err := srctree.Assemble(context.Background(), &modfetch.Fetcher{Env: p.Env(t)}, l, buildDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(tree.Root, "go.sum"))
	if err != nil || string(sum) != string(l.GoMod.GoSum()) {
		t.Errorf("go.sum = %q (%v), want the lock's %q", sum, err, l.GoMod.GoSum())
	}
	gm, err := os.ReadFile(filepath.Join(tree.Root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"example.io/staged => example.io/staged v0.2.3", "example.io/unserved => ./.nokmem-stubs/example.io/unserved", "dead.host/util => example.com/mirror/util v0.0.0-20160121211510-db5cfe13f5cc"} {
		if !strings.Contains(string(gm), want) {
			t.Errorf("go.mod lacks %q:\n%s", want, gm)
		}
	}
	if strings.Contains(string(gm), "./staging/") {
		t.Errorf("go.mod still points at staging:\n%s", gm)
	}
	if out, err := buildTree(t, l, tree); err != nil {
		t.Fatalf("offline module-mode build of the tree: %v\n%s", err, out)
	}
	f, err := srctree.File(l, tree, "vendor/example.com/lib/lib.go")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f); err != nil {
		t.Errorf("srctree.File of a dependency: %v", err)
	}
	checkNoLeftovers(t, buildDir)
}

func TestAssembleGoModRefused(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock)
		want   []string
		is     error
	}{
		{
			name:   "wrong zip h1 of a module",
			change: func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) { l.GoMod.Modules[0].H1 = l.GoMod.Modules[1].H1 },
			want:   []string{"example.com/lib@v1.0.0", "h1 hash mismatch"},
			is:     modfetch.ErrHashMismatch,
		},
		{
			name: "go.mod file changed on the proxy",
			change: func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) {
				p.WriteGoMod(t, gmLib.Path, gmLib.Version, "module example.com/lib\n\nrequire example.com/evil v1.0.0\n")
			},
			want: []string{"example.com/lib@v1.0.0", "go.mod h1 hash mismatch"},
			is:   modfetch.ErrGoModMismatch,
		},
		{
			name:   "missing staging module",
			change: func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) { l.GoMod.Replace = l.GoMod.Replace[1:] },
			want:   []string{"example.io/staged => ./staging/src/example.io/staged", "the lock does not replace"},
			is:     srctree.ErrStagingMissing,
		},
		{
			name: "stub for a module upstream does not name",
			change: func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) {
				l.GoMod.Replace = append(l.GoMod.Replace, pins.Replace{Path: "example.com/other", Kind: pins.ReplaceStub, Reason: "r"})
			},
			want: []string{"example.com/other"},
			is:   srctree.ErrStubUnused,
		},
		{
			name: "offline without the modules in the cache",
			change: func(t *testing.T, p *modfetchtest.Proxy, l *pins.Lock) {
				p.Dir = t.TempDir() // GOPROXY=off below; the fresh module cache has nothing
			},
			want: []string{"example.com/gm@v1.2.3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, l := gomodFixture(t)
			tc.change(t, p, l)
			env := p.Env(t)
			if strings.HasPrefix(tc.name, "offline") {
				env = append(env, "GOPROXY=off")
			}
			buildDir := t.TempDir()
			_, err := srctree.Assemble(context.Background(), &modfetch.Fetcher{Env: env}, l, buildDir, nil)
			if err == nil {
				t.Fatalf("assembled; want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if _, err := os.Stat(filepath.Join(buildDir, "gopath")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused tree was left in place: %v", err)
			}
			checkNoLeftovers(t, buildDir)
		})
	}
}

// A stub stands in only for a module no loaded package imports: stubbing
// one the build imports fails the build, naming it.
func TestGoModStubOfImportedModuleFails(t *testing.T) {
	p, l := gomodFixture(t)
	l.GoMod.Replace[0] = pins.Replace{Path: "example.io/staged", Kind: pins.ReplaceStub, Reason: "wrongly stubbed"}
	tree, err := srctree.Assemble(context.Background(), &modfetch.Fetcher{Env: p.Env(t)}, l, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := buildTree(t, l, tree)
	if err == nil || !strings.Contains(out, "example.io/staged") {
		t.Fatalf("build with a stubbed imported module: err %v, output %s; want a failure naming example.io/staged", err, out)
	}
}
