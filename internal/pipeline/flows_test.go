package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/rpmrepo"
	"github.com/nokmem/nokmem/internal/verifybuild"
	"github.com/nokmem/nokmem/internal/vulndb"
)

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// The unpatched proof build: inputs checked before the build, the tree
// left without its patches, the binary moved into place only after its
// checks passed, and a rerun with the same inputs builds nothing.
func TestBuildUnpatched(t *testing.T) {
	w := newWorld(t, setup{})
	b := &fakeBuilder{}
	var out bytes.Buffer
	p := w.pipeline(b)
	p.Out = &out
	built, err := p.BuildUnpatched(context.Background(), demo, "v1.0.0")
	if err != nil || !built {
		t.Fatalf("BuildUnpatched: %v, built %v", err, built)
	}
	dir := p.Layout().Unpatched("demo", "v1.0.0")
	got, err := os.ReadFile(filepath.Join(dir, "demo"))
	if err != nil || !strings.Contains(string(got), "main.version=v1.0.0+unpatched") {
		t.Errorf("unpatched binary %q %v", got, err)
	}
	memory, err := os.ReadFile(filepath.Join(dir, "gopath", "src", "example.com", "demo", "vendor", "github.com", "opencontainers", "runc", fsDir, "memory.go"))
	if err != nil || !strings.Contains(string(memory), "EnableKernelMemoryAccounting") {
		t.Errorf("the unpatched tree is patched: %q %v", memory, err)
	}
	if len(b.checks) != 1 || !strings.HasSuffix(b.checks[0].VersionWant[0], "+unpatched") {
		t.Errorf("checks %+v", b.checks)
	}
	built, err = p.BuildUnpatched(context.Background(), demo, "v1.0.0")
	if err != nil || built || len(b.specs) != 1 || !strings.Contains(out.String(), "demo v1.0.0 unpatched: up to date, nothing to do") {
		t.Errorf("rerun: %v, built %v, %d builds, said %q; want nothing done", err, built, len(b.specs), out.String())
	}
}

// A module with a wrong h1 stops the unpatched build before the builder
// runs; a binary that fails its check is not put in place, and no record
// is written, so the next run tries again.
func TestBuildUnpatchedRefused(t *testing.T) {
	w := newWorld(t, setup{wrongH1: true})
	b := &fakeBuilder{}
	p := w.pipeline(b)
	if _, err := p.BuildUnpatched(context.Background(), demo, "v1.0.0"); err == nil || len(b.specs) != 0 {
		t.Errorf("wrong h1: %v, %d builds; want a refusal before the build", err, len(b.specs))
	}

	w = newWorld(t, setup{})
	p = w.pipeline(b)
	wrong := demo
	wrong.VersionWant = func(*pins.Lock, string) []string { return []string{"other"} }
	if _, err := p.BuildUnpatched(context.Background(), wrong, "v1.0.0"); err == nil || !strings.Contains(err.Error(), "unpatched demo") {
		t.Fatalf("failed check: %v, want an error", err)
	}
	dir := p.Layout().Unpatched("demo", "v1.0.0")
	scratch, _ := filepath.Glob(filepath.Join(dir, ".bin-*"))
	if exists(filepath.Join(dir, "demo")) || len(scratch) > 0 || exists(p.Layout().Record("demo-unpatched")) {
		t.Errorf("after a failed check: binary %v, scratch %v, record %v; want none", exists(filepath.Join(dir, "demo")), scratch, exists(p.Layout().Record("demo-unpatched")))
	}
}

// publisher is a Publisher over w with a fresh development key and an
// account writer that records its calls (and fails with fail).
type publisher struct {
	*pipeline.Publisher
	accounts []string
	fail     error
	out      bytes.Buffer
}

func (w *world) publisher(t *testing.T, b *fakeBuilder) *publisher {
	t.Helper()
	dir := t.TempDir()
	k, err := signkey.Choose(func(string) string { return "" }, signkey.DevPair{Secret: filepath.Join(dir, "dev.key"), Public: filepath.Join(dir, "dev.pub")})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"lock.yaml", "supplement.yaml", "vex.yaml"} {
		write(t, filepath.Join(w.root, "vendor-pins", "vulndb", f), f+"\n")
	}
	pb := &publisher{}
	p := w.pipeline(b)
	p.Out = &pb.out
	pb.Publisher = &pipeline.Publisher{Pipeline: p, Key: k, BuilderID: []byte("test"),
		Account: func(dir string, _ *inputs.Inputs, artifacts []string) error {
			pb.accounts = append(pb.accounts, dir)
			return pb.fail
		}}
	return pb
}

// The release set step: refused before anything is written while the
// artifacts are not built; after the build it writes a set that verifies
// with the public key, and a rerun does nothing. A failing account writes
// no set and no record.
func TestReleaseStep(t *testing.T) {
	w := newWorld(t, setup{})
	b := &fakeBuilder{}
	p := w.publisher(t, b)
	ctx := context.Background()
	if err := p.WriteRelease(ctx, "demo", "v1.0.0"); err == nil || !strings.Contains(err.Error(), "build it first") || len(p.accounts) != 0 {
		t.Fatalf("release before the build: %v (accounts %v), want a refusal", err, p.accounts)
	}
	if _, err := p.Build(ctx, demo, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	dir := w.dest()
	p.fail = errors.New("no database")
	if err := p.ReleaseStep(ctx, "demo", "v1.0.0"); !errors.Is(err, p.fail) {
		t.Fatalf("failing account: %v", err)
	}
	if exists(filepath.Join(dir, release.SignatureFile)) || exists(p.ReleaseRecord("demo", "v1.0.0")) {
		t.Errorf("a failed release step left a signature or a record")
	}
	p.fail = nil
	if err := p.ReleaseStep(ctx, "demo", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := release.Verify(dir, p.Key.Public); err != nil {
		t.Errorf("the release set does not verify: %v", err)
	}
	if _, err := sums.Parse(filepath.Join(dir, sums.SHA256.SumsFile)); err != nil {
		t.Error(err)
	}
	n := len(p.accounts)
	if err := p.ReleaseStep(ctx, "demo", "v1.0.0"); err != nil || len(p.accounts) != n || !strings.Contains(p.out.String(), "release demo v1.0.0: up to date, nothing to do") {
		t.Errorf("rerun: %v, %d accounts (was %d), said %q; want nothing done", err, len(p.accounts), n, p.out.String())
	}
}

// fakeProgram stands in for verifybuild: its binary is a script that
// prints its version, its source list one file.
type fakeProgram struct {
	builds   int
	failList error
	failNext error
	extra    []string // more source files
}

func (f *fakeProgram) SourceFiles(context.Context, string, string) ([]string, error) {
	return append([]string{"go.mod", "verify/main.go"}, f.extra...), f.failList
}

func (f *fakeProgram) SourceStamp(context.Context, string, []string, string) (verifybuild.Stamp, error) {
	return verifybuild.Stamp{Version: "v0.0.0-test", Commit: "abc"}, nil
}

func (f *fakeProgram) Build(_ context.Context, s verifybuild.Spec) error {
	if f.failNext != nil {
		return f.failNext
	}
	f.builds++
	return os.WriteFile(s.Out, []byte("#!/bin/sh\necho '{\"Version\": \""+s.Stamp.Version+"\"}'\n"), 0o755)
}

func (f *fakeProgram) Inputs(_ context.Context, _ verifybuild.Spec, l *verifybuild.Lock, _ []string) (*inputs.Inputs, error) {
	return &inputs.Inputs{Name: "verify", Version: "v0.0.0-test", Toolchain: l.Toolchain,
		Source: inputs.Source{Module: pins.Module{Path: "example.com/x", Version: "v0.0.0-test", H1: l.Toolchain.H1}, Commit: "abc", CommitTime: "2020-01-01T00:00:00Z", ImportPath: "example.com/x"}}, nil
}

// verifyWorld adds verify's lock and sources to w.
func verifyWorld(t *testing.T, w *world) {
	t.Helper()
	write(t, filepath.Join(w.root, verifybuild.LockFile), fmt.Sprintf("toolchain:\n  path: %s\n  version: %s\n  h1: %s\n", w.lock.Toolchain.Path, w.lock.Toolchain.Version, w.lock.Toolchain.H1))
	write(t, filepath.Join(w.root, "go.mod"), "module example.com/x\n")
	write(t, filepath.Join(w.root, "verify", "main.go"), "package main\n")
}

// The verify step: a failing source listing stops it before the build; a
// build publishes the binary with a release set that verifies; a rerun
// does nothing; a failing build leaves the published one as it was and no
// scratch folder behind.
func TestVerifyStep(t *testing.T) {
	w := newWorld(t, setup{})
	verifyWorld(t, w)
	b := &fakeBuilder{}
	p := w.publisher(t, b)
	prog := &fakeProgram{failList: errors.New("go list failed")}
	p.Program = prog
	ctx := context.Background()
	dest := p.Layout().Verify()
	if err := p.VerifyStep(ctx, "nokmem-test"); !errors.Is(err, prog.failList) || prog.builds != 0 || exists(dest) {
		t.Fatalf("failing source list: %v, %d builds, output %v", err, prog.builds, exists(dest))
	}
	prog.failList = nil
	if err := p.VerifyStep(ctx, "nokmem-test"); err != nil {
		t.Fatal(err)
	}
	if err := release.Verify(dest, p.Key.Public); err != nil {
		t.Errorf("verify's release set: %v", err)
	}
	if len(b.checks) != 1 || !b.checks[0].Static || b.checks[0].GoVersion != "go1.26.11" {
		t.Errorf("checks %+v, want one static check with the pinned Go", b.checks)
	}
	if err := p.VerifyStep(ctx, "nokmem-test"); err != nil || prog.builds != 1 || !strings.Contains(p.out.String(), "verify: up to date, nothing to do") {
		t.Errorf("rerun: %v, %d builds, said %q", err, prog.builds, p.out.String())
	}
	// A source file of the last build that is gone (with its folder)
	// makes the step build again; it is no error.
	write(t, filepath.Join(w.root, "verify", "gone", "gone.go"), "package gone\n")
	prog.extra = []string{"verify/gone/gone.go"}
	if err := os.Remove(p.Layout().Record("verify")); err != nil {
		t.Fatal(err)
	}
	if err := p.VerifyStep(ctx, "nokmem-test"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(w.root, "verify", "gone")); err != nil {
		t.Fatal(err)
	}
	prog.extra = nil
	builds := prog.builds
	if err := p.VerifyStep(ctx, "nokmem-test"); err != nil || prog.builds != builds+1 {
		t.Errorf("after a source file went: %v, %d builds (was %d); want a rebuild", err, prog.builds, builds)
	}
	before, err := os.ReadFile(filepath.Join(dest, "verify"))
	if err != nil {
		t.Fatal(err)
	}
	// A rebuild from the same inputs publishes the same INPUTS stamp
	// (the scratch folder's random name does not enter it).
	stamp, _ := os.ReadFile(filepath.Join(dest, publish.StampFile))
	if _, _, err := p.BuildVerify(ctx, dest, "nokmem-test"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dest, publish.StampFile)); len(stamp) == 0 || !bytes.Equal(stamp, again) {
		t.Errorf("verify's INPUTS changed on a rebuild from the same inputs:\n%s\n%s", stamp, again)
	}
	prog.failNext = errors.New("compile error")
	if _, _, err := p.BuildVerify(ctx, dest, "nokmem-other"); !errors.Is(err, prog.failNext) {
		t.Fatalf("failing build: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dest, "verify"))
	scratch, _ := filepath.Glob(filepath.Join(p.Layout().BuildRoot(), "verify-*"))
	if !bytes.Equal(before, after) || len(scratch) > 0 {
		t.Errorf("a failed build changed the published verify (%v) or left %v", !bytes.Equal(before, after), scratch)
	}
}

// pairWorld turns w into a repository with a kubelet and a runc (both the
// demo source, each with the demo patch), the matrix's default pair, and
// a published verify; it returns the pair.
func pairWorld(t *testing.T, w *world, p *publisher) pins.Bundle {
	t.Helper()
	var matrix strings.Builder
	matrix.WriteString("versions:\n")
	for _, pv := range [][2]string{{"kubernetes", "kubelet"}, {"runc", "runc"}} {
		l := *w.lock
		l.Project = pv[0]
		l.Build.Packages = []pins.BuildPackage{{Package: "cmd/demo", Output: pv[1]}}
		data, err := yaml.Marshal(&l)
		if err != nil {
			t.Fatal(err)
		}
		write(t, pins.Path(filepath.Join(w.root, "vendor-pins"), pv[0], "v1.0.0"), string(data))
		write(t, filepath.Join(w.root, "patches", pv[0], "v1.0.0", "0001-no-kmem.patch"), patch)
		fmt.Fprintf(&matrix, "  - {project: %s, version: v1.0.0, status: buildable, source: godeps, fix: patch, default: true}\n", pv[0])
	}
	write(t, filepath.Join(w.root, "vendor-pins", pins.MatrixFile), matrix.String())
	verifyWorld(t, w)
	p.Program = &fakeProgram{}
	pair, err := p.DefaultPair()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, proj := range []pipeline.Project{{Name: "kubernetes"}, {Name: "runc"}} {
		if _, err := p.Build(ctx, proj, "v1.0.0"); err != nil {
			t.Fatal(err)
		}
		if err := p.ReleaseStep(ctx, proj.Name, "v1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.VerifyStep(ctx, "nokmem-test"); err != nil {
		t.Fatal(err)
	}
	return pair
}

// accountWriter writes an account with one finding per artifact, open
// for the artifacts named in open.
func accountWriter(open ...string) func(string, *inputs.Inputs, []string) error {
	return func(dir string, _ *inputs.Inputs, artifacts []string) error {
		a := &vulndb.Account{Schema: vulndb.Schema}
		for _, n := range artifacts {
			status := vulndb.StatusNotAffected
			if slices.Contains(open, n) {
				status = "open"
			}
			a.Artifacts = append(a.Artifacts, vulndb.Artifact{Name: n, Version: "v1.0.0", Findings: []vulndb.Finding{{ID: "GO-0000-0001", Module: "example.com/x", Status: status}}})
		}
		return a.Write(dir)
	}
}

// The bundle step: a runc with an open finding is refused before anything
// is written; then the pair's bundle is published (folder and tarball)
// and verifies with the public key, the release notes name it, and a
// rerun does nothing.
func TestBundleStep(t *testing.T) {
	w := newWorld(t, setup{})
	p := w.publisher(t, &fakeBuilder{})
	p.Account = accountWriter("runc")
	pair := pairWorld(t, w, p)
	var notes bytes.Buffer
	p.Notes = &notes
	ctx := context.Background()
	out := p.Layout().Bundle()
	if err := p.BundleStep(ctx, pair); !errors.Is(err, vulndb.ErrOpenFinding) {
		t.Fatalf("runc with an open finding: %v, want %v", err, vulndb.ErrOpenFinding)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("the refused bundle left %v in %s", entries, out)
	}

	p.Account = accountWriter()
	for _, project := range []string{"kubernetes", "runc"} {
		if err := p.WriteRelease(ctx, project, "v1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.BundleStep(ctx, pair); err != nil {
		t.Fatal(err)
	}
	name, err := p.BundleName(pair)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Verify(filepath.Join(out, name), p.Key.Public)
	if err != nil {
		t.Fatalf("the published bundle: %v", err)
	}
	if m.Binary("verify").Version != "v0.0.0-test" || !exists(filepath.Join(out, name+bundle.TarExt)) {
		t.Errorf("manifest %+v, tarball %v", m, exists(filepath.Join(out, name+bundle.TarExt)))
	}
	if entries, _ := os.ReadDir(out); len(entries) != 2 {
		t.Errorf("%s holds %v, want the folder and the tarball only", out, entries)
	}
	if !strings.Contains(notes.String(), "=== release notes: "+name+" ===") {
		t.Errorf("release notes %q", notes.String())
	}
	if err := p.BundleStep(ctx, pair); err != nil || !strings.Contains(p.out.String(), "bundle "+name+": up to date, nothing to do") {
		t.Errorf("rerun: %v, said %q", err, p.out.String())
	}
}

// The RPM step: a bundle that does not verify is refused before any RPM
// is made; from the published bundle it makes the kubelet, nokmem-node
// and nokmem-release-key packages with the source date and hands them to
// the repository writer.
func TestBuildYum(t *testing.T) {
	w := newWorld(t, setup{})
	p := w.publisher(t, &fakeBuilder{})
	p.Account = accountWriter()
	pair := pairWorld(t, w, p)
	p.SourceDate = time.Unix(1700000000, 0).UTC()
	ctx := context.Background()
	if err := p.BundleStep(ctx, pair); err != nil {
		t.Fatal(err)
	}
	gpg, err := signkey.ChooseGPG(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var got []*rpmrepo.Package
	y := pipeline.Yum{GPG: gpg, Publish: func(_ context.Context, dest string, pkgs []*rpmrepo.Package, o rpmrepo.Options) (*rpmrepo.Published, error) {
		got = pkgs
		if !o.SourceDate.Equal(p.SourceDate) || o.BaseURL != pipeline.DefaultYumBaseURL || o.GPG == nil {
			t.Errorf("options %+v", o)
		}
		return &rpmrepo.Published{Dir: dest}, nil
	}}
	name, err := p.BundleName(pair)
	if err != nil {
		t.Fatal(err)
	}
	kubelet := filepath.Join(p.Layout().Bundle(), name, "kubelet")
	good, err := os.ReadFile(kubelet)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kubelet, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubelet, []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.BuildYum(ctx, pair, y); err == nil || !strings.Contains(err.Error(), "yum: the published bundle") || got != nil {
		t.Fatalf("tampered bundle: %v, %d packages made", err, len(got))
	}
	if err := os.WriteFile(kubelet, good, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.BuildYum(ctx, pair, y); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pkg := range got {
		names = append(names, pkg.Name)
		if !pkg.BuildTime.Equal(p.SourceDate) {
			t.Errorf("%s build time %v, want the source date", pkg.Name, pkg.BuildTime)
		}
	}
	if !slices.Equal(names, []string{"kubelet", "nokmem-node", "nokmem-release-key"}) {
		t.Errorf("packages %v", names)
	}
}

// The stock build: the fixed tree built with its kmem patch presented
// removed (an -overlay), the binary in place only after its checks, a
// rerun with the same inputs does nothing; a series without a kmem patch
// is refused before the build, and a failed check leaves no binary.
func TestBuildStock(t *testing.T) {
	w := newWorld(t, setup{})
	b := &fakeBuilder{}
	var out bytes.Buffer
	p := w.pipeline(b)
	p.Out = &out
	ctx := context.Background()
	built, err := p.BuildStock(ctx, demo, "v1.0.0")
	if err != nil || !built {
		t.Fatalf("BuildStock: %v, built %v", err, built)
	}
	dir := p.Layout().Stock("demo", "v1.0.0")
	if got, err := os.ReadFile(filepath.Join(dir, "demo")); err != nil || !strings.Contains(string(got), "main.version=v1.0.0+stock") {
		t.Errorf("stock binary %q %v", got, err)
	}
	if len(b.specs) != 1 || !slices.ContainsFunc(b.specs[0].Env, func(e string) bool { return strings.HasPrefix(e, "GOFLAGS=-overlay=") }) {
		t.Errorf("specs %+v, want one build with an overlay", b.specs)
	}
	if built, err := p.BuildStock(ctx, demo, "v1.0.0"); err != nil || built || len(b.specs) != 1 || !strings.Contains(out.String(), "stock demo v1.0.0: up to date") {
		t.Errorf("rerun: %v, built %v, %d builds, said %q", err, built, len(b.specs), out.String())
	}

	tag := newWorld(t, setup{buildtag: true})
	b = &fakeBuilder{}
	if _, err := tag.pipeline(b).BuildStock(ctx, demo, "v1.0.0"); err == nil || !strings.Contains(err.Error(), "no patch of") || len(b.specs) != 0 {
		t.Errorf("series without a kmem patch: %v, %d builds; want a refusal before the build", err, len(b.specs))
	}

	w = newWorld(t, setup{})
	p = w.pipeline(b)
	wrong := demo
	wrong.VersionWant = func(*pins.Lock, string) []string { return []string{"other"} }
	if _, err := p.BuildStock(ctx, wrong, "v1.0.0"); err == nil {
		t.Fatal("a failed check passed")
	}
	dir = p.Layout().Stock("demo", "v1.0.0")
	if exists(filepath.Join(dir, "demo")) || exists(filepath.Join(dir, "inputs.stamp")) {
		t.Errorf("a failed check left the binary or the stamp in %s", dir)
	}
}

// The public key is published once: an unchanged key leaves the copy as
// it is (same file), a new key replaces it.
func TestPublishPublicKey(t *testing.T) {
	w := newWorld(t, setup{})
	p := w.publisher(t, &fakeBuilder{})
	if err := p.PublishPublicKey(); err != nil {
		t.Fatal(err)
	}
	dst := p.Layout().ReleasePub()
	want, _ := os.ReadFile(p.Key.Public)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("published key %q %v, want %q", got, err, want)
	}
	before, _ := os.Stat(dst)
	if err := p.PublishPublicKey(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(dst); !os.SameFile(before, after) {
		t.Error("an unchanged key was written again")
	}
	write(t, p.Key.Public, "other key\n")
	if err := p.PublishPublicKey(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "other key\n" {
		t.Errorf("a new key was not published: %q", got)
	}
}
