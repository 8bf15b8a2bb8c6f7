//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	"github.com/nokmem/nokmem/internal/elfcheck"
	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// Kubelet builds and proves the patched kubelet v1.12.4.
type Kubelet mg.Namespace

const (
	kubeProject = "kubernetes"
	kubeVersion = "v1.12.4"
)

// Build runs the whole pipeline for kubelet v1.12.4 (h1-verified inputs →
// patches → static build with the pinned toolchain → ELF check → atomic
// publish into _output/kubernetes/v1.12.4). With unchanged inputs it does no
// work and says where the artifacts are. JSON summary on stdout.
func (Kubelet) Build(ctx context.Context) error {
	_, err := pipelineBuild(ctx, kubeProject, kubeVersion, []string{"--version"})
	return err
}

// Tree assembles (when its inputs changed) and patches the kubelet's GOPATH
// tree in _build/kubernetes/v1.12.4; the kmem proof and upstream tests use it.
func (Kubelet) Tree(ctx context.Context) error {
	_, _, err := pipelineTree(ctx, kubeProject, kubeVersion)
	return err
}

// TestKmem runs the behavioural kmem proof on the tree: libcontainer's own
// MemoryGroup.Apply fails the proof unpatched and passes it patched (needs
// root, cgroup v1 and FUSE).
func (Kubelet) TestKmem(ctx context.Context) error {
	mg.CtxDeps(ctx, Kubelet.Tree)
	return sh.RunV("go", "test", "-count=1", "-v", "-run", "^TestKmemProof$", "./internal/kmemproof")
}

// TestUpstream runs the tree's own unit tests (runc cgroups/fs,
// apimachinery's JSON and YAML serializers, pkg/kubelet/cm) with the pinned
// toolchain.
func (Kubelet) TestUpstream(ctx context.Context) error {
	mg.CtxDeps(ctx, Kubelet.Tree)
	return sh.RunV("go", "test", "-count=1", "-v", "-timeout=30m", "-run", "^TestKubeletSubset", "./internal/upstreamtest")
}

// Checksums rebuilds the kubelet (ignoring the no-op stamp, into
// _build/kubernetes/v1.12.4/rebuild; the build cache is used) and fails
// unless its sha256 equals the one committed in
// vendor-pins/kubernetes/v1.12.4.CHECKSUMS.
func (Kubelet) Checksums(ctx context.Context) error {
	return pipelineChecksums(ctx, kubeProject, kubeVersion, []string{"--version"})
}

// expectedSumsPath is the committed checksum file of a project version.
func expectedSumsPath(project, version string) string {
	return filepath.Join(pinsDir, project, version+".CHECKSUMS")
}

// buildEnvPath is the committed record of the Debian packages (C toolchain,
// glibc, libseccomp) that the committed checksums were built with.
func buildEnvPath(project, version string) string {
	return filepath.Join(pinsDir, project, version+".BUILDENV")
}

// checkReproduced compares built sha256s with the committed CHECKSUMS. On a
// mismatch it says whether this machine's Debian packages differ from the
// ones recorded in .BUILDENV, since a static cgo binary links their code in.
func checkReproduced(ctx context.Context, lock *pins.Lock, sha map[string]string) error {
	err := publish.CheckExpected(expectedSumsPath(lock.Project, lock.Version), sha)
	if !errors.Is(err, publish.ErrNotReproduced) {
		return err
	}
	envFile := buildEnvPath(lock.Project, lock.Version)
	data, rerr := os.ReadFile(envFile)
	if rerr != nil {
		return fmt.Errorf("%w\n(no record of the build environment: %v)", err, rerr)
	}
	recorded, perr := inputs.ParsePackages(data)
	if perr != nil {
		return fmt.Errorf("%w\n(%s: %v)", err, envFile, perr)
	}
	current, cerr := lockSystemPackages(ctx, lock)
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

// buildPlan is everything a build of project@version needs before running.
type buildPlan struct {
	lock     *pins.Lock
	set      *patchset.Set
	spec     gobuild.Spec // without Go and OutDir
	stamp    *publish.Stamp
	buildDir string
	dest     string // output folder
}

// planBuild loads the lock and the patches and derives the build spec and its input stamp.
func planBuild(ctx context.Context, project, version string) (*buildPlan, error) {
	lock, err := pins.Load(pinsDir, project, version)
	if err != nil {
		return nil, err
	}
	set, err := patchset.Load(filepath.Join("patches", project, version))
	if err != nil {
		return nil, err
	}
	x, err := gobuild.ExpandX(lock.Build.LDFlagsX, gobuild.Vars{
		Version: lock.Version, Commit: lock.Source.Commit, CommitTime: lock.Source.CommitTime, Marker: set.Marker(),
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", project, version, err)
	}
	buildDir, err := filepath.Abs(filepath.Join("_build", project, version))
	if err != nil {
		return nil, err
	}
	tree := srctree.Paths(lock, buildDir)
	spec := gobuild.Spec{
		GOPATH: tree.GOPATH, ImportPath: lock.Source.ImportPath, Packages: lock.Build.Packages,
		OutDir: filepath.Join(buildDir, "bin"), CGO: lock.Build.CGO, Static: lock.Build.Static, Tags: lock.Build.Tags, X: x,
	}
	debs, err := lockSystemPackages(ctx, lock)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", project, version, err)
	}
	stamp, err := buildStamp(lock, set, spec, debs)
	if err != nil {
		return nil, err
	}
	return &buildPlan{lock: lock, set: set, spec: spec, stamp: stamp, buildDir: buildDir, dest: filepath.Join("_output", project, version)}, nil
}

// buildChecked fetches the toolchain, prepares the patched tree, builds every
// binary into outDir and checks each; it returns the binaries' paths.
func buildChecked(ctx context.Context, p *buildPlan, outDir string, versionArgs []string) ([]string, error) {
	project, version := p.lock.Project, p.lock.Version
	goBin, err := toolchain.Go(ctx, newFetcher(), p.lock.Toolchain)
	if err != nil {
		return nil, err
	}
	step := time.Now()
	if _, _, err := pipelineTree(ctx, project, version); err != nil {
		return nil, err
	}
	slog.Info("source tree ready", "project", project, "version", version, "took", time.Since(step).Round(time.Millisecond))
	spec := p.spec
	spec.Go, spec.OutDir = goBin, outDir
	step = time.Now()
	if err := gobuild.Build(ctx, spec); err != nil {
		return nil, err
	}
	slog.Info("built", "project", project, "version", version, "took", time.Since(step).Round(time.Millisecond))
	tv, err := toolchain.ParseVersion(p.lock.Toolchain)
	if err != nil {
		return nil, err
	}
	var bins []string
	for _, pkg := range p.lock.Build.Packages {
		bin := filepath.Join(outDir, pkg.Output)
		if err := checkBinary(ctx, goBin, bin, tv.Go, p.lock, p.set, versionArgs); err != nil {
			return nil, err
		}
		bins = append(bins, bin)
	}
	return bins, nil
}

// pipelineBuild builds and publishes every binary of project@version and
// returns their sha256 by file name. versionArgs, when set, are run on each
// binary, whose output must show <version>+<patch-set marker>. Other
// projects' magefiles (runc) call it with their own project and version.
func pipelineBuild(ctx context.Context, project, version string, versionArgs []string) (map[string]string, error) {
	start := time.Now()
	p, err := planBuild(ctx, project, version)
	if err != nil {
		return nil, err
	}
	if ok, err := publish.Current(p.dest, p.stamp); err != nil {
		return nil, err
	} else if ok {
		sha, err := publishedSums(p.dest)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "%s %s: up to date, nothing to do: artifacts in %s (checked in %s)\n", project, version, p.dest, time.Since(start).Round(time.Millisecond))
		return sha, printJSON(map[string]any{"project": project, "version": version, "output": p.dest, "upToDate": true, "sha256": sha})
	}
	bins, err := buildChecked(ctx, p, p.spec.OutDir, versionArgs)
	if err != nil {
		return nil, err
	}
	sha, err := publish.Publish(p.dest, bins, p.stamp)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%s %s: published %s in %s\n", project, version, p.dest, time.Since(start).Round(time.Second))
	if err := publish.CheckExpected(expectedSumsPath(project, version), sha); err != nil {
		// Build publishes what it built; the Checksums target turns this into a failure.
		slog.Warn("rebuild does not match the committed checksums", "err", err)
	}
	return sha, printJSON(map[string]any{"project": project, "version": version, "output": p.dest, "upToDate": false, "sha256": sha,
		"gitVersion": p.lock.Version + "+" + p.set.Marker()})
}

// pipelineChecksums rebuilds project@version into <buildDir>/rebuild
// (nothing is published) and compares the binaries with the committed
// vendor-pins/<project>/<version>.CHECKSUMS.
func pipelineChecksums(ctx context.Context, project, version string, versionArgs []string) error {
	p, err := planBuild(ctx, project, version)
	if err != nil {
		return err
	}
	out := filepath.Join(p.buildDir, "rebuild")
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	bins, err := buildChecked(ctx, p, out, versionArgs)
	if err != nil {
		return err
	}
	sha := map[string]string{}
	for _, b := range bins {
		if sha[filepath.Base(b)], err = sums.File(sums.SHA256, b); err != nil {
			return err
		}
	}
	file := expectedSumsPath(project, version)
	if err := checkReproduced(ctx, p.lock, sha); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s %s: rebuild reproduces %s\n", project, version, file)
	return printJSON(map[string]any{"project": project, "version": version, "reproduced": file, "sha256": sha})
}

// checkBinary checks one built binary: built by the pinned Go, static or
// old-glibc-only ELF, and stamped with version+marker.
func checkBinary(ctx context.Context, goBin, bin, goVersion string, lock *pins.Lock, set *patchset.Set, versionArgs []string) error {
	if err := gobuild.CheckGoVersion(ctx, goBin, bin, goVersion); err != nil {
		return err
	}
	r, err := elfcheck.Check(bin, elfcheck.CentOS7GLIBC)
	if err != nil {
		return err
	}
	if lock.Build.Static && !r.Static() {
		return fmt.Errorf("%s: lock asks for a static build, but it has interpreter %q and needs %v", bin, r.Interp, r.Needed)
	}
	if len(versionArgs) == 0 {
		return nil
	}
	out, err := exec.CommandContext(ctx, bin, versionArgs...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(versionArgs, " "), err, out)
	}
	want := lock.Version + "+" + set.Marker()
	if !strings.Contains(string(out), want) {
		return fmt.Errorf("%s %s printed %q, want it to show %s", bin, strings.Join(versionArgs, " "), strings.TrimSpace(string(out)), want)
	}
	fmt.Fprintf(os.Stderr, "%s %s: %s", filepath.Base(bin), strings.Join(versionArgs, " "), out)
	return nil
}

// buildStamp names every input of a build: the lock file, each patch, the
// toolchain, the build command line and, for cgo builds, the Debian packages
// whose code is linked in (a glibc update changes a static binary).
func buildStamp(lock *pins.Lock, set *patchset.Set, spec gobuild.Spec, debs []inputs.SystemPackage) (*publish.Stamp, error) {
	s := &publish.Stamp{}
	if err := s.AddFile("lock", pins.Path(pinsDir, lock.Project, lock.Version)); err != nil {
		return nil, err
	}
	for _, p := range set.Patches {
		s.Add("patch "+p.Name, p.Bytes)
	}
	s.Add("toolchain", []byte(lock.Toolchain.String()+" "+lock.Toolchain.H1))
	for _, p := range lock.Build.Packages {
		s.Add("go "+p.Package, []byte(fmt.Sprintf("CGO_ENABLED=%v %s", spec.CGO, strings.Join(spec.Args(p), " "))))
	}
	for _, d := range debs {
		s.Add("deb "+d.Name, []byte(d.Version))
	}
	return s, nil
}

// publishedSums reads the sha256 of the artifacts in an output folder.
func publishedSums(dest string) (map[string]string, error) {
	return sums.Parse(filepath.Join(dest, sums.SHA256.SumsFile))
}

// treeStampFile, in the build dir, records the lock and patch-set digests
// of the patched tree beside it.
const treeStampFile = "tree.stamp"

// pipelineTree returns the patched GOPATH tree of project@version in
// _build/<project>/<version>, assembling it again only when the lock or the
// patches changed since it was made.
func pipelineTree(ctx context.Context, project, version string) (*pins.Lock, srctree.Tree, error) {
	lock, err := pins.Load(pinsDir, project, version)
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	set, err := patchset.Load(filepath.Join("patches", project, version))
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	buildDir, err := filepath.Abs(filepath.Join("_build", project, version))
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	want := fmt.Sprintf("lock %s\npatches %s\n", lock.Digest(), set.Digest())
	stampPath := filepath.Join(buildDir, treeStampFile)
	tree := srctree.Paths(lock, buildDir)
	if got, err := os.ReadFile(stampPath); err == nil && string(got) == want {
		// Same inputs: keep the tree if it carries the series (or takes it
		// cleanly, as after a fresh inputs:assemble); else assemble again.
		if st, err := set.Status(tree.Root); err == nil {
			if st == patchset.Unpatched {
				if _, err := set.Apply(tree.Root); err != nil {
					return nil, srctree.Tree{}, err
				}
			}
			return lock, tree, nil
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, srctree.Tree{}, err
	}
	if err := os.Remove(stampPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, srctree.Tree{}, err
	}
	tree, err = srctree.Assemble(ctx, newFetcher(), lock, buildDir)
	if err != nil {
		return nil, srctree.Tree{}, err
	}
	if _, err := set.Apply(tree.Root); err != nil {
		return nil, srctree.Tree{}, err
	}
	slog.Info("patches applied", "project", project, "version", version, "patches", len(set.Patches), "marker", set.Marker())
	if err := os.WriteFile(stampPath, []byte(want), 0o644); err != nil {
		return nil, srctree.Tree{}, err
	}
	return lock, tree, nil
}
