package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nokmem/nokmem/internal/kmemproof"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
)

// StockMarker is the version marker of a build without its kmem patch.
const StockMarker = "stock"

// stockStampFile, in the stock build folder, holds the input stamp of the
// binaries beside it.
const stockStampFile = "inputs.stamp"

// BuildStock builds proj@version like the release (same lock, toolchain
// and flags) but with its kmem patch presented removed (go build
// -overlay; the fixed tree itself is not touched), into
// _build/<project>/<version>-stock: the stock binary the node test starts
// from. Its version says <version>+stock. With unchanged inputs (its
// inputs.stamp: the lock, the other patches, the left-out patches, the
// command line and the system packages) it does no work. The binaries are
// built in a scratch folder and moved into place after their checks; the
// stamp is removed before and written after. It reports whether it built.
func (p *Pipeline) BuildStock(ctx context.Context, proj Project, version string) (bool, error) {
	l, set, err := p.Load(proj.Name, version)
	if err != nil {
		return false, err
	}
	kmem, rest := KmemPatches(set)
	if len(kmem.Patches) == 0 {
		return false, fmt.Errorf("%s %s: no patch of %s touches %s/memory.go", proj.Name, version, set.Dir, kmemproof.FSPackage)
	}
	buildDir, err := filepath.Abs(p.Layout().Build(proj.Name, version))
	if err != nil {
		return false, err
	}
	tree, err := p.tree(ctx, l, set, buildDir)
	if err != nil {
		return false, err
	}
	outDir, err := filepath.Abs(p.Layout().Stock(proj.Name, version))
	if err != nil {
		return false, err
	}
	spec, err := Spec(l, tree, StockMarker, outDir)
	if err != nil {
		return false, err
	}
	debs, err := p.Builder.SystemPackages(ctx, l)
	if err != nil {
		return false, err
	}
	stamp, err := Stamp(pins.Path(p.PinsDir(), l.Project, l.Version), l, rest, spec, debs)
	if err != nil {
		return false, err
	}
	for _, pt := range kmem.Patches {
		stamp.Add("without patch "+pt.Name, pt.Bytes)
	}
	stampPath := filepath.Join(outDir, stockStampFile)
	if got, err := os.ReadFile(stampPath); err == nil && string(got) == stamp.Text() && allExist(outDir, l) {
		p.say("stock %s %s: up to date (%s)", proj.Name, version, outDir)
		return false, nil
	}
	if err := os.Remove(stampPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	goBin, err := p.Inputs.Toolchain(ctx, l.Toolchain)
	if err != nil {
		return false, err
	}
	tv, err := goVersion(l.Toolchain)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return false, err
	}
	scratch, err := os.MkdirTemp(outDir, ".bin-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(scratch)
	overlay, err := kmemproof.Overlay(tree.Root, kmem, false, scratch)
	if err != nil {
		return false, fmt.Errorf("stock %s overlay: %w", proj.Name, err)
	}
	build := spec
	build.Go, build.OutDir = goBin, filepath.Join(scratch, "bin")
	build.Env = append(append([]string(nil), spec.Env...), "GOFLAGS=-overlay="+overlay)
	p.say("stock %s %s: building without %s", proj.Name, version, kmem.Patches[0].Name)
	if err := p.Builder.Build(ctx, build); err != nil {
		return false, fmt.Errorf("stock %s: %w", proj.Name, err)
	}
	var want []string
	if proj.VersionWant != nil {
		want = proj.VersionWant(l, StockMarker)
	}
	for _, pkg := range l.Build.Packages {
		c := Check{GoBin: goBin, Binary: filepath.Join(build.OutDir, pkg.Output), GoVersion: tv, Static: l.Build.Static, VersionArgs: proj.VersionArgs, VersionWant: want}
		if err := p.Builder.Check(ctx, c); err != nil {
			return true, fmt.Errorf("stock %s: %w", proj.Name, err)
		}
	}
	for _, pkg := range l.Build.Packages {
		if err := os.Rename(filepath.Join(build.OutDir, pkg.Output), filepath.Join(outDir, pkg.Output)); err != nil {
			return true, err
		}
	}
	return true, os.WriteFile(stampPath, []byte(stamp.Text()), 0o644)
}

// allExist reports whether every binary of l is in dir.
func allExist(dir string, l *pins.Lock) bool {
	for _, pkg := range l.Build.Packages {
		if _, err := os.Stat(filepath.Join(dir, pkg.Output)); err != nil {
			return false
		}
	}
	return true
}

// KmemPatches splits a patch series into the patches that change
// libcontainer's fs/memory.go (the kmem fix) and the rest (compatibility).
func KmemPatches(set *patchset.Set) (kmem, rest *patchset.Set) {
	kmem, rest = &patchset.Set{Dir: set.Dir}, &patchset.Set{Dir: set.Dir}
	for _, pt := range set.Patches {
		touches := false
		for _, f := range pt.Files {
			if f.NewName == kmemproof.FSPackage+"/memory.go" || f.OldName == kmemproof.FSPackage+"/memory.go" {
				touches = true
			}
		}
		if touches {
			kmem.Patches = append(kmem.Patches, pt)
		} else {
			rest.Patches = append(rest.Patches, pt)
		}
	}
	return kmem, rest
}
