//go:build mage

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/srctree"
)

// Kubelet builds and proves the fixed kubelet of any buildable version of
// vendor-pins/matrix.yaml (the default pair's is v1.12.4).
type Kubelet mg.Namespace

const kubeProject = "kubernetes"

// kubeVersion and runcVersion are the default pair: the versions
// vendor-pins/matrix.yaml marks default: true (pipeline.DefaultPair).
var kubeVersion, runcVersion = defaultPair()

// defaultPair reads the default pair from the matrix; without one no
// target can work, so it stops the build tool with the matrix's error.
func defaultPair() (kubelet, runc string) {
	b, err := newPipeline().DefaultPair()
	if err != nil {
		fmt.Fprintf(os.Stderr, "default pair: %v\n", err)
		os.Exit(1)
	}
	return b.Kubelet, b.Runc
}

// Build runs the whole pipeline for a buildable kubelet version
// (`go tool mage kubelet:build v1.12.4`): h1-verified inputs → fix → static
// build with the pinned toolchain → ELF and version checks → atomic publish
// into _output/kubernetes/<version>. With unchanged inputs it does no work
// and says where the artifacts are. A version the matrix does not list as
// buildable is refused with its reason and the nearest buildable version.
// JSON summary on stdout.
func (Kubelet) Build(ctx context.Context, version string) error {
	_, err := pipelineBuild(ctx, kubeProject, version, []string{"--version"})
	return err
}

// Tree assembles (when its inputs changed) and fixes the kubelet's GOPATH
// tree in _build/kubernetes/<version>; the kmem proof and upstream tests use it.
func (Kubelet) Tree(ctx context.Context, version string) error {
	_, _, err := pipelineTree(ctx, kubeProject, version)
	return err
}

// TestKmem runs the behavioural kmem proof on the version's tree:
// libcontainer's own MemoryGroup.Apply fails the proof without the fix
// (unpatched tree, or built without the nokmem tag) and passes it with the
// fix (needs root, cgroup v1 and FUSE). The default version runs
// TestKmemProof, any other TestKmemProofVersions.
func (Kubelet) TestKmem(ctx context.Context, version string) error {
	mg.CtxDeps(ctx, mg.F(Kubelet.Tree, version))
	if version == kubeVersion {
		return sh.RunV("go", "test", "-count=1", "-v", "-run", "^TestKmemProof$", "./internal/kmemproof")
	}
	return sh.RunWithV(map[string]string{kmemProofVersionsEnv: version}, "go", "test", "-count=1", "-v", "-run", "^TestKmemProofVersions$", "./internal/kmemproof")
}

// TestUpstream runs the default tree's own unit tests (runc cgroups/fs,
// apimachinery's JSON and YAML serializers, pkg/kubelet/cm) with the pinned
// toolchain. It takes no version: the package subset and its compatibility
// probes (internal/upstreamtest KubeletSubset, KubeletProbes) are written
// against the v1.12.4 tree.
func (Kubelet) TestUpstream(ctx context.Context) error {
	mg.CtxDeps(ctx, mg.F(Kubelet.Tree, kubeVersion))
	return sh.RunV("go", "test", "-count=1", "-v", "-timeout=30m", "-run", "^TestKubeletSubset", "./internal/upstreamtest")
}

// Checksums rebuilds the kubelet version (ignoring the no-op stamp, into
// _build/kubernetes/<version>/rebuild; the build cache is used) and fails
// unless its sha256 equals the one committed in
// vendor-pins/kubernetes/<version>.CHECKSUMS.
func (Kubelet) Checksums(ctx context.Context, version string) error {
	return pipelineChecksums(ctx, kubeProject, version, []string{"--version"})
}

// Audit reads the source of any kubelet version (from the module proxy) and
// says whether its libcontainer's MemoryGroup.Apply activates kmem, which
// fix applies (buildtag when kmem_disabled.go is there, else patch),
// its matrix status and whether a lock exists.
func (Kubelet) Audit(ctx context.Context, version string) error {
	return audit(ctx, kubeProject, version)
}

// newPipeline is the pipeline every build target uses: the repository root
// (mage's working directory), inputs through the module proxy, the pinned
// toolchain's go build, human lines on stderr.
func newPipeline() *pipeline.Pipeline {
	return &pipeline.Pipeline{Root: ".", Inputs: pipeline.ModInputs{Fetcher: newFetcher(), Log: slog.Default()}, Builder: pipeline.GoBuilder{CacheDir: stampsDir}, Out: os.Stderr}
}

// projectFor describes project for the pipeline: versionArgs, when set, are
// run on each binary, whose output must show <version>+<patch-set marker>.
func projectFor(project string, versionArgs []string) pipeline.Project {
	p := pipeline.Project{Name: project, VersionArgs: versionArgs}
	if len(versionArgs) > 0 {
		p.VersionWant = pipeline.Kubelet.VersionWant
	}
	return p
}

// pipelineBuild builds and publishes every binary of project@version and
// returns their sha256 by file name, printing a JSON summary on stdout.
// versionArgs, when set, are run on each binary, whose output must show
// <version>+<patch-set marker>. Other magefiles may call it.
func pipelineBuild(ctx context.Context, project, version string, versionArgs []string) (map[string]string, error) {
	return buildProject(ctx, projectFor(project, versionArgs), version)
}

// buildProject runs the pipeline's Build and prints its JSON summary.
func buildProject(ctx context.Context, proj pipeline.Project, version string) (map[string]string, error) {
	res, err := newPipeline().Build(ctx, proj, version)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"project": res.Project, "version": res.Version, "output": res.Output, "upToDate": res.UpToDate, "sha256": res.SHA256}
	if !res.UpToDate {
		out["gitVersion"] = res.GitVersion
	}
	return res.SHA256, printJSON(out)
}

// pipelineChecksums rebuilds project@version into <buildDir>/rebuild
// (nothing is published) and compares the binaries with the committed
// vendor-pins/<project>/<version>.CHECKSUMS.
func pipelineChecksums(ctx context.Context, project, version string, versionArgs []string) error {
	return checksumsProject(ctx, projectFor(project, versionArgs), version)
}

// checksumsProject runs the pipeline's Checksums and prints its JSON summary.
func checksumsProject(ctx context.Context, proj pipeline.Project, version string) error {
	p := newPipeline()
	sha, err := p.Checksums(ctx, proj, version)
	if err != nil {
		return err
	}
	return printJSON(map[string]any{"project": proj.Name, "version": version, "reproduced": p.ExpectedSumsPath(proj.Name, version), "sha256": sha})
}

// pipelineTree returns the fixed GOPATH tree of project@version in
// _build/<project>/<version>, assembling it again only when the lock or the
// patches changed since it was made.
func pipelineTree(ctx context.Context, project, version string) (*pins.Lock, srctree.Tree, error) {
	return newPipeline().Tree(ctx, project, version)
}
