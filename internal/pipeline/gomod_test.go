package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/modfetch/modfetchtest"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// goModWorld is a repository with one go.mod-era version (source.kind
// gomod): a source module whose go.mod requires runc and a staging module
// the zip lacks, and the lock that replaces it with the published module.
func goModWorld(t *testing.T, noKmemOff bool) (*world, *pins.Lock) {
	t.Helper()
	w := &world{root: t.TempDir(), proxy: modfetchtest.New(t)}
	tc := w.proxy.Add(t, modfetchtest.Module{Path: toolchain.ModulePath, Version: "v0.0.1-go1.26.11.linux-amd64", Files: map[string]string{
		"bin/go": "#!/bin/sh\necho 'go version go1.26.11 linux/amd64'\n", "src/_go.mod": "module std\n",
	}})
	src := w.proxy.Add(t, modfetchtest.Module{Path: "example.com/demo", Version: "v1.0.0", Files: map[string]string{
		"go.mod":           "module example.com/demo\n\ngo 1.15\n\nrequire (\n\tgithub.com/opencontainers/runc v1.0.0-rc92\n\texample.io/staged v0.0.0\n)\n\nreplace example.io/staged => ./staging/src/example.io/staged\n",
		"cmd/demo/main.go": "package main\n\nfunc main() {}\n",
	}})
	runcFiles := map[string]string{"go.mod": "module github.com/opencontainers/runc\n", fsDir + "memory.go": memoryGo}
	if !noKmemOff {
		runcFiles[fsDir+"kmem_disabled.go"] = kmemOffGo
	}
	var mods []pins.GoModule
	for _, m := range []modfetchtest.Module{
		{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc92", Files: runcFiles},
		{Path: "example.io/staged", Version: "v0.1.0", Files: map[string]string{"go.mod": "module example.io/staged\n", "s.go": "package staged\n"}},
	} {
		pm := w.proxy.Add(t, m)
		mods = append(mods, pins.GoModule{Path: m.Path, Version: m.Version, H1: pm.H1, GoModH1: modfetchtest.GoModH1(t, m)})
	}
	l := &pins.Lock{
		Project: "demo", Version: "v1.0.0",
		Source:    pins.Source{Module: src, Commit: "abc123", CommitTime: "2020-01-01T00:00:00Z", ImportPath: "example.com/demo", Kind: pins.SourceGoMod},
		Toolchain: tc,
		Fix:       pins.Fix{Kind: pins.FixBuildTag, Tag: pins.NokmemTag, Requires: vendoredKmemOff},
		Build: pins.Build{
			Packages: []pins.BuildPackage{{Package: "cmd/demo", Output: "demo"}},
			Tags:     []string{pins.NokmemTag},
			LDFlagsX: []string{"main.version={{.Version}}+{{.Marker}}"},
		},
		GoMod: &pins.GoMod{
			Load:    []string{"./cmd/demo"},
			Replace: []pins.Replace{{Path: "example.io/staged", Kind: pins.ReplaceStaging, With: &pins.ModVersion{Path: "example.io/staged", Version: "v0.1.0"}, Reason: "published"}},
			Modules: mods,
		},
	}
	w.fetch = &modfetch.Fetcher{Env: w.proxy.Env(t)}
	w.lock = l
	return w, l
}

// writeLock writes the lock and a matrix that lists it as buildable.
func (w *world) writeLock(t *testing.T, l *pins.Lock) {
	t.Helper()
	data, err := yaml.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	write(t, pins.Path(filepath.Join(w.root, "vendor-pins"), "demo", "v1.0.0"), string(data))
	write(t, filepath.Join(w.root, "vendor-pins", pins.MatrixFile),
		"versions:\n  - {project: demo, version: v1.0.0, status: buildable, source: gomod, fix: buildtag}\n")
}

// A go.mod lock goes through the same pipeline: Assemble makes the
// module-mode tree, the fix check finds kmem_disabled.go in the runc
// module, the build gets the offline module-mode environment, and the
// result is published and up to date on the next run.
func TestBuildGoMod(t *testing.T) {
	w, l := goModWorld(t, false)
	w.writeLock(t, l)
	b := &fakeBuilder{}
	res, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.specs) != 1 {
		t.Fatalf("%d builds, want 1", len(b.specs))
	}
	env := b.specs[0].Env
	tree := srctree.Paths(l, filepath.Join(w.root, "_build", "demo", "v1.0.0"))
	for _, want := range []string{"GO111MODULE=on", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOMODCACHE=" + filepath.Join(tree.GOPATH, "pkg", "mod")} {
		if !slices.Contains(env, want) {
			t.Errorf("build env %v lacks %s", env, want)
		}
	}
	if !slices.Contains(b.specs[0].Tags, pins.NokmemTag) {
		t.Errorf("tags %v, want nokmem", b.specs[0].Tags)
	}
	gm, err := os.ReadFile(filepath.Join(tree.Root, "go.mod"))
	if err != nil || !strings.Contains(string(gm), "example.io/staged => example.io/staged v0.1.0") {
		t.Errorf("tree go.mod %q (%v) does not replace the staging module", gm, err)
	}
	if sum, err := os.ReadFile(filepath.Join(tree.Root, "go.sum")); err != nil || string(sum) != string(l.GoMod.GoSum()) {
		t.Errorf("tree go.sum %q (%v), want the lock's", sum, err)
	}
	if _, err := os.Stat(filepath.Join(w.dest(), "demo")); err != nil || res.UpToDate {
		t.Errorf("not published: %v (%+v)", err, res)
	}
	again, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
	if err != nil || !again.UpToDate || len(b.specs) != 1 {
		t.Errorf("second build: %+v, %v, %d builds; want up to date", again, err, len(b.specs))
	}
}

// Refusals for a go.mod lock stop before the build and publish nothing.
func TestBuildGoModRefused(t *testing.T) {
	tests := []struct {
		name      string
		noKmemOff bool
		edit      func(l *pins.Lock)
		want      string
		is        error
	}{
		{name: "runc module without kmem_disabled.go", noKmemOff: true, want: "the nokmem build tag has nothing to select", is: pipeline.ErrNoKmemDisabled},
		{name: "wrong h1 of a module", edit: func(l *pins.Lock) { l.GoMod.Modules[0].H1 = l.GoMod.Modules[1].H1 }, want: "github.com/opencontainers/runc@v1.0.0-rc92", is: modfetch.ErrHashMismatch},
		{name: "wrong go.mod h1 of a module", edit: func(l *pins.Lock) { l.GoMod.Modules[1].GoModH1 = l.GoMod.Modules[0].GoModH1 }, want: "example.io/staged@v0.1.0", is: modfetch.ErrGoModMismatch},
		{name: "missing staging module", edit: func(l *pins.Lock) { l.GoMod.Replace = nil }, want: "example.io/staged => ./staging/src/example.io/staged", is: srctree.ErrStagingMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, l := goModWorld(t, tc.noKmemOff)
			if tc.edit != nil {
				tc.edit(l)
			}
			w.writeLock(t, l)
			b := &fakeBuilder{}
			_, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.is) {
				t.Fatalf("Build = %v, want %v naming %q", err, tc.is, tc.want)
			}
			if len(b.specs) != 0 {
				t.Errorf("built %d times despite the refusal", len(b.specs))
			}
			if _, err := os.Stat(w.dest()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("something was published: %v", err)
			}
		})
	}
}

// A none lock (runc rc94+, whose cgroupfs driver only joins) builds with
// no patch and no tag after the pipeline has read the driver; a tree whose
// driver still activates kmem is refused before the build, naming it.
func TestBuildGoModFixNone(t *testing.T) {
	const joins = "package fs\n\ntype MemoryGroup struct{}\n\nfunc (s *MemoryGroup) Apply(path string, pid int) error { return apply(path, pid) }\n"
	const activates = "package fs\n\ntype MemoryGroup struct{}\n\nfunc (s *MemoryGroup) Apply(path string) error { return EnableKernelMemoryAccounting(path) }\n"
	for _, tc := range []struct {
		name, memory string
		wantErr      error
	}{
		{"driver only joins", joins, nil},
		{"driver activates kmem", activates, pipeline.ErrActivatesKmem},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, l := goModWorld(t, true)
			// Serve a runc whose driver is tc.memory under another version.
			m := modfetchtest.Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc95",
				Files: map[string]string{"go.mod": "module github.com/opencontainers/runc\n", fsDir + "memory.go": tc.memory}}
			pm := w.proxy.Add(t, m)
			l.GoMod.Modules[0] = pins.GoModule{Path: m.Path, Version: m.Version, H1: pm.H1, GoModH1: modfetchtest.GoModH1(t, m)}
			src := w.proxy.Add(t, modfetchtest.Module{Path: "example.com/demo", Version: "v1.0.1", Files: map[string]string{
				"go.mod":           "module example.com/demo\n\ngo 1.15\n\nrequire (\n\tgithub.com/opencontainers/runc v1.0.0-rc95\n\texample.io/staged v0.0.0\n)\n\nreplace example.io/staged => ./staging/src/example.io/staged\n",
				"cmd/demo/main.go": "package main\n\nfunc main() {}\n",
			}})
			l.Source.Module = src
			l.Fix = pins.Fix{Kind: pins.FixNone, Requires: "vendor/github.com/opencontainers/runc/" + fsDir + "memory.go"}
			l.Build.Tags = []string{"seccomp"}
			data, err := yaml.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			write(t, pins.Path(filepath.Join(w.root, "vendor-pins"), "demo", "v1.0.0"), string(data))
			write(t, filepath.Join(w.root, "vendor-pins", pins.MatrixFile),
				"versions:\n  - {project: demo, version: v1.0.0, status: buildable, source: gomod, fix: none}\n")
			b := &fakeBuilder{}
			_, err = w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
			if tc.wantErr == nil {
				if err != nil || len(b.specs) != 1 || slices.Contains(b.specs[0].Tags, pins.NokmemTag) {
					t.Fatalf("Build = %v, %d builds, tags %v; want one build without nokmem", err, len(b.specs), b.specs)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), "demo v1.0.0: fix none") || !strings.Contains(err.Error(), "libcontainer/cgroups/fs") {
				t.Fatalf("Build = %v, want %v naming the driver", err, tc.wantErr)
			}
			if len(b.specs) != 0 {
				t.Errorf("built %d times despite the refusal", len(b.specs))
			}
		})
	}
}

// runc prints its commit only when one was stamped: a lock without a known
// commit wants no commit line, one with a commit wants it.
func TestRuncVersionWant(t *testing.T) {
	l := &pins.Lock{Version: "v1.4.4"}
	if got, want := pipeline.Runc.VersionWant(l, "nokmem.abc"), []string{"runc version 1.4.4+nokmem.abc\n"}; !slices.Equal(got, want) {
		t.Errorf("without a commit: %q, want %q", got, want)
	}
	l.Source.Commit = "4fc53a81"
	if got := pipeline.Runc.VersionWant(l, "m"); len(got) != 2 || got[1] != "commit: 4fc53a81\n" {
		t.Errorf("with a commit: %q", got)
	}
	out := "runc version 1.4.4+nokmem.abc\nspec: 1.3.0\ngo: go1.26.11\nlibseccomp: 2.5.4\n"
	c := pipeline.Check{Binary: "runc", VersionArgs: []string{"--version"}, VersionWant: pipeline.Runc.VersionWant(&pins.Lock{Version: "v1.4.4"}, "nokmem.abc")}
	if err := pipeline.CheckVersionOutput(c, out); err != nil {
		t.Error(err)
	}
	c.VersionWant = pipeline.Runc.VersionWant(&pins.Lock{Version: "v1.4.4"}, "nokmem.def")
	if err := pipeline.CheckVersionOutput(c, out); err == nil {
		t.Error("another marker passed")
	}
}
