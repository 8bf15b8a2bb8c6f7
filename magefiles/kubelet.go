//go:build mage

package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/srctree"
)

// Kubelet builds and proves the fixed kubelet (default v1.12.4).
type Kubelet mg.Namespace

const (
	kubeProject = "kubernetes"
	kubeVersion = "v1.12.4"
)

// Build runs the whole pipeline for the default kubelet v1.12.4 (h1-verified
// inputs → fix → static build with the pinned toolchain → ELF and version
// checks → atomic publish into _output/kubernetes/v1.12.4). With unchanged
// inputs it does no work and says where the artifacts are. JSON summary on stdout.
func (Kubelet) Build(ctx context.Context) error {
	_, err := pipelineBuild(ctx, kubeProject, kubeVersion, []string{"--version"})
	return err
}

// BuildVersion is Build for any buildable kubelet version of
// vendor-pins/matrix.yaml, e.g. `go tool mage kubelet:buildVersion v1.12.4`.
func (Kubelet) BuildVersion(ctx context.Context, version string) error {
	_, err := pipelineBuild(ctx, kubeProject, version, []string{"--version"})
	return err
}

// Tree assembles (when its inputs changed) and fixes the kubelet's GOPATH
// tree in _build/kubernetes/v1.12.4; the kmem proof and upstream tests use it.
func (Kubelet) Tree(ctx context.Context) error {
	_, _, err := pipelineTree(ctx, kubeProject, kubeVersion)
	return err
}

// TreeVersion assembles and fixes the tree of any buildable kubelet version
// in _build/kubernetes/<version> (for the kmem proof of that version:
// NOKMEM_KMEMPROOF_VERSIONS=<version> go test -run TestKmemProofVersions ./internal/kmemproof).
func (Kubelet) TreeVersion(ctx context.Context, version string) error {
	_, _, err := pipelineTree(ctx, kubeProject, version)
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

// ChecksumsVersion is Checksums for any buildable kubelet version with a
// committed vendor-pins/kubernetes/<version>.CHECKSUMS.
func (Kubelet) ChecksumsVersion(ctx context.Context, version string) error {
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
	return &pipeline.Pipeline{Root: ".", Inputs: pipeline.ModInputs{Fetcher: newFetcher()}, Builder: pipeline.GoBuilder{}, Out: os.Stderr}
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
	p := newPipeline()
	sha, err := p.Checksums(ctx, projectFor(project, versionArgs), version)
	if err != nil {
		return err
	}
	return printJSON(map[string]any{"project": project, "version": version, "reproduced": p.ExpectedSumsPath(project, version), "sha256": sha})
}

// pipelineTree returns the fixed GOPATH tree of project@version in
// _build/<project>/<version>, assembling it again only when the lock or the
// patches changed since it was made.
func pipelineTree(ctx context.Context, project, version string) (*pins.Lock, srctree.Tree, error) {
	return newPipeline().Tree(ctx, project, version)
}

// expectedSumsPath is the committed checksum file of a project version.
func expectedSumsPath(project, version string) string {
	return newPipeline().ExpectedSumsPath(project, version)
}

// checkReproduced compares built sha256s with the committed CHECKSUMS and
// explains a mismatch (see pipeline.CheckReproduced).
func checkReproduced(ctx context.Context, lock *pins.Lock, sha map[string]string) error {
	return newPipeline().CheckReproduced(ctx, lock, sha)
}

// publishedSums reads the sha256 of the artifacts in an output folder.
func publishedSums(dest string) (map[string]string, error) {
	return sums.Parse(filepath.Join(dest, sums.SHA256.SumsFile))
}
