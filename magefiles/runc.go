//go:build mage

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/stepstamp"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// Runc builds runc with kmem activation off, and proves it with the real binary.
type Runc mg.Namespace

// runcVersion is the default runc version.
const runcVersion = "v1.0.0-rc5"

// Paths of the runc build, relative to the repository root.
var (
	runcOutput    = filepath.Join("_output", "runc", runcVersion)
	runcUnpatched = filepath.Join("_build", "runc", runcVersion+"-unpatched")
	runcPatches   = filepath.Join("patches", "runc", runcVersion)
)

// Build builds a buildable runc version through the pipeline
// (`go tool mage runc:build v1.0.0-rc5`): h1-verified inputs, its fix, static
// build with the pinned toolchain, ELF check, `runc --version` showing the
// version, its commit and the patch-set marker, atomic publish into
// _output/runc/<version>. For the default version (v1.0.0-rc5) it also
// builds the unpatched runc into _build/runc/v1.0.0-rc5-unpatched/runc for
// the behavioural test (runc:testKmem). Unchanged inputs make it a no-op. A
// version the matrix does not list as buildable is refused with its reason
// and the nearest buildable version.
func (Runc) Build(ctx context.Context, version string) error {
	start := time.Now()
	if _, err := buildProject(ctx, pipeline.Runc, version); err != nil {
		return err
	}
	if version != runcVersion {
		return nil
	}
	patchedTook := time.Since(start)
	l, err := pins.Load(pinsDir, "runc", runcVersion)
	if err != nil {
		return err
	}
	step := time.Now()
	built, err := buildUnpatched(ctx, l)
	if err != nil {
		return err
	}
	slog.Info("runc ready", "patched", filepath.Join(runcOutput, "runc"), "unpatched", filepath.Join(runcUnpatched, "runc"), "unpatchedRebuilt", built,
		"patchedStep", patchedTook.Round(time.Millisecond), "unpatchedStep", time.Since(step).Round(time.Millisecond))
	return nil
}

// Audit reads the source of any runc version (from the module proxy) and
// says whether its libcontainer's MemoryGroup.Apply activates kmem, which
// fix applies (buildtag when kmem_disabled.go is there, else patch),
// its matrix status and whether a lock exists.
func (Runc) Audit(ctx context.Context, version string) error {
	return audit(ctx, "runc", version)
}

// Checksums rebuilds a buildable runc version into
// _build/runc/<version>/rebuild (nothing is published; the build cache is
// used) and fails unless its sha256 equals vendor-pins/runc/<version>.CHECKSUMS.
func (Runc) Checksums(ctx context.Context, version string) error {
	return checksumsProject(ctx, pipeline.Runc, version)
}

// buildUnpatched builds runc without the patches, from its own assembled
// tree in _build/runc/v1.0.0-rc5-unpatched, unless its record
// (_build/stamps/runc-unpatched) shows the binary there built from the
// same inputs (lock, toolchain, command line, system packages) and not
// touched since; that check needs neither the toolchain nor a run of the
// binary. It reports whether it built.
func buildUnpatched(ctx context.Context, l *pins.Lock) (bool, error) {
	dir, err := filepath.Abs(runcUnpatched)
	if err != nil {
		return false, err
	}
	tree := srctree.Paths(l, dir)
	// The toolchain enters the stamp by its lock entry; spec.Go is set below.
	spec, err := lockSpec(l, "", tree, "unpatched", dir)
	if err != nil {
		return false, err
	}
	debs, err := lockSystemPackages(ctx, l)
	if err != nil {
		return false, err
	}
	stamp, err := pipeline.Stamp(pins.Path(pinsDir, l.Project, l.Version), l, &patchset.Set{}, spec, debs)
	if err != nil {
		return false, err
	}
	bin := filepath.Join(dir, "runc")
	built := false
	s := &stepstamp.Step{Name: "runc " + l.Version + " unpatched", File: filepath.Join(stampsDir, "runc-unpatched"), Inputs: stamp, Outputs: []string{bin}}
	err = runStep(s, func() error {
		goBin, err := toolchain.Go(ctx, newFetcher(), l.Toolchain)
		if err != nil {
			return err
		}
		tv, err := toolchain.ParseVersion(l.Toolchain)
		if err != nil {
			return err
		}
		spec.Go = goBin
		if _, err := srctree.Assemble(ctx, newFetcher(), l, dir); err != nil {
			return err
		}
		if err := gobuild.Build(ctx, spec); err != nil {
			return fmt.Errorf("unpatched runc: %w", err)
		}
		built = true
		return checkRunc(ctx, l, goBin, tv.Go, bin, "unpatched")
	})
	return built, err
}

// TestKmem runs the behavioural proof (internal/runcproof) against the two
// binaries Build made for the default version; it needs root, cgroup v1,
// strace and busybox-static. It takes no version: the proof runs the
// default runc's patched and unpatched binaries (the other versions'
// fixes are proven on their trees by the matrix checks).
func (Runc) TestKmem(ctx context.Context) error {
	mg.CtxDeps(ctx, mg.F(Runc.Build, runcVersion))
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "./internal/runcproof/")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runc kmem proof: %w", err)
	}
	return nil
}

// lockSystemPackages reads the Debian packages whose code or tools go into a
// cgo build of l: the C toolchain and glibc, and libseccomp for the seccomp tag.
func lockSystemPackages(ctx context.Context, l *pins.Lock) ([]inputs.SystemPackage, error) {
	return pipeline.GoBuilder{CacheDir: stampsDir}.SystemPackages(ctx, l)
}

// lockSpec is the gobuild spec of l with the given patch-set marker.
func lockSpec(l *pins.Lock, goBin string, tree srctree.Tree, marker, outDir string) (gobuild.Spec, error) {
	s, err := pipeline.Spec(l, tree, marker, outDir)
	s.Go = goBin
	return s, err
}

// checkRunc checks a built runc: pinned Go version, static (runs on CentOS
// 7), and `runc --version` naming the version, its commit and the marker, as
// upstream's Makefile stamps them (version without the leading v).
func checkRunc(ctx context.Context, l *pins.Lock, goBin, goVersion, bin, marker string) error {
	return pipeline.GoBuilder{}.Check(ctx, pipeline.Check{GoBin: goBin, Binary: bin, GoVersion: goVersion, Static: l.Build.Static,
		VersionArgs: pipeline.Runc.VersionArgs, VersionWant: pipeline.Runc.VersionWant(l, marker)})
}

// sameContent reports whether the file at path holds exactly content.
func sameContent(path, content string) bool {
	b, err := os.ReadFile(path)
	return err == nil && string(b) == content
}
