package srctree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
)

// A go.mod tree (source.kind gomod) is the source module at
// gopath/src/<importPath> with upstream's go.mod changed only by the lock's
// replace entries, a go.sum generated from the lock's module hashes, stub
// modules under pins.StubDir, and gopath/pkg/mod linked to the module
// cache that holds the lock's modules (every zip and go.mod file checked
// against the lock by this package before the link is made). The go
// command builds it in module mode offline (ModEnv): it reads only the
// module cache, and go.sum, written from the verified lock, is complete.

// ErrStagingMissing is returned when upstream's go.mod replaces a module
// with a directory the module zip lacks (kubernetes' staging/, which holds
// nested modules) and the lock does not replace it.
var ErrStagingMissing = errors.New("replaced by a directory the module zip lacks")

// ErrStubUnused is returned for a lock stub that replaces a module
// upstream's go.mod neither requires nor replaces.
var ErrStubUnused = errors.New("stub for a module upstream's go.mod does not name")

// modCacheLink is the tree's link to the module cache, relative to GOPATH.
const modCacheLink = "pkg/mod"

// ModEnv is the go command environment of l's tree on top of
// gobuild.Env: nothing for a GOPATH tree; for a go.mod tree, module mode
// on the tree's module cache link, with no network. GOSUMDB=off is safe
// only because go.sum is complete and written from the lock, whose every
// zip and go.mod h1 was checked before the tree was made: the go command
// then never needs the checksum database, and a module missing from
// go.sum fails instead of being looked up.
func ModEnv(l *pins.Lock, tree Tree) []string {
	if l.Source.Kind != pins.SourceGoMod {
		return nil
	}
	return []string{
		"GO111MODULE=on", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GONOSUMDB=", "GOPRIVATE=",
		"GOWORK=off", "GOMODCACHE=" + filepath.Join(tree.GOPATH, filepath.FromSlash(modCacheLink)),
	}
}

// assembleGoMod builds l's go.mod tree in <buildDir>/gopath.
func assembleGoMod(ctx context.Context, f *modfetch.Fetcher, l *pins.Lock, buildDir string, log *slog.Logger) (Tree, error) {
	start := time.Now()
	fail := func(err error) (Tree, error) {
		return Tree{}, fmt.Errorf("assemble %s %s: %w", l.Project, l.Version, err)
	}
	g := l.GoMod
	got, err := f.Fetch(ctx, append([]pins.Module{l.Source.Module}, g.Zips()...))
	if err != nil {
		return fail(err)
	}
	if _, err := f.FetchGoMods(ctx, g.GoModFiles()); err != nil {
		return fail(err)
	}
	modCache, err := f.ModCache(ctx)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(buildDir, ".gopath-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp) // gone after a failure; renamed away after success
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	root := filepath.Join(tmp, "src", filepath.FromSlash(l.Source.ImportPath))
	if err := unzip(root, got[0]); err != nil {
		return fail(err)
	}
	if err := WriteGoMod(root, l); err != nil {
		return fail(err)
	}
	if err := makeWritable(root); err != nil {
		return fail(err)
	}
	link := filepath.Join(tmp, filepath.FromSlash(modCacheLink))
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fail(err)
	}
	if err := os.Symlink(modCache, link); err != nil {
		return fail(err)
	}
	tree := Paths(l, buildDir)
	if err := replaceDir(tmp, tree.GOPATH); err != nil {
		return fail(err)
	}
	log.Info("assembled go.mod tree", "project", l.Project, "version", l.Version, "root", tree.Root,
		"zips", len(got), "gomods", len(g.Modules), "replaces", len(g.Replace), "took", time.Since(start).Round(time.Millisecond))
	return tree, nil
}

// WriteGoMod applies the lock's replace entries to the go.mod in root,
// writes the stub modules and the go.sum generated from the lock. It
// refuses a go.mod whose directory replacements of required modules point
// at directories the tree lacks and the lock does not replace
// (ErrStagingMissing), and a stub
// for a module upstream does not name (ErrStubUnused).
func WriteGoMod(root string, l *pins.Lock) error {
	gmPath := filepath.Join(root, "go.mod")
	data, err := os.ReadFile(gmPath)
	if err != nil {
		return err
	}
	mf, err := modfile.Parse(gmPath, data, nil)
	if err != nil {
		return err
	}
	if mf.Module == nil || mf.Module.Mod.Path != l.Source.ImportPath {
		return fmt.Errorf("%s: module path is not %s", gmPath, l.Source.ImportPath)
	}
	lockReplaces := map[string]pins.Replace{}
	for _, r := range l.GoMod.Replace {
		lockReplaces[r.Path] = r
	}
	named := map[string]bool{}
	required := map[string]bool{}
	for _, r := range mf.Require {
		named[r.Mod.Path], required[r.Mod.Path] = true, true
	}
	for _, r := range mf.Replace {
		named[r.Old.Path] = true
	}
	var missing []string
	for _, r := range mf.Replace {
		// A directive for a module outside the graph is ignored by the go command.
		if !modfile.IsDirectoryPath(r.New.Path) || !required[r.Old.Path] {
			continue
		}
		if _, ok := lockReplaces[r.Old.Path]; ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(r.New.Path))); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, r.Old.Path+" => "+r.New.Path)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %w, and the lock does not replace them (staging: the published module; stub: a module no loaded package imports): %s",
			gmPath, ErrStagingMissing, strings.Join(missing, ", "))
	}
	for _, r := range l.GoMod.Replace {
		if err := dropReplaces(mf, r.Path); err != nil {
			return err
		}
		if r.Kind != pins.ReplaceStub {
			if err := mf.AddReplace(r.Path, "", r.With.Path, r.With.Version); err != nil {
				return fmt.Errorf("replace %s: %w", r.Path, err)
			}
			continue
		}
		if !named[r.Path] {
			return fmt.Errorf("gomod replace %s: %w (a stub only stands in for a module of upstream's graph)", r.Path, ErrStubUnused)
		}
		dir := path.Join(pins.StubDir, r.Path)
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(dir)), 0o755); err != nil {
			return err
		}
		stub := "// Stub written by nokmem: " + r.Reason + "\nmodule " + r.Path + "\n"
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(dir), "go.mod"), []byte(stub), 0o644); err != nil {
			return err
		}
		if err := mf.AddReplace(r.Path, "", "./"+dir, ""); err != nil {
			return fmt.Errorf("replace %s: %w", r.Path, err)
		}
	}
	mf.Cleanup()
	out, err := mf.Format()
	if err != nil {
		return err
	}
	if err := os.WriteFile(gmPath, out, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "go.sum"), l.GoMod.GoSum(), 0o644)
}

// dropReplaces removes every replace directive of modPath (any version).
func dropReplaces(mf *modfile.File, modPath string) error {
	var vs []string
	for _, r := range mf.Replace {
		if r.Old.Path == modPath {
			vs = append(vs, r.Old.Version)
		}
	}
	for _, v := range vs {
		if err := mf.DropReplace(modPath, v); err != nil {
			return err
		}
	}
	return nil
}

// File returns where the tree's slash path rel is. For a GOPATH tree that
// is under Root. For a go.mod tree, "vendor/<import path>/..." names a
// dependency's file as the build sees it: in the module cache, in the
// module of the lock's graph (with a zip) whose path is the longest
// prefix of the import path; other paths are under Root.
func File(l *pins.Lock, tree Tree, rel string) (string, error) {
	ip, ok := strings.CutPrefix(rel, "vendor/")
	if l.Source.Kind != pins.SourceGoMod || !ok {
		return filepath.Join(tree.Root, filepath.FromSlash(rel)), nil
	}
	m, sub, err := Provider(l, ip)
	if err != nil {
		return "", err
	}
	ep, err := module.EscapePath(m.Path)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(m.Version)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(tree.GOPATH, filepath.FromSlash(modCacheLink), filepath.FromSlash(ep)+"@"+ev)
	return filepath.Join(dir, filepath.FromSlash(sub)), nil
}

// Provider returns the module of a go.mod lock's graph (one with a zip h1)
// that provides import path ip (the longest module path prefix), and ip's
// path inside it.
func Provider(l *pins.Lock, ip string) (pins.Module, string, error) {
	var best pins.Module
	for _, m := range l.GoMod.Zips() {
		if hasPathPrefix(ip, m.Path) && len(m.Path) > len(best.Path) {
			best = m
		}
	}
	if best.Path == "" {
		return pins.Module{}, "", fmt.Errorf("%s %s: no module of the lock's graph provides %s", l.Project, l.Version, ip)
	}
	return best, strings.TrimPrefix(strings.TrimPrefix(ip, best.Path), "/"), nil
}

// WritableModule makes a writable copy (in work) of the module of l's
// graph that provides import path ip, extracted from its zip in the
// module cache after checking the zip against the lock again, and a
// go.mod beside it (work/go.mod, with work/go.sum) that is the tree's
// go.mod plus a replace of that module by the copy. go refuses -overlay
// files under GOMODCACHE, so a test that adds files to a dependency's
// package (the kmem proof) runs on the copy with -modfile=<work/go.mod>;
// the code is byte for byte the verified zip's. It returns the package's
// directory in the copy and the go.mod path.
func WritableModule(l *pins.Lock, tree Tree, ip, work string) (pkgDir, modFile string, err error) {
	m, sub, err := Provider(l, ip)
	if err != nil {
		return "", "", err
	}
	ep, err := module.EscapePath(m.Path)
	if err != nil {
		return "", "", err
	}
	ev, err := module.EscapeVersion(m.Version)
	if err != nil {
		return "", "", err
	}
	zip := filepath.Join(tree.GOPATH, filepath.FromSlash(modCacheLink), "cache", "download", filepath.FromSlash(ep), "@v", ev+".zip")
	if err := modfetch.CheckZip(m, zip); err != nil {
		return "", "", err
	}
	dir := filepath.Join(work, "mod")
	if err := unzip(dir, modfetch.Result{Module: m, Zip: zip}); err != nil {
		return "", "", err
	}
	// A module without go.mod gets the one the go command synthesizes for it.
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+m.Path+"\n"), 0o644); err != nil {
			return "", "", err
		}
	}
	gmPath := filepath.Join(tree.Root, "go.mod")
	data, err := os.ReadFile(gmPath)
	if err != nil {
		return "", "", err
	}
	mf, err := modfile.Parse(gmPath, data, nil)
	if err != nil {
		return "", "", err
	}
	if err := dropReplaces(mf, m.Path); err != nil {
		return "", "", err
	}
	if err := mf.AddReplace(m.Path, "", dir, ""); err != nil {
		return "", "", err
	}
	// Relative replacements (stubs) are resolved from the module root, not
	// from the -modfile's folder, so they keep working.
	out, err := mf.Format()
	if err != nil {
		return "", "", err
	}
	modFile = filepath.Join(work, "go.mod")
	if err := os.WriteFile(modFile, out, 0o644); err != nil {
		return "", "", err
	}
	sum, err := os.ReadFile(filepath.Join(tree.Root, "go.sum"))
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(work, "go.sum"), sum, 0o644); err != nil {
		return "", "", err
	}
	return filepath.Join(dir, filepath.FromSlash(sub)), modFile, nil
}
