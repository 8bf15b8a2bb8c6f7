// Package srctree assembles a project's GOPATH source tree from its lock
// file: the source module at gopath/src/<importPath>, every vendor module at
// vendor/<root> (module zips drop vendor/, so upstream's vendor tree is
// rebuilt from the pinned modules), and, when the lock asks for it, the
// vendor/<prefix>/<repo> symlinks to the tree's staging repositories.
//
// Every module is extracted from its h1-verified zip (not from the module
// cache's extraction), and every file is made writable so that patches can
// be applied. The tree is assembled in a temporary directory beside the
// target and renamed into place, so a failed run leaves no half tree and an
// earlier tree stays as it was. Before the rename the tree is checked
// against upstream's vendor manifest (Godeps/Godeps.json or vendor.conf, see
// CheckUpstream).
//
// Callers (the build step, mage Inputs:Assemble):
//
//	tree, err := srctree.Assemble(ctx, &modfetch.Fetcher{Progress: os.Stderr}, lock,
//		srctree.DefaultBuildDir(".", lock), slog.Default())
//	// tree.GOPATH for GOPATH=, tree.Root for the go command's working directory.
//
// Assemble always builds a fresh tree; a caller that wants a no-op rerun
// compares pins.Lock.Digest (plus its own inputs) before calling it.
package srctree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
	"golang.org/x/sync/errgroup"

	"github.com/nokmem/nokmem/internal/layout"
	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
)

// Tree is an assembled GOPATH tree.
type Tree struct {
	// GOPATH is the GOPATH directory (<buildDir>/gopath).
	GOPATH string
	// Root is the project's directory, GOPATH/src/<importPath>.
	Root string
}

// DefaultBuildDir is _build/<project>/<version> under the repository root.
func DefaultBuildDir(repoRoot string, l *pins.Lock) string {
	return layout.New(repoRoot).Build(l.Project, l.Version)
}

// Paths returns where Assemble puts the tree for l in buildDir.
func Paths(l *pins.Lock, buildDir string) Tree {
	gopath := filepath.Join(buildDir, "gopath")
	return Tree{GOPATH: gopath, Root: filepath.Join(gopath, "src", filepath.FromSlash(l.Source.ImportPath))}
}

// Assemble fetches the source and vendor modules of l through f (checking
// every h1), builds the tree in <buildDir>/gopath, and returns it. An
// existing tree there is replaced only when the new one is complete.
//
// A go.mod lock (source.kind gomod) gets a module-mode tree instead (see
// ModEnv): the same layout, upstream's go.mod with the lock's replaces, and
// a go.sum written from the lock. log receives one line per assembled
// tree (nothing when nil).
func Assemble(ctx context.Context, f *modfetch.Fetcher, l *pins.Lock, buildDir string, log *slog.Logger) (Tree, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if l.Source.Kind == pins.SourceGoMod {
		return assembleGoMod(ctx, f, l, buildDir, log)
	}
	start := time.Now()
	mods := []pins.Module{l.Source.Module}
	for _, v := range l.Vendor {
		mods = append(mods, v.Module)
	}
	got, err := f.Fetch(ctx, mods)
	if err != nil {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	tmp, err := os.MkdirTemp(buildDir, ".gopath-")
	if err != nil {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	defer os.RemoveAll(tmp) // gone after a failure; renamed away after success

	if err := os.Chmod(tmp, 0o755); err != nil {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	// tmp becomes <buildDir>/gopath: the project goes to tmp/src/<importPath>.
	tmpRoot := filepath.Join(tmp, "src", filepath.FromSlash(l.Source.ImportPath))
	if err := fill(ctx, tmpRoot, l, got); err != nil {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	n, err := CheckUpstream(tmpRoot, l)
	if err != nil {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	tree := Paths(l, buildDir)
	if err := replaceDir(tmp, tree.GOPATH); err != nil {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	log.Info("assembled source tree", "project", l.Project, "version", l.Version, "root", tree.Root,
		"modules", len(got), "upstreamImportPaths", n, "took", time.Since(start).Round(time.Millisecond))
	return tree, nil
}

// fill extracts the modules into root (the source) and root/vendor, links
// the staging repositories and makes every file writable.
func fill(ctx context.Context, root string, l *pins.Lock, got []modfetch.Result) error {
	if err := unzip(root, got[0]); err != nil {
		return err
	}
	// Module zips keep only vendor/'s top-level files (kubernetes: BUILD, OWNERS);
	// a vendored package there would mix with the pinned modules.
	if err := noVendoredPackages(filepath.Join(root, "vendor"), l.Source.Module); err != nil {
		return err
	}
	// Roots do not nest (pins.Lock.Validate), so the extractions are independent.
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	for i, v := range l.Vendor {
		r := got[i+1]
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := unzip(filepath.Join(root, "vendor", filepath.FromSlash(v.Root)), r); err != nil {
				return fmt.Errorf("vendor %s: %w", v.Root, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if l.Staging != nil {
		if err := linkStaging(root, *l.Staging); err != nil {
			return err
		}
	}
	return makeWritable(root)
}

// noVendoredPackages fails when vendorDir holds a directory.
func noVendoredPackages(vendorDir string, m pins.Module) error {
	entries, err := os.ReadDir(vendorDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			return fmt.Errorf("source module %s has vendor/%s; module zips should not carry vendored packages", m, e.Name())
		}
	}
	return nil
}

// unzip extracts a verified module zip into dir.
func unzip(dir string, r modfetch.Result) error {
	if err := modzip.Unzip(dir, module.Version{Path: r.Path, Version: r.Version}, r.Zip); err != nil {
		return fmt.Errorf("extract %s: %w", r.Module, err)
	}
	return nil
}

// linkStaging links every <Dir>/<Prefix>/<repo> of the tree to
// vendor/<Prefix>/<repo> with a relative symlink.
func linkStaging(root string, s pins.Staging) error {
	stagingDir := filepath.Join(root, filepath.FromSlash(s.Dir), filepath.FromSlash(s.Prefix))
	entries, err := os.ReadDir(stagingDir)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	linkDir := filepath.Join(root, "vendor", filepath.FromSlash(s.Prefix))
	if err := os.MkdirAll(linkDir, 0o755); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		target, err := filepath.Rel(linkDir, filepath.Join(stagingDir, e.Name()))
		if err != nil {
			return fmt.Errorf("staging %s: %w", e.Name(), err)
		}
		link := filepath.Join(linkDir, e.Name())
		if err := os.Symlink(target, link); err != nil {
			// EEXIST here means a vendor module claims a staging repo's path.
			return fmt.Errorf("staging %s/%s: %w", s.Prefix, e.Name(), err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("staging: no repositories in %s", stagingDir)
	}
	return nil
}

// makeWritable gives the owner write permission on every file and
// directory under root (zips extract read-only). Symlinks are left alone.
func makeWritable(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o200 != 0 {
			return nil
		}
		return os.Chmod(path, fi.Mode().Perm()|0o200)
	})
}

// replaceDir moves the complete tree src to dst. An existing dst is moved
// aside first (into a fresh temp dir, so concurrent runs do not collide) and
// removed once src is in place.
func replaceDir(src, dst string) error {
	aside, err := os.MkdirTemp(filepath.Dir(dst), ".old-")
	if err != nil {
		return err
	}
	old := filepath.Join(aside, filepath.Base(dst))
	hadOld := true
	if err := os.Rename(dst, old); errors.Is(err, fs.ErrNotExist) {
		hadOld = false
	} else if err != nil {
		return errors.Join(err, os.Remove(aside))
	}
	if err := os.Rename(src, dst); err != nil {
		if hadOld {
			if rerr := os.Rename(old, dst); rerr != nil {
				return fmt.Errorf("%w; the earlier tree is kept in %s: %w", err, old, rerr)
			}
		}
		return errors.Join(err, os.Remove(aside))
	}
	return os.RemoveAll(aside)
}

// hasPathPrefix reports whether import path p is root or below it.
func hasPathPrefix(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}
