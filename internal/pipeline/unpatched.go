package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/stepstamp"
)

// UnpatchedMarker is the version marker of a build without its patches.
const UnpatchedMarker = "unpatched"

// BuildUnpatched builds proj@version without its patches, from its own
// assembled tree in _build/<project>/<version>-unpatched (the binary a
// behavioural proof must fail on, to show it can fail), unless its record
// (_build/stamps/<project>-unpatched) shows the binaries there built from
// the same inputs (lock, toolchain, command line, system packages) and not
// touched since; that check needs neither the toolchain nor a run of the
// binary. The binaries are built into a scratch folder and moved into
// place only after every check passed. It reports whether it built.
func (p *Pipeline) BuildUnpatched(ctx context.Context, proj Project, version string) (bool, error) {
	l, err := pins.Load(p.PinsDir(), proj.Name, version)
	if err != nil {
		return false, err
	}
	dir, err := filepath.Abs(p.Layout().Unpatched(proj.Name, version))
	if err != nil {
		return false, err
	}
	// The toolchain enters the stamp by its lock entry; spec.Go is set below.
	spec, err := Spec(l, srctree.Paths(l, dir), UnpatchedMarker, dir)
	if err != nil {
		return false, err
	}
	debs, err := p.Builder.SystemPackages(ctx, l)
	if err != nil {
		return false, err
	}
	stamp, err := Stamp(pins.Path(p.PinsDir(), l.Project, l.Version), l, &patchset.Set{}, spec, debs)
	if err != nil {
		return false, err
	}
	var outs []string
	for _, pkg := range l.Build.Packages {
		outs = append(outs, filepath.Join(dir, pkg.Output))
	}
	built := false
	s := &stepstamp.Step{Name: proj.Name + " " + l.Version + " unpatched", File: p.Layout().Record(proj.Name + "-unpatched"), Inputs: stamp, Outputs: outs}
	err = p.RunStep(s, func() error {
		goBin, err := p.Inputs.Toolchain(ctx, l.Toolchain)
		if err != nil {
			return err
		}
		tv, err := goVersion(l.Toolchain)
		if err != nil {
			return err
		}
		if _, err := p.Inputs.Assemble(ctx, l, dir); err != nil {
			return err
		}
		scratch, err := os.MkdirTemp(dir, ".bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(scratch)
		build := spec
		build.Go, build.OutDir = goBin, scratch
		if err := p.Builder.Build(ctx, build); err != nil {
			return fmt.Errorf("unpatched %s: %w", proj.Name, err)
		}
		built = true
		var want []string
		if proj.VersionWant != nil {
			want = proj.VersionWant(l, UnpatchedMarker)
		}
		for _, pkg := range l.Build.Packages {
			c := Check{GoBin: goBin, Binary: filepath.Join(scratch, pkg.Output), GoVersion: tv, Static: l.Build.Static, VersionArgs: proj.VersionArgs, VersionWant: want}
			if err := p.Builder.Check(ctx, c); err != nil {
				return fmt.Errorf("unpatched %s: %w", proj.Name, err)
			}
		}
		for _, pkg := range l.Build.Packages {
			if err := os.Rename(filepath.Join(scratch, pkg.Output), filepath.Join(dir, pkg.Output)); err != nil {
				return err
			}
		}
		return nil
	})
	return built, err
}
