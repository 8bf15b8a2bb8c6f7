package lockgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/modfile"

	"github.com/nokmem/nokmem/internal/kmemsrc"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
)

// Audit is what a version's source says about kmem.
type Audit struct {
	Project, Version string
	// Runc is the libcontainer the version builds with (module@version).
	Runc string `json:",omitempty"`
	// ActivatesKmem: libcontainer's MemoryGroup.Apply calls EnableKernelMemoryAccounting.
	ActivatesKmem bool
	// KmemDisabled: libcontainer/cgroups/fs/kmem_disabled.go is present (-tags nokmem works).
	KmemDisabled bool
	// Fix is the fix that applies: "buildtag", "patch" or "" (unaffected).
	Fix string `json:",omitempty"`
	// Status is the matrix status ("" when the matrix does not list the version).
	Status string `json:",omitempty"`
	// Lock says whether a lock file exists.
	Lock bool
}

// AuditRequest names the version to audit.
type AuditRequest struct {
	Project, Version string
	Template         *pins.Lock // gives the source module path
	Known            []*pins.Lock
	Hints            []Hint
	Matrix           *pins.Matrix
	PinsDir          string
}

// AuditVersion reads the version's source (and its libcontainer: the
// project's own for runc, the vendored runc module from Godeps.json,
// vendor.conf or go.mod for a kubelet) and reports whether Apply activates
// kmem and which fix applies.
func AuditVersion(ctx context.Context, r Resolver, req AuditRequest) (*Audit, error) {
	src, err := r.Download(ctx, req.Template.Source.Path, req.Version)
	if err != nil {
		return nil, fmt.Errorf("source %s@%s: %w", req.Template.Source.Path, req.Version, err)
	}
	a := &Audit{Project: req.Project, Version: req.Version}
	dir := src.Dir
	if src.Path != runcModule {
		m, err := vendoredRunc(ctx, r, req, src.Dir)
		if err != nil {
			return nil, fmt.Errorf("%s %s: vendored runc: %w", req.Project, req.Version, err)
		}
		d, err := r.Download(ctx, m.Path, m.Version)
		if err != nil {
			return nil, fmt.Errorf("%s %s: vendored runc: %w", req.Project, req.Version, err)
		}
		dir, a.Runc = d.Dir, m.String()
	} else {
		a.Runc = src.String()
	}
	fsDir := filepath.Join(dir, "libcontainer", "cgroups", "fs")
	if _, err := os.Stat(fsDir); err != nil {
		// runc 1.3+: the drivers are in github.com/opencontainers/cgroups.
		m, merr := goModRequire(dir, cgroupsModule)
		if merr != nil {
			return nil, fmt.Errorf("%s %s: no libcontainer/cgroups/fs: %w", req.Project, req.Version, merr)
		}
		d, err := r.Download(ctx, m.Path, m.Version)
		if err != nil {
			return nil, fmt.Errorf("%s %s: cgroup drivers: %w", req.Project, req.Version, err)
		}
		fsDir, a.Runc = filepath.Join(d.Dir, "fs"), a.Runc+" with "+m.String()
	}
	rep, err := kmemsrc.Read(fsDir)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Project, req.Version, err)
	}
	a.ActivatesKmem = rep.ApplyCalls
	_, statErr := os.Stat(filepath.Join(fsDir, pins.KmemDisabledFile))
	a.KmemDisabled = statErr == nil
	switch {
	case !a.ActivatesKmem:
	case a.KmemDisabled:
		a.Fix = pins.FixBuildTag
	default:
		a.Fix = pins.FixPatch
	}
	if req.Matrix != nil {
		if e := req.Matrix.Entry(req.Project, req.Version); e != nil {
			a.Status = e.Status
		}
	}
	_, err = os.Stat(pins.Path(req.PinsDir, req.Project, req.Version))
	a.Lock = err == nil
	return a, nil
}

// vendoredRunc finds the runc module a kubelet source builds with.
func vendoredRunc(ctx context.Context, r Resolver, req AuditRequest, srcDir string) (pins.Module, error) {
	if data, err := os.ReadFile(filepath.Join(srcDir, "go.mod")); err == nil {
		f, err := modfile.ParseLax("go.mod", data, nil)
		if err != nil {
			return pins.Module{}, err
		}
		for _, rq := range f.Require {
			if rq.Mod.Path == runcModule {
				return pins.Module{Path: rq.Mod.Path, Version: rq.Mod.Version}, nil
			}
		}
		return pins.Module{}, errors.New("go.mod does not require " + runcModule)
	}
	_, deps, err := srctree.ReadManifest(srcDir)
	if err != nil {
		return pins.Module{}, err
	}
	for _, d := range deps {
		if d.ImportPath != runcModule && !hasPrefix(d.ImportPath, runcModule+"/") {
			continue
		}
		if e, _ := reuse(req.Known, runcModule, d.Rev); e != nil {
			return e.Module, nil
		}
		m, _, err := resolve(ctx, r, runcModule, d.Rev, d.Comment, req.Hints)
		return m, err
	}
	return pins.Module{}, errors.New("the vendor manifest names no " + runcModule)
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
