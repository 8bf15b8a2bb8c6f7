package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/modfetch/modfetchtest"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/toolchain"
)

const (
	fsDir     = "libcontainer/cgroups/fs/"
	memoryGo  = "package fs\n\nfunc Apply() error {\n\treturn EnableKernelMemoryAccounting()\n}\n"
	kmemOffGo = "// +build linux,nokmem\n\npackage fs\n\nfunc EnableKernelMemoryAccounting() error { return nil }\n"
	patch     = `Subject: no kmem on Apply
Why: test
Upstream: none
Upstream-Difference: none
Drop-When: never

diff --git a/vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/memory.go b/vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/memory.go
--- a/vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/memory.go
+++ b/vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/memory.go
@@ -1,5 +1,5 @@
 package fs
 
 func Apply() error {
-	return EnableKernelMemoryAccounting()
+	return nil
 }
`
	vendoredKmemOff = "vendor/github.com/opencontainers/runc/" + fsDir + "kmem_disabled.go"
)

// fakeBuilder "builds" a file holding the -X settings, and checks the
// version the way GoBuilder does, on that file's content.
type fakeBuilder struct {
	specs  []gobuild.Spec
	checks []pipeline.Check
}

func (b *fakeBuilder) SystemPackages(context.Context, *pins.Lock) ([]inputs.SystemPackage, error) {
	return []inputs.SystemPackage{{Name: "libc6-dev", Version: "2.36"}}, nil
}

func (b *fakeBuilder) Build(_ context.Context, s gobuild.Spec) error {
	b.specs = append(b.specs, s)
	if err := os.MkdirAll(s.OutDir, 0o755); err != nil {
		return err
	}
	for _, p := range s.Packages {
		data := strings.Join(append(s.X, "tags="+strings.Join(s.Tags, ",")), "\n") + "\n"
		if err := os.WriteFile(filepath.Join(s.OutDir, p.Output), []byte(data), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (b *fakeBuilder) Check(_ context.Context, c pipeline.Check) error {
	b.checks = append(b.checks, c)
	out, err := os.ReadFile(c.Binary)
	if err != nil {
		return err
	}
	return pipeline.CheckVersionOutput(c, string(out))
}

var demo = pipeline.Project{
	Name:        "demo",
	VersionArgs: []string{"--version"},
	VersionWant: func(l *pins.Lock, marker string) []string {
		return []string{"main.version=" + l.Version + "+" + marker}
	},
}

// world is a repository root with a lock for demo v1.0.0, its modules on a
// file:// proxy, a matrix and a patch series.
type world struct {
	root  string
	proxy *modfetchtest.Proxy
	lock  *pins.Lock
	fetch *modfetch.Fetcher
}

type setup struct {
	buildtag     bool   // fix: buildtag instead of patch
	noKmemOff    bool   // the vendored runc lacks kmem_disabled.go
	memory       string // the vendored memory.go; memoryGo when empty
	staging      bool   // the lock links staging repos the source lacks
	noPatches    bool
	wrongH1      bool // the lock's h1 of the vendored runc is wrong
	unbuildable  bool // the matrix marks the version unbuildable
	matrixStatus string
}

func newWorld(t *testing.T, s setup) *world {
	t.Helper()
	w := &world{root: t.TempDir(), proxy: modfetchtest.New(t)}
	tc := w.proxy.Add(t, modfetchtest.Module{Path: toolchain.ModulePath, Version: "v0.0.1-go1.26.11.linux-amd64", Files: map[string]string{
		"bin/go": "#!/bin/sh\necho 'go version go1.26.11 linux/amd64'\n", "src/_go.mod": "module std\n",
	}})
	src := w.proxy.Add(t, modfetchtest.Module{Path: "example.com/demo", Version: "v1.0.0", Files: map[string]string{
		"cmd/demo/main.go": "package main\n\nvar version string\n\nfunc main() { println(version) }\n",
	}})
	runcFiles := map[string]string{fsDir + "memory.go": memoryGo}
	if s.memory != "" {
		runcFiles[fsDir+"memory.go"] = s.memory
	}
	if s.buildtag && !s.noKmemOff {
		runcFiles[fsDir+"kmem_disabled.go"] = kmemOffGo
	}
	runc := w.proxy.Add(t, modfetchtest.Module{Path: "github.com/opencontainers/runc", Version: "v0.0.0-20181113202123-f000fe11ece1", Files: runcFiles})
	if s.wrongH1 {
		runc.H1 = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	}
	l := &pins.Lock{
		Project: "demo", Version: "v1.0.0",
		Source:    pins.Source{Module: src, Commit: "abc123", CommitTime: "2020-01-01T00:00:00Z", ImportPath: "example.com/demo"},
		Toolchain: tc,
		Fix:       pins.Fix{Kind: pins.FixPatch},
		Build: pins.Build{
			Packages: []pins.BuildPackage{{Package: "cmd/demo", Output: "demo"}},
			LDFlagsX: []string{"main.version={{.Version}}+{{.Marker}}"},
		},
		Vendor: []pins.VendorEntry{{Root: "github.com/opencontainers/runc", Module: runc}},
	}
	if s.buildtag {
		l.Fix = pins.Fix{Kind: pins.FixBuildTag, Tag: pins.NokmemTag, Requires: vendoredKmemOff}
		l.Build.Tags = []string{pins.NokmemTag}
	}
	if s.staging {
		l.Staging = &pins.Staging{Dir: "staging/src", Prefix: "k8s.io"}
	}
	w.lock = l
	data, err := yaml.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	write(t, pins.Path(filepath.Join(w.root, "vendor-pins"), "demo", "v1.0.0"), string(data))
	status := "buildable"
	if s.unbuildable {
		status = "unbuildable, reason: \"dep gone\", nearest: v0.9.0"
	}
	write(t, filepath.Join(w.root, "vendor-pins", pins.MatrixFile), "versions:\n"+
		"  - {project: demo, version: v0.9.0, status: planned, source: godeps, fix: patch, reason: \"no lock\"}\n"+
		"  - {project: demo, version: v1.0.0, status: "+status+", source: godeps, fix: "+l.Fix.Kind+"}\n")
	if !s.buildtag && !s.noPatches {
		write(t, filepath.Join(w.root, "patches", "demo", "v1.0.0", "0001-no-kmem.patch"), patch)
	}
	if s.noPatches {
		if err := os.MkdirAll(filepath.Join(w.root, "patches", "demo", "v1.0.0"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.fetch = &modfetch.Fetcher{Env: w.proxy.Env(t)}
	return w
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (w *world) pipeline(b *fakeBuilder) *pipeline.Pipeline {
	return &pipeline.Pipeline{Root: w.root, Inputs: pipeline.ModInputs{Fetcher: w.fetch}, Builder: b}
}

func (w *world) dest() string { return filepath.Join(w.root, "_output", "demo", "v1.0.0") }

func TestBuildPatch(t *testing.T) {
	w := newWorld(t, setup{})
	b := &fakeBuilder{}
	res, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if res.UpToDate || len(res.SHA256["demo"]) != 64 || !strings.HasPrefix(res.GitVersion, "v1.0.0+nokmem.") {
		t.Errorf("result %+v", res)
	}
	tree := filepath.Join(w.root, "_build", "demo", "v1.0.0", "gopath", "src", "example.com", "demo")
	got, err := os.ReadFile(filepath.Join(tree, "vendor", "github.com", "opencontainers", "runc", fsDir, "memory.go"))
	if err != nil || strings.Contains(string(got), "EnableKernelMemoryAccounting") {
		t.Errorf("vendored memory.go not patched: %q %v", got, err)
	}
	if len(b.checks) != 1 || b.checks[0].GoVersion != "go1.26.11" || !strings.HasSuffix(b.checks[0].GoBin, "/bin/go") {
		t.Errorf("checks %+v", b.checks)
	}
	if _, err := os.Stat(filepath.Join(w.dest(), "demo")); err != nil {
		t.Errorf("not published: %v", err)
	}
	again, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
	if err != nil || !again.UpToDate || again.SHA256["demo"] != res.SHA256["demo"] || len(b.specs) != 1 {
		t.Errorf("second build: %+v, %v, %d builds; want up to date without building", again, err, len(b.specs))
	}
	// The cheap no-op check trusts only the files it saw checked: a
	// published binary changed behind its back is hashed and rebuilt.
	bin := filepath.Join(w.dest(), "demo")
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	third, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
	if err != nil || third.UpToDate || len(b.specs) != 2 || third.SHA256["demo"] != res.SHA256["demo"] {
		t.Errorf("build after the binary changed: %+v, %v, %d builds; want a rebuild", third, err, len(b.specs))
	}
}

func TestBuildTag(t *testing.T) {
	w := newWorld(t, setup{buildtag: true})
	b := &fakeBuilder{}
	res, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.specs) != 1 || !slices.Contains(b.specs[0].Tags, pins.NokmemTag) {
		t.Errorf("specs %+v, want one build with -tags nokmem", b.specs)
	}
	if !strings.HasPrefix(res.GitVersion, "v1.0.0+nokmem.") {
		t.Errorf("git version %s", res.GitVersion)
	}
}

// Every refusal stops before the build and publishes nothing.
func TestBuildRefused(t *testing.T) {
	tests := []struct {
		name string
		s    setup
		is   error
		want []string
	}{
		{"unbuildable version", setup{unbuildable: true}, pins.ErrUnbuildable, []string{"demo v1.0.0", "dep gone", "the nearest buildable version is v0.9.0"}},
		{"module with a wrong h1", setup{wrongH1: true}, modfetch.ErrHashMismatch, []string{"github.com/opencontainers/runc@v0.0.0-20181113202123-f000fe11ece1"}},
		{"patch that does not apply", setup{memory: "package fs\n\nfunc Apply() error {\n\treturn enableKmem()\n}\n"}, nil, []string{"demo v1.0.0", "0001-no-kmem.patch", "does not apply"}},
		{"patch lock without patches", setup{noPatches: true}, nil, []string{"demo v1.0.0: the lock's fix is patch", "has no patches"}},
		{"buildtag tree without kmem_disabled.go", setup{buildtag: true, noKmemOff: true}, pipeline.ErrNoKmemDisabled, []string{"demo v1.0.0: fix buildtag", "kmem_disabled.go"}},
		{"missing staging repositories", setup{staging: true}, fs.ErrNotExist, []string{"staging: ", filepath.Join("example.com", "demo", "staging", "src", "k8s.io")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.s)
			b := &fakeBuilder{}
			_, err := w.pipeline(b).Build(context.Background(), demo, "v1.0.0")
			if err == nil {
				t.Fatal("built, want a refusal")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if len(b.specs) != 0 {
				t.Errorf("the builder ran %d times", len(b.specs))
			}
			if _, err := os.Stat(w.dest()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output folder exists after a refusal: %v", err)
			}
		})
	}
}

// A version without a lock and outside the matrix is refused, naming the
// versions that have one; a planned version is refused with the matrix's reason.
func TestBuildUnknownVersion(t *testing.T) {
	w := newWorld(t, setup{})
	b := &fakeBuilder{}
	for _, tc := range []struct {
		version string
		is      error
		want    []string
	}{
		{"v2.0.0", pins.ErrUnknownVersion, []string{"demo v2.0.0: unknown version", "known: v1.0.0"}},
		{"v0.9.0", pins.ErrUnbuildable, []string{"demo v0.9.0: not buildable yet", "no lock"}},
	} {
		_, err := w.pipeline(b).Build(context.Background(), demo, tc.version)
		if !errors.Is(err, tc.is) {
			t.Fatalf("%s: got %v, want %v", tc.version, err, tc.is)
		}
		for _, s := range tc.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	}
	if len(b.specs) != 0 {
		t.Errorf("the builder ran %d times", len(b.specs))
	}
}

// A binary whose version output lacks the marker is not published.
func TestBuildWrongVersionNotPublished(t *testing.T) {
	w := newWorld(t, setup{})
	b := &fakeBuilder{}
	p := w.pipeline(b)
	wrong := demo
	wrong.VersionWant = func(l *pins.Lock, marker string) []string { return []string{l.Version + "+other"} }
	_, err := p.Build(context.Background(), wrong, "v1.0.0")
	if err == nil || !strings.Contains(err.Error(), `want it to show "v1.0.0+other"`) {
		t.Fatalf("got %v, want the version check to fail", err)
	}
	if _, err := os.Stat(w.dest()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("published despite a failed check: %v", err)
	}
}

// slowBuilder is a build whose go command reports packages the way
// `go build -v` does: it counts 3 packages (1 in the cache), compiles one,
// waits for the progress line showing 2/3, compiles the next and waits for 3/3.
type slowBuilder struct {
	fakeBuilder
	lines chan string
}

func (b *slowBuilder) Build(ctx context.Context, s gobuild.Spec) error {
	if s.Progress == nil {
		return errors.New("the pipeline passed no progress counter")
	}
	s.Progress.Start("cmd/demo", gobuild.Count{Packages: []string{"fmt", "example.com/demo/lib", "example.com/demo/cmd/demo"}, Compile: 2})
	w := s.Progress.Writer(io.Discard)
	for _, step := range []struct{ compiled, want string }{
		{"example.com/demo/lib\n", "demo v1.0.0: building, 2/3 packages (1 from cache), "},
		{"example.com/demo/cmd/demo\n", "demo v1.0.0: building, 3/3 packages (1 from cache), "},
	} {
		if _, err := w.Write([]byte(step.compiled)); err != nil {
			return err
		}
		if err := b.await(step.want); err != nil {
			return err
		}
	}
	return b.fakeBuilder.Build(ctx, s)
}

// await waits for a progress line that starts with want.
func (b *slowBuilder) await(want string) error {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-b.lines:
			if strings.HasPrefix(l, want) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no progress line %q while the build ran", want)
		}
	}
}

// lineWriter passes each line written to it on to lines (dropping it when nobody listens).
type lineWriter struct {
	lines chan string
	all   *strings.Builder
}

func (w lineWriter) Write(p []byte) (int, error) {
	w.all.Write(p)
	select {
	case w.lines <- string(p):
	default:
	}
	return len(p), nil
}

// A running build says how many of its packages are ready, how many came
// from the cache, and for how long it has run; at the end it says the total.
func TestBuildProgress(t *testing.T) {
	w := newWorld(t, setup{})
	lines := make(chan string, 16)
	b := &slowBuilder{lines: lines}
	p := w.pipeline(&b.fakeBuilder)
	p.Builder = b
	var all strings.Builder
	p.Out = lineWriter{lines: lines, all: &all}
	p.ProgressEvery = time.Millisecond
	if _, err := p.Build(context.Background(), demo, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(all.String(), "demo v1.0.0: built 3/3 packages (1 from cache), ") {
		t.Errorf("no final package count in %q", all.String())
	}
}

// BuildChecked builds what the plan loaded: it reads neither the lock nor
// the patch series again (both gone here after planning).
func TestBuildCheckedUsesThePlan(t *testing.T) {
	w := newWorld(t, setup{})
	b := &fakeBuilder{}
	p := w.pipeline(b)
	plan, err := p.Plan(context.Background(), demo, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{filepath.Join(w.root, "patches"), pins.Path(p.PinsDir(), "demo", "v1.0.0")} {
		if err := os.RemoveAll(gone); err != nil {
			t.Fatal(err)
		}
	}
	bins, err := p.BuildChecked(context.Background(), plan, plan.Spec.OutDir)
	if err != nil || len(bins) != 1 || len(b.specs) != 1 {
		t.Fatalf("BuildChecked after the lock and patches went: %v, %v, %d builds; want it to build the plan", bins, err, len(b.specs))
	}
}

// The default pair comes from the matrix's default: true entries; a
// matrix without one for a project is refused, naming the file.
func TestDefaultPair(t *testing.T) {
	p := &pipeline.Pipeline{Root: filepath.Join("..", "..")}
	b, err := p.DefaultPair()
	if err != nil || b.Kubelet == "" || b.Runc == "" {
		t.Fatalf("committed matrix: %+v, %v", b, err)
	}
	m, err := pins.LoadMatrix(p.PinsDir())
	if err != nil {
		t.Fatal(err)
	}
	if b.Kubelet != m.Default("kubernetes") || b.Runc != m.Default("runc") {
		t.Errorf("default pair %+v is not the matrix's", b)
	}
	w := newWorld(t, setup{}) // a matrix without defaults
	if _, err := w.pipeline(&fakeBuilder{}).DefaultPair(); err == nil || !strings.Contains(err.Error(), pins.MatrixFile) {
		t.Errorf("matrix without defaults: %v, want an error naming %s", err, pins.MatrixFile)
	}
}
