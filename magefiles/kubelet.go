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

// Checksums builds (incrementally) and fails unless the kubelet's sha256
// equals the one committed in vendor-pins/kubernetes/v1.12.4.CHECKSUMS.
func (Kubelet) Checksums(ctx context.Context) error {
	sha, err := pipelineBuild(ctx, kubeProject, kubeVersion, []string{"--version"})
	if err != nil {
		return err
	}
	file := expectedSumsPath(kubeProject, kubeVersion)
	if err := publish.CheckExpected(file, sha); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "kubelet: rebuild reproduces %s\n", file)
	return nil
}

// expectedSumsPath is the committed checksum file of a project version.
func expectedSumsPath(project, version string) string {
	return filepath.Join(pinsDir, project, version+".CHECKSUMS")
}

// pipelineBuild builds and publishes every binary of project@version and
// returns their sha256 by file name. versionArgs, when set, are run on each
// binary, whose output must show <version>+<patch-set marker>. Other
// projects' magefiles (runc) call it with their own project and version.
func pipelineBuild(ctx context.Context, project, version string, versionArgs []string) (map[string]string, error) {
	start := time.Now()
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
	stamp, err := buildStamp(lock, set, spec)
	if err != nil {
		return nil, err
	}
	dest := filepath.Join("_output", project, version)
	if ok, err := publish.Current(dest, stamp); err != nil {
		return nil, err
	} else if ok {
		sha, err := publishedSums(dest)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "%s %s: up to date, nothing to do: artifacts in %s (checked in %s)\n", project, version, dest, time.Since(start).Round(time.Millisecond))
		return sha, printJSON(map[string]any{"project": project, "version": version, "output": dest, "upToDate": true, "sha256": sha})
	}

	goBin, err := toolchain.Go(ctx, newFetcher(), lock.Toolchain)
	if err != nil {
		return nil, err
	}
	spec.Go = goBin
	step := time.Now()
	if _, _, err := pipelineTree(ctx, project, version); err != nil {
		return nil, err
	}
	slog.Info("source tree ready", "project", project, "version", version, "took", time.Since(step).Round(time.Millisecond))

	step = time.Now()
	if err := gobuild.Build(ctx, spec); err != nil {
		return nil, err
	}
	slog.Info("built", "project", project, "version", version, "took", time.Since(step).Round(time.Millisecond))
	tv, err := toolchain.ParseVersion(lock.Toolchain)
	if err != nil {
		return nil, err
	}
	var bins []string
	for _, p := range lock.Build.Packages {
		bin := filepath.Join(spec.OutDir, p.Output)
		if err := checkBinary(ctx, goBin, bin, tv.Go, lock, set, versionArgs); err != nil {
			return nil, err
		}
		bins = append(bins, bin)
	}
	sha, err := publish.Publish(dest, bins, stamp)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%s %s: published %s in %s\n", project, version, dest, time.Since(start).Round(time.Second))
	if err := publish.CheckExpected(expectedSumsPath(project, version), sha); err != nil {
		// Build publishes what it built; the Checksums target turns this into a failure.
		slog.Warn("rebuild does not match the committed checksums", "err", err)
	}
	return sha, printJSON(map[string]any{"project": project, "version": version, "output": dest, "upToDate": false, "sha256": sha,
		"gitVersion": lock.Version + "+" + set.Marker()})
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
// toolchain and the build command line.
func buildStamp(lock *pins.Lock, set *patchset.Set, spec gobuild.Spec) (*publish.Stamp, error) {
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
	return s, nil
}

// publishedSums reads the sha256 of the artifacts in an output folder.
func publishedSums(dest string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dest, "SHA256SUMS"))
	if err != nil {
		return nil, err
	}
	sha := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		d, name, ok := strings.Cut(line, "  ")
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", filepath.Join(dest, "SHA256SUMS"), line)
		}
		sha[name] = d
	}
	return sha, nil
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
		if st, err := set.Status(tree.Root); err == nil && st == patchset.Patched {
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
