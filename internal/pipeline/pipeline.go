// Package pipeline is the version-generic build of one project version:
//
//	plan (matrix, lock, fix kind, patches, build spec, input stamp)
//	→ inputs (pinned toolchain, h1-checked source tree)
//	→ fix (apply the patch series, check that the tree has kmem_disabled.go for -tags nokmem,
//	  or, for fix none, that its cgroupfs driver cannot activate kmem)
//	→ build → checks (Go version, static ELF, version output) → publish
//
// The other build flows live here too, each a sequence that checks its
// inputs before it builds and publishes by rename or exchange:
// BuildUnpatched (the proof build without patches), BuildStock (the
// kubelet without its kmem patch, for the node test), and, on a Publisher
// (signing key, vulnerability accounts, source date), the steps after the
// binaries: ReleaseStep (release sets), VerifyStep (the verify node
// program, behind NodeProgram), BundleStep/BuildPair (the node bundle) and
// YumStep (RPMs and the yum repository). RunStep skips a step while its
// record in _build/stamps matches; DefaultPair reads the default versions
// from the matrix; the layout package names every path.
//
// Fetching and building sit behind small interfaces (Inputs, Builder,
// NodeProgram), so that unit tests run every flow with a file:// module
// proxy and fakes in about a second each. The magefiles choose versions,
// keys and output folders, call these with ModInputs, GoBuilder and
// VerifyProgram, and print.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/kmemsrc"
	"github.com/nokmem/nokmem/internal/layout"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// Inputs provides a build's h1-checked inputs.
type Inputs interface {
	// Toolchain fetches and checks the pinned toolchain; it returns its bin/go.
	Toolchain(ctx context.Context, m pins.Module) (string, error)
	// Assemble builds l's source tree in buildDir from h1-checked modules.
	Assemble(ctx context.Context, l *pins.Lock, buildDir string) (srctree.Tree, error)
}

// Builder builds and checks binaries.
type Builder interface {
	// SystemPackages lists the system packages whose code a build of l links in.
	SystemPackages(ctx context.Context, l *pins.Lock) ([]inputs.SystemPackage, error)
	// Build runs the build the spec describes.
	Build(ctx context.Context, s gobuild.Spec) error
	// Check checks one built binary (see Check).
	Check(ctx context.Context, c Check) error
}

// Check is what a built binary must satisfy.
type Check struct {
	GoBin, Binary string
	GoVersion     string // e.g. go1.26.11: `go version BINARY` must name it
	Static        bool   // no PT_INTERP, no DT_NEEDED
	VersionArgs   []string
	VersionWant   []string // substrings `Binary VersionArgs...` must print
}

// Project says how a project's binaries show their version.
type Project struct {
	// Name is the folder under vendor-pins/ and patches/, e.g. "kubernetes".
	Name string
	// VersionArgs are run on each binary (e.g. --version); none: no check.
	VersionArgs []string
	// VersionWant returns the substrings the version output must contain.
	VersionWant func(l *pins.Lock, marker string) []string
}

// Pipeline builds project versions of one repository.
type Pipeline struct {
	// Root is the repository root: vendor-pins/, patches/, _build/ and _output/ are under it.
	Root    string
	Inputs  Inputs
	Builder Builder
	// Log receives progress; slog.Default() when nil.
	Log *slog.Logger
	// Out receives one human line per outcome (stderr in the magefiles); nothing when nil.
	Out io.Writer
	// ProgressEvery is how often a running build says on Out how many of
	// its packages are built and for how long it has run; DefaultProgressEvery when 0.
	ProgressEvery time.Duration
}

// DefaultProgressEvery is the interval of the progress line.
const DefaultProgressEvery = 30 * time.Second

// Plan is everything a build of project@version needs before running.
type Plan struct {
	Project  Project
	Lock     *pins.Lock
	Patches  *patchset.Set
	Spec     gobuild.Spec // without Go
	Stamp    *publish.Stamp
	BuildDir string // _build/<project>/<version>
	Dest     string // _output/<project>/<version>
}

// Marker is the version marker of the plan's patch series.
func (p *Plan) Marker() string { return p.Patches.Marker() }

// Result is a published build.
type Result struct {
	Project, Version string
	Output           string
	UpToDate         bool
	SHA256           map[string]string // by file name
	GitVersion       string            // version+marker
}

func (p *Pipeline) log() *slog.Logger {
	if p.Log == nil {
		return slog.Default()
	}
	return p.Log
}

func (p *Pipeline) say(format string, a ...any) {
	if p.Out != nil {
		fmt.Fprintf(p.Out, format+"\n", a...)
	}
}

// Layout is the layout of the repository at Root.
func (p *Pipeline) Layout() layout.Layout { return layout.New(p.Root) }

// PinsDir is the lock folder.
func (p *Pipeline) PinsDir() string { return p.Layout().Pins() }

// PatchDir is project@version's patch folder.
func (p *Pipeline) PatchDir(project, version string) string {
	return p.Layout().Patches(project, version)
}

// ExpectedSumsPath is the committed checksum file of a project version.
func (p *Pipeline) ExpectedSumsPath(project, version string) string {
	return filepath.Join(p.PinsDir(), project, version+".CHECKSUMS")
}

// BuildEnvPath is the committed record of the system packages the
// committed checksums were built with.
func (p *Pipeline) BuildEnvPath(project, version string) string {
	return filepath.Join(p.PinsDir(), project, version+".BUILDENV")
}

// Load reads project@version's lock (refused when the matrix marks the
// version unbuildable) and its patch series, checked against the fix kind:
// a patch lock needs a non-empty series; a buildtag or none lock may have
// none (a missing folder is an empty series) or compatibility patches.
func (p *Pipeline) Load(project, version string) (*pins.Lock, *patchset.Set, error) {
	l, err := pins.Load(p.PinsDir(), project, version)
	if err != nil {
		return nil, nil, err
	}
	dir := p.PatchDir(project, version)
	set, err := patchset.Load(dir)
	switch {
	case err != nil && l.Fix.Kind != pins.FixPatch && errors.Is(err, os.ErrNotExist):
		set = &patchset.Set{Dir: dir}
	case err != nil:
		return nil, nil, fmt.Errorf("%s %s: %w", project, version, err)
	case l.Fix.Kind == pins.FixPatch && len(set.Patches) == 0:
		return nil, nil, fmt.Errorf("%s %s: the lock's fix is %s, but %s has no patches", project, version, pins.FixPatch, dir)
	}
	return l, set, nil
}

// Plan loads the lock and the patches and derives the build spec and its input stamp.
func (p *Pipeline) Plan(ctx context.Context, proj Project, version string) (*Plan, error) {
	l, set, err := p.Load(proj.Name, version)
	if err != nil {
		return nil, err
	}
	buildDir, err := filepath.Abs(p.Layout().Build(proj.Name, version))
	if err != nil {
		return nil, err
	}
	spec, err := Spec(l, srctree.Paths(l, buildDir), set.Marker(), filepath.Join(buildDir, "bin"))
	if err != nil {
		return nil, err
	}
	debs, err := p.Builder.SystemPackages(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", proj.Name, version, err)
	}
	stamp, err := Stamp(pins.Path(p.PinsDir(), l.Project, l.Version), l, set, spec, debs)
	if err != nil {
		return nil, err
	}
	return &Plan{Project: proj, Lock: l, Patches: set, Spec: spec, Stamp: stamp, BuildDir: buildDir,
		Dest: p.Layout().Output(proj.Name, version)}, nil
}

// Spec is the gobuild spec of l in tree with the given patch-set marker (without Go).
func Spec(l *pins.Lock, tree srctree.Tree, marker, outDir string) (gobuild.Spec, error) {
	x, err := gobuild.ExpandX(l.Build.LDFlagsX, gobuild.Vars{
		Version: l.Version, Commit: l.Source.Commit, CommitTime: l.Source.CommitTime, Marker: marker,
	})
	if err != nil {
		return gobuild.Spec{}, fmt.Errorf("%s %s: %w", l.Project, l.Version, err)
	}
	return gobuild.Spec{
		GOPATH: tree.GOPATH, ImportPath: l.Source.ImportPath, Packages: l.Build.Packages,
		OutDir: outDir, CGO: l.Build.CGO, Static: l.Build.Static, Tags: l.Build.Tags, X: x,
		Env: srctree.ModEnv(l, tree), // module mode, offline, for a go.mod tree
	}, nil
}

// Stamp names every input of a build: the lock file, each patch, the
// toolchain, the build command line and, for cgo builds, the system packages
// whose code is linked in (a glibc update changes a static binary).
func Stamp(lockFile string, l *pins.Lock, set *patchset.Set, spec gobuild.Spec, debs []inputs.SystemPackage) (*publish.Stamp, error) {
	s := &publish.Stamp{}
	if err := s.AddFile("lock", lockFile); err != nil {
		return nil, err
	}
	for _, pt := range set.Patches {
		s.Add("patch "+pt.Name, pt.Bytes)
	}
	s.Add("toolchain", []byte(l.Toolchain.String()+" "+l.Toolchain.H1))
	for _, pkg := range l.Build.Packages {
		s.Add("go "+pkg.Package, []byte(fmt.Sprintf("CGO_ENABLED=%v %s", spec.CGO, strings.Join(spec.Args(pkg), " "))))
	}
	for _, d := range debs {
		s.Add("deb "+d.Name, []byte(d.Version))
	}
	return s, nil
}

// treeStampFile, in the build dir, records the lock and patch-set digests
// of the fixed tree beside it.
const treeStampFile = "tree.stamp"

// Tree returns the fixed source tree of project@version in
// _build/<project>/<version>, assembling it again only when the lock or the
// patches changed since it was made. The fix is applied (patch series) or
// checked (the buildtag lock's kmem_disabled.go must be in the tree).
func (p *Pipeline) Tree(ctx context.Context, project, version string) (*pins.Lock, srctree.Tree, error) {
	l, set, err := p.Load(project, version)
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	buildDir, err := filepath.Abs(p.Layout().Build(project, version))
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	tree, err := p.tree(ctx, l, set, buildDir)
	return l, tree, err
}

// tree is Tree for a loaded lock and patch series.
func (p *Pipeline) tree(ctx context.Context, l *pins.Lock, set *patchset.Set, buildDir string) (srctree.Tree, error) {
	project, version := l.Project, l.Version
	want := fmt.Sprintf("lock %s\npatches %s\n", l.Digest(), set.Digest())
	stampPath := filepath.Join(buildDir, treeStampFile)
	tree := srctree.Paths(l, buildDir)
	if got, err := os.ReadFile(stampPath); err == nil && string(got) == want {
		// Same inputs: keep the tree if it carries the series (or takes it
		// cleanly, as after a fresh inputs:assemble); else assemble again.
		if st, err := set.Status(tree.Root); err == nil {
			if st == patchset.Unpatched {
				if _, err := set.Apply(tree.Root); err != nil {
					return srctree.Tree{}, err
				}
			}
			return tree, checkFix(l, tree)
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return srctree.Tree{}, err
	}
	if err := os.Remove(stampPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return srctree.Tree{}, err
	}
	tree, err := p.Inputs.Assemble(ctx, l, buildDir)
	if err != nil {
		return srctree.Tree{}, err
	}
	if _, err := set.Apply(tree.Root); err != nil {
		return srctree.Tree{}, fmt.Errorf("%s %s: %w", project, version, err)
	}
	if err := checkFix(l, tree); err != nil {
		return srctree.Tree{}, err
	}
	p.log().Info("fix in place", "project", project, "version", version, "fix", l.Fix.Kind, "patches", len(set.Patches), "marker", set.Marker())
	if err := os.WriteFile(stampPath, []byte(want), 0o644); err != nil {
		return srctree.Tree{}, err
	}
	return tree, nil
}

// ErrNoKmemDisabled is returned for a buildtag lock whose tree lacks the
// kmem_disabled.go that -tags nokmem would select.
var ErrNoKmemDisabled = errors.New("the nokmem build tag has nothing to select")

// ErrActivatesKmem is returned for a none lock whose cgroupfs driver can
// activate kmem after all.
var ErrActivatesKmem = errors.New("the cgroupfs driver can activate kmem")

// checkFix checks the tree against the lock's fix: a buildtag lock needs
// kmem_disabled.go (without it the tag selects nothing and the binary would
// still activate kmem); a none lock's cgroupfs driver (the package of
// fix.requires) must neither call EnableKernelMemoryAccounting from
// MemoryGroup.Apply nor declare it.
func checkFix(l *pins.Lock, tree srctree.Tree) error {
	if l.Fix.Kind == pins.FixPatch {
		return nil
	}
	f, err := srctree.File(l, tree, l.Fix.Requires)
	if err != nil {
		return fmt.Errorf("%s %s: fix %s: %w", l.Project, l.Version, l.Fix.Kind, err)
	}
	if l.Fix.Kind == pins.FixNone {
		rep, err := kmemsrc.Read(filepath.Dir(f))
		if err != nil {
			return fmt.Errorf("%s %s: fix %s: %w", l.Project, l.Version, pins.FixNone, err)
		}
		if rep.Activates() {
			return fmt.Errorf("%s %s: fix %s: %w: %s (MemoryGroup.Apply calls %s: %v; declared in %v); this tree needs fix: buildtag or patch",
				l.Project, l.Version, pins.FixNone, ErrActivatesKmem, filepath.Dir(f), kmemsrc.Enabler, rep.ApplyCalls, rep.Declared)
		}
		return nil
	}
	if _, err := os.Stat(f); err != nil {
		return fmt.Errorf("%s %s: fix %s: %w: %w (this tree needs fix: patch)", l.Project, l.Version, pins.FixBuildTag, ErrNoKmemDisabled, err)
	}
	return nil
}

// BuildChecked fetches the toolchain, prepares the fixed tree, builds every
// binary into outDir and checks each; it returns the binaries' paths.
func (p *Pipeline) BuildChecked(ctx context.Context, plan *Plan, outDir string) ([]string, error) {
	l := plan.Lock
	goBin, err := p.Inputs.Toolchain(ctx, l.Toolchain)
	if err != nil {
		return nil, err
	}
	step := time.Now()
	if _, err := p.tree(ctx, l, plan.Patches, plan.BuildDir); err != nil {
		return nil, err
	}
	p.log().Info("source tree ready", "project", l.Project, "version", l.Version, "took", time.Since(step).Round(time.Millisecond))
	spec := plan.Spec
	spec.Go, spec.OutDir, spec.Progress = goBin, outDir, &gobuild.Progress{}
	step = time.Now()
	stop := p.heartbeat(l, step, spec.Progress)
	err = p.Builder.Build(ctx, spec)
	stop()
	if err != nil {
		return nil, err
	}
	took := time.Since(step).Round(time.Second)
	if snap := spec.Progress.Snapshot(); snap.Started {
		p.say("%s %s: built %s, %s", l.Project, l.Version, snap, took)
	}
	p.log().Info("built", "project", l.Project, "version", l.Version, "took", took)
	tv, err := goVersion(l.Toolchain)
	if err != nil {
		return nil, err
	}
	var want []string
	if plan.Project.VersionWant != nil {
		want = plan.Project.VersionWant(l, plan.Marker())
	}
	var bins []string
	for _, pkg := range l.Build.Packages {
		bin := filepath.Join(outDir, pkg.Output)
		c := Check{GoBin: goBin, Binary: bin, GoVersion: tv, Static: l.Build.Static, VersionArgs: plan.Project.VersionArgs, VersionWant: want}
		if err := p.Builder.Check(ctx, c); err != nil {
			return nil, err
		}
		bins = append(bins, bin)
	}
	return bins, nil
}

// heartbeat says on Out every ProgressEvery how far the build of l is
// (packages ready out of the total, how many came from the build cache) and
// the elapsed time, until the returned stop is called (Out, not the log:
// mage discards log output unless run with -v). Until the builder has
// counted the packages, the line says so.
func (p *Pipeline) heartbeat(l *pins.Lock, start time.Time, progress *gobuild.Progress) (stop func()) {
	every := p.ProgressEvery
	if every <= 0 {
		every = DefaultProgressEvery
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				snap, step := progress.Snapshot(), ""
				if snap.Started && snap.Done == snap.Total {
					step = ", linking"
				}
				p.say("%s %s: building, %s%s, %s", l.Project, l.Version, snap, step, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// Build builds, checks and publishes every binary of proj@version, unless
// the published artifacts already come from the same inputs.
func (p *Pipeline) Build(ctx context.Context, proj Project, version string) (*Result, error) {
	start := time.Now()
	plan, err := p.Plan(ctx, proj, version)
	if err != nil {
		return nil, err
	}
	res := &Result{Project: proj.Name, Version: version, Output: plan.Dest, GitVersion: version + "+" + plan.Marker()}
	checked := p.checkedRecord(plan)
	ok, _, err := checked.Check()
	if err != nil {
		return nil, err
	}
	if !ok {
		// No record of a full check of these very files: hash them.
		if ok, err = publish.Current(plan.Dest, plan.Stamp); err != nil {
			return nil, err
		}
		if err := checked.Forget(); err != nil {
			return nil, err
		}
		if ok {
			if err := checked.Record(); err != nil {
				return nil, err
			}
		}
	}
	if ok {
		if res.SHA256, err = sums.Parse(filepath.Join(plan.Dest, sums.SHA256.SumsFile)); err != nil {
			return nil, err
		}
		res.UpToDate = true
		p.say("%s %s: up to date, nothing to do: artifacts in %s (checked in %s)", proj.Name, version, plan.Dest, time.Since(start).Round(time.Millisecond))
		return res, nil
	}
	bins, err := p.BuildChecked(ctx, plan, plan.Spec.OutDir)
	if err != nil {
		return nil, err
	}
	if res.SHA256, err = publish.Publish(plan.Dest, bins, plan.Stamp); err != nil {
		return nil, err
	}
	if err := checked.Record(); err != nil {
		return nil, err
	}
	p.say("%s %s: published %s in %s", proj.Name, version, plan.Dest, time.Since(start).Round(time.Second))
	if err := publish.CheckExpected(p.ExpectedSumsPath(proj.Name, version), res.SHA256); err != nil {
		// Build publishes what it built; Checksums turns this into a failure.
		p.log().Warn("rebuild does not match the committed checksums", "err", err)
	}
	return res, nil
}

// checkedRecord is the record (_build/stamps/<project>-<version>) of the
// published binaries and INPUTS stamp as they were when last published or
// hashed against their checksums: while the stamp and those files are
// unchanged (size, mode, mtime, inode), a rerun need not hash them again.
func (p *Pipeline) checkedRecord(plan *Plan) *stepstamp.Step {
	outs := []string{filepath.Join(plan.Dest, publish.StampFile)}
	for _, b := range plan.Lock.Build.Packages {
		outs = append(outs, filepath.Join(plan.Dest, b.Output))
	}
	return &stepstamp.Step{Name: plan.Project.Name + " " + plan.Lock.Version,
		File:   p.Layout().Record(plan.Project.Name + "-" + plan.Lock.Version),
		Inputs: plan.Stamp, Outputs: outs}
}

// Checksums rebuilds proj@version into <buildDir>/rebuild (nothing is
// published) and compares the binaries with the committed CHECKSUMS.
func (p *Pipeline) Checksums(ctx context.Context, proj Project, version string) (map[string]string, error) {
	plan, err := p.Plan(ctx, proj, version)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(plan.BuildDir, "rebuild")
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	bins, err := p.BuildChecked(ctx, plan, out)
	if err != nil {
		return nil, err
	}
	sha := map[string]string{}
	for _, b := range bins {
		if sha[filepath.Base(b)], err = sums.File(sums.SHA256, b); err != nil {
			return nil, err
		}
	}
	if err := p.CheckReproduced(ctx, plan.Lock, sha); err != nil {
		return nil, err
	}
	p.say("%s %s: rebuild reproduces %s", proj.Name, version, p.ExpectedSumsPath(proj.Name, version))
	return sha, nil
}

// CheckReproduced compares built sha256s with the committed CHECKSUMS. On a
// mismatch it says whether this machine's system packages differ from the
// ones recorded in .BUILDENV, since a static cgo binary links their code in.
func (p *Pipeline) CheckReproduced(ctx context.Context, l *pins.Lock, sha map[string]string) error {
	err := publish.CheckExpected(p.ExpectedSumsPath(l.Project, l.Version), sha)
	if !errors.Is(err, publish.ErrNotReproduced) {
		return err
	}
	envFile := p.BuildEnvPath(l.Project, l.Version)
	data, rerr := os.ReadFile(envFile)
	if rerr != nil {
		return fmt.Errorf("%w\n(no record of the build environment: %v)", err, rerr)
	}
	recorded, perr := inputs.ParsePackages(data)
	if perr != nil {
		return fmt.Errorf("%w\n(%s: %v)", err, envFile, perr)
	}
	current, cerr := p.Builder.SystemPackages(ctx, l)
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	changes := inputs.PackageChanges(recorded, current)
	if len(changes) == 0 {
		return fmt.Errorf("%w\nthe Debian packages match %s, so a Go-side input or the build itself changed", err, envFile)
	}
	return fmt.Errorf("%w\nthis machine's Debian packages differ from %s, which the committed checksum was built with:\n  %s\nif that update is wanted, commit the new sha256 and these versions:\n%s",
		err, envFile, strings.Join(changes, "\n  "), inputs.FormatPackages(current))
}
