// Package lockgen writes a lock file for a new project version from
// upstream's vendor manifest (Godeps/Godeps.json or vendor.conf) in the
// version's source module:
//
//   - every manifest root whose revision an existing lock already pins is
//     reused from that lock (module, h1, how it was found, its override);
//   - the rest is resolved through the module proxy (the Godeps Comment when
//     it is an exact semver tag, else the commit, with the v0.0.0
//     pseudo-version form as a fallback when the canonical form is refused),
//     taking the h1 the go command checked against the checksum database;
//   - roots the template lock excludes at the same revision are carried
//     over with its reason;
//   - what cannot be pinned is listed with the reason, never guessed.
//
// The build settings, toolchain and staging come from a template lock (the
// project's default version). The fix kind follows the tree's cgroupfs
// driver: none when its source never activates kmem (runc rc94+), buildtag
// when libcontainer/cgroups/fs/kmem_disabled.go is present, patch otherwise.
package lockgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/nokmem/nokmem/internal/kmemsrc"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
)

// Download is a module the resolver fetched.
type Download struct {
	pins.Module
	Dir  string // extracted module
	Time string // the proxy's .info Time (RFC 3339)
}

// Resolver fetches path@query (a version or a commit) through the module proxy.
type Resolver interface {
	Download(ctx context.Context, path, query string) (Download, error)
}

// Request asks for a lock of Project@Version.
type Request struct {
	Project, Version string
	// Commit is the upstream commit of Version (the proxy does not record
	// it); when empty, the lock records why in source.commitUnknown.
	Commit string
	// CommitUnknown, when Commit is empty, says why the commit is not known
	// (the lock's source.commitUnknown).
	CommitUnknown string
	// Template gives the source module path, import path, toolchain, build
	// settings, staging and exclusions.
	Template *pins.Lock
	// Known are the locks whose pins may be reused for identical revisions.
	Known []*pins.Lock
	// Hints are module versions for commits the proxy cannot resolve by
	// hash (it serves the version, but not the commit query). A hint is
	// used only for a pseudo-version whose revision is the manifest's commit.
	Hints []Hint
}

// Hint is a module version known to hold a commit, and how that was found:
// a pseudo-version (its revision names the commit) or a tag with the full
// commit hash it points at.
type Hint struct {
	Path, Version, Commit, Note string
}

// matches reports whether h pins rootPath at commit rev.
func (h Hint) matches(rootPath, rev string) bool {
	if h.Path != rootPath {
		return false
	}
	if h.Commit != "" {
		return h.Commit == rev
	}
	short, err := module.PseudoVersionRev(h.Version)
	return err == nil && len(rev) >= len(short) && strings.HasPrefix(rev, short)
}

// ParseHints reads "module pseudo-version [# note]" and "module tag
// commit [# note]" lines; blank and # lines are skipped.
func ParseHints(data []byte) ([]Hint, error) {
	var hs []Hint
	for n, line := range strings.Split(string(data), "\n") {
		text, note, _ := strings.Cut(line, "#")
		f := strings.Fields(text)
		switch {
		case len(f) == 0:
			continue
		case len(f) == 2 && module.IsPseudoVersion(f[1]):
			hs = append(hs, Hint{Path: f[0], Version: f[1], Note: strings.TrimSpace(note)})
		case len(f) == 3 && semver.IsValid(f[1]) && !module.IsPseudoVersion(f[1]) && isCommit(f[2]):
			hs = append(hs, Hint{Path: f[0], Version: f[1], Commit: f[2], Note: strings.TrimSpace(note)})
		default:
			return nil, fmt.Errorf("line %d: want \"module pseudo-version [# note]\" or \"module tag 40-hex-commit [# note]\", got %q", n+1, line)
		}
	}
	return hs, nil
}

func isCommit(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Unpinned is a manifest root the generator could not pin.
type Unpinned struct {
	Root, Rev, Reason string
}

func (u Unpinned) String() string { return u.Root + " " + u.Rev + ": " + u.Reason }

// runcModule is the module that holds libcontainer.
const runcModule = "github.com/opencontainers/runc"

// Generate builds the lock. It returns the lock and the roots it could not
// pin; the lock is complete (and valid) only when that list is empty.
func Generate(ctx context.Context, r Resolver, req Request) (*pins.Lock, []Unpinned, error) {
	t := req.Template
	src, err := r.Download(ctx, t.Source.Path, req.Version)
	if err != nil {
		return nil, nil, fmt.Errorf("source %s@%s: %w", t.Source.Path, req.Version, err)
	}
	if src.Version != req.Version {
		return nil, nil, fmt.Errorf("source %s@%s: the proxy resolves it to %s, want the tag itself", t.Source.Path, req.Version, src.Version)
	}
	manifest, deps, err := srctree.ReadManifest(src.Dir)
	isGoMod := false
	if err != nil {
		if _, serr := os.Stat(filepath.Join(src.Dir, "go.mod")); serr != nil {
			return nil, nil, fmt.Errorf("source %s: %w", src.Module, err)
		}
		isGoMod, manifest = true, "go.mod"
	}
	l := &pins.Lock{
		Project: req.Project, Version: req.Version,
		Source:    pins.Source{Module: src.Module, Commit: req.Commit, CommitUnknown: req.CommitUnknown, CommitTime: src.Time, ImportPath: t.Source.ImportPath},
		Toolchain: t.Toolchain, Build: t.Build, Staging: t.Staging,
	}
	l.Build.Tags = slices.Clone(t.Build.Tags)
	l.Build.LDFlagsX = nil
	// -X values that spell the template's version (runc's main.version,
	// without the v) or its minor (kubernetes' gitMinor) name the new one.
	oldMinor, newMinor := minor(t.Version), minor(req.Version)
	for _, x := range t.Build.LDFlagsX {
		x = strings.ReplaceAll(x, strings.TrimPrefix(t.Version, "v"), strings.TrimPrefix(req.Version, "v"))
		if oldMinor != "" && newMinor != "" && strings.HasSuffix(x, ".gitMinor="+oldMinor) {
			x = strings.TrimSuffix(x, oldMinor) + newMinor
		}
		l.Build.LDFlagsX = append(l.Build.LDFlagsX, x)
	}
	if isGoMod {
		return generateGoModLock(ctx, r, req, src, l)
	}
	var unpinned []Unpinned
	for _, root := range groupRoots(deps, req) {
		if root.conflict != "" {
			unpinned = append(unpinned, Unpinned{root.path, root.rev, root.conflict})
			continue
		}
		if ex := excludedIn(t, root.path, root.rev); ex != nil {
			l.Excluded = append(l.Excluded, pins.Excluded{Root: root.path, UpstreamRev: root.rev, Reason: ex.Reason})
			continue
		}
		if e, from := reuse(req.Known, root.path, root.rev); e != nil {
			e.Found = reusedFound(e.Found, from)
			l.Vendor = append(l.Vendor, *e)
			continue
		}
		if ov := overriddenIn(t, root.path); ov != nil {
			unpinned = append(unpinned, Unpinned{root.path, root.rev, fmt.Sprintf("the template overrides this root (%s); decide whether the override still applies at this revision", ov.Fixes)})
			continue
		}
		m, found, err := resolve(ctx, r, root.path, root.rev, root.comment, req.Hints)
		if err != nil {
			unpinned = append(unpinned, Unpinned{root.path, root.rev, err.Error()})
			continue
		}
		l.Vendor = append(l.Vendor, pins.VendorEntry{Root: root.path, Module: m, UpstreamRev: root.rev, Found: found})
	}
	if err := setFix(ctx, r, l, src.Dir); err != nil {
		return nil, nil, err
	}
	if len(unpinned) == 0 {
		if err := l.Validate(); err != nil {
			return nil, nil, fmt.Errorf("generated lock for %s %s (from %s): %w", req.Project, req.Version, manifest, err)
		}
	}
	return l, unpinned, nil
}

// minor is the minor number of a semver version ("12" for v1.12.4).
func minor(v string) string {
	mm := strings.Split(strings.TrimPrefix(semver.MajorMinor(v), "v"), ".")
	if len(mm) != 2 {
		return ""
	}
	return mm[1]
}

// root is a vendored repository root and the manifest revision for it.
type root struct {
	path, rev, comment string
	conflict           string
}

// groupRoots maps manifest import paths to repository roots, in manifest
// order: a root some known lock or the template names (longest prefix), or
// else the hosting rule (github.com/owner/repo, golang.org/x/repo, ...).
func groupRoots(deps []srctree.ManifestDep, req Request) []*root {
	known := map[string]bool{}
	for _, l := range append([]*pins.Lock{req.Template}, req.Known...) {
		for _, v := range l.Vendor {
			known[v.Root] = true
		}
		for _, e := range l.Excluded {
			known[e.Root] = true
		}
	}
	var out []*root
	byPath := map[string]*root{}
	for _, d := range deps {
		p := rootOf(d.ImportPath, known)
		r := byPath[p]
		if r == nil {
			r = &root{path: p, rev: d.Rev, comment: d.Comment}
			byPath[p] = r
			out = append(out, r)
			continue
		}
		if r.rev != d.Rev && r.conflict == "" {
			r.conflict = fmt.Sprintf("the manifest names two revisions under this root (%s and %s at %s)", r.rev, d.Rev, d.ImportPath)
		}
	}
	return out
}

func rootOf(importPath string, known map[string]bool) string {
	best := ""
	for p := importPath; p != "." && p != "/"; p = path.Dir(p) {
		if known[p] {
			best = p
		}
	}
	if best != "" {
		return best
	}
	parts := strings.Split(importPath, "/")
	n := 2
	switch {
	case parts[0] == "github.com", parts[0] == "bitbucket.org", parts[0] == "gitlab.com",
		parts[0] == "golang.org" && len(parts) > 1 && parts[1] == "x",
		parts[0] == "gopkg.in" && len(parts) > 2 && !strings.Contains(parts[1], "."):
		n = 3
	}
	return strings.Join(parts[:min(n, len(parts))], "/")
}

// excludedIn finds the template's exclusion of rootPath at rev: its reason
// (e.g. "the proxy refuses this commit") holds for that revision only.
func excludedIn(l *pins.Lock, rootPath, rev string) *pins.Excluded {
	for i := range l.Excluded {
		if l.Excluded[i].Root == rootPath && l.Excluded[i].UpstreamRev == rev {
			return &l.Excluded[i]
		}
	}
	return nil
}

func overriddenIn(l *pins.Lock, rootPath string) *pins.Override {
	for _, v := range l.Vendor {
		if v.Root == rootPath && v.Override != nil {
			return v.Override
		}
	}
	return nil
}

// reuse finds an entry pinning rootPath at rev in the known locks.
func reuse(known []*pins.Lock, rootPath, rev string) (*pins.VendorEntry, *pins.Lock) {
	for _, l := range known {
		for _, v := range l.Vendor {
			if v.Root == rootPath && v.UpstreamRev == rev {
				e := v
				return &e, l
			}
		}
	}
	return nil, nil
}

// reusedFound records where a reused pin came from, once.
func reusedFound(found string, from *pins.Lock) string {
	tag := fmt.Sprintf("same rev as %s %s", from.Project, from.Version)
	if strings.HasPrefix(found, "same rev as ") {
		return found
	}
	if found == "" {
		return tag
	}
	return tag + "; there: " + found
}

// resolve pins rootPath at rev through the proxy.
func resolve(ctx context.Context, r Resolver, rootPath, rev, comment string, hints []Hint) (pins.Module, string, error) {
	var errs []error
	for _, h := range hints {
		if !h.matches(rootPath, rev) {
			continue
		}
		d, err := r.Download(ctx, h.Path, h.Version)
		if err == nil {
			return d.Module, "commit " + rev + ": hint " + h.Version + " (" + h.Note + "), served by the proxy", nil
		}
		errs = append(errs, err)
	}
	if semver.IsValid(comment) && semver.Canonical(comment) == comment {
		for _, v := range []string{comment, comment + "+incompatible"} {
			d, err := r.Download(ctx, rootPath, v)
			if err == nil {
				return d.Module, "tag " + comment + " from the Godeps Comment, resolved through the proxy", nil
			}
			errs = append(errs, err)
		}
	}
	if semver.IsValid(rev) {
		d, err := r.Download(ctx, rootPath, rev)
		if err == nil {
			return d.Module, "tag " + rev + ", resolved through the proxy", nil
		}
		return pins.Module{}, "", errors.Join(append(errs, err)...)
	}
	d, err := r.Download(ctx, rootPath, rev)
	if err == nil {
		return d.Module, "commit " + rev + " resolved through the proxy to " + d.Version, nil
	}
	errs = append(errs, err)
	// The proxy may serve only the v0.0.0 form of a commit's pseudo-version.
	var de *DownloadError
	if errors.As(err, &de) && module.IsPseudoVersion(de.Resolved) {
		t, terr := module.PseudoVersionTime(de.Resolved)
		short, rerr := module.PseudoVersionRev(de.Resolved)
		if terr == nil && rerr == nil {
			v0 := module.PseudoVersion("", "", t, short)
			if d, err := r.Download(ctx, rootPath, v0); err == nil {
				return d.Module, "commit " + rev + ": canonical " + de.Resolved + " refused, v0.0.0 form served", nil
			} else {
				errs = append(errs, err)
			}
		}
	}
	return pins.Module{}, "", errors.Join(errs...)
}

// setFix chooses the fix kind from the tree's cgroupfs driver (the
// project's own libcontainer or, from runc 1.3 on, the
// github.com/opencontainers/cgroups module; a kubelet's vendored runc
// module's): none when its source cannot activate kmem (kmemsrc), buildtag
// when it has kmem_disabled.go, patch otherwise.
func setFix(ctx context.Context, r Resolver, l *pins.Lock, srcDir string) error {
	l.Build.Tags = slices.DeleteFunc(l.Build.Tags, func(t string) bool { return t == pins.NokmemTag })
	dir, rel, err := driverSource(ctx, r, l, srcDir)
	if err != nil {
		return err
	}
	if dir == "" {
		l.Fix = pins.Fix{Kind: pins.FixPatch}
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, pins.MemoryFile)); err == nil {
		rep, err := kmemsrc.Read(dir)
		if err != nil {
			return fmt.Errorf("%s %s: cgroupfs driver: %w", l.Project, l.Version, err)
		}
		if !rep.Activates() {
			l.Fix = pins.Fix{Kind: pins.FixNone, Requires: path.Join(rel, pins.MemoryFile)}
			return nil
		}
	}
	if _, err := os.Stat(filepath.Join(dir, pins.KmemDisabledFile)); err == nil {
		l.Fix = pins.Fix{Kind: pins.FixBuildTag, Tag: pins.NokmemTag, Requires: path.Join(rel, pins.KmemDisabledFile)}
		l.Build.Tags = append(l.Build.Tags, pins.NokmemTag)
	} else {
		l.Fix = pins.Fix{Kind: pins.FixPatch}
	}
	return nil
}

// cgroupsModule holds libcontainer's cgroup drivers from runc 1.3 on
// (runc #4638 moved libcontainer/cgroups there).
const cgroupsModule = "github.com/opencontainers/cgroups"

// driverSource finds the cgroupfs driver package l builds with: its
// directory on disk and its slash path in the tree (as fix.requires names
// it). dir is "" for a kubelet that vendors no runc.
func driverSource(ctx context.Context, r Resolver, l *pins.Lock, srcDir string) (dir, rel string, err error) {
	const ownFS = "libcontainer/cgroups/fs"
	if l.Source.Path == runcModule {
		own := filepath.Join(srcDir, filepath.FromSlash(ownFS))
		if _, err := os.Stat(own); err == nil {
			return own, ownFS, nil
		}
		m, err := goModRequire(srcDir, cgroupsModule)
		if err != nil {
			return own, ownFS, nil // no driver to read: the fix is a patch
		}
		d, err := r.Download(ctx, m.Path, m.Version)
		if err != nil {
			return "", "", fmt.Errorf("cgroup drivers: %w", err)
		}
		return filepath.Join(d.Dir, "fs"), "vendor/" + cgroupsModule + "/fs", nil
	}
	var runc *pins.Module
	if l.GoMod != nil {
		if m, _, err := srctree.Provider(l, runcModule); err == nil && m.Path == runcModule {
			runc = &m
		}
	} else if i := slices.IndexFunc(l.Vendor, func(v pins.VendorEntry) bool { return v.Root == runcModule }); i >= 0 {
		runc = &l.Vendor[i].Module
	}
	if runc == nil {
		return "", "", nil
	}
	d, err := r.Download(ctx, runc.Path, runc.Version)
	if err != nil {
		return "", "", fmt.Errorf("vendored runc: %w", err)
	}
	return filepath.Join(d.Dir, filepath.FromSlash(ownFS)), "vendor/" + runcModule + "/" + ownFS, nil
}

// goModRequire is the version of modPath that the go.mod in dir requires.
func goModRequire(dir, modPath string) (pins.Module, error) {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return pins.Module{}, err
	}
	f, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return pins.Module{}, err
	}
	for _, rq := range f.Require {
		if rq.Mod.Path == modPath {
			return pins.Module{Path: modPath, Version: rq.Mod.Version}, nil
		}
	}
	return pins.Module{}, fmt.Errorf("go.mod does not require %s", modPath)
}

// DownloadError is a failed download; Resolved is the version the proxy
// resolved the query to, when it got that far.
type DownloadError struct {
	Query, Resolved, Msg string
}

func (e *DownloadError) Error() string { return e.Query + ": " + e.Msg }

// GoResolver downloads with `go mod download -json` (GOPROXY, GOSUMDB and
// GOMODCACHE apply; the h1 is the one the go command checked against the
// checksum database).
type GoResolver struct {
	Env []string
}

// Download implements Resolver.
func (g GoResolver) Download(ctx context.Context, modPath, query string) (Download, error) {
	dir, err := os.MkdirTemp("", "nokmem-lockgen-")
	if err != nil {
		return Download{}, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modPath+"@"+query)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), g.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var d struct{ Path, Version, Info, Dir, Sum, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		return Download{}, &DownloadError{Query: modPath + "@" + query, Msg: strings.TrimSpace(errors.Join(runErr, err).Error() + ": " + stderr.String())}
	}
	if d.Error != "" || runErr != nil || d.Sum == "" {
		msg := d.Error
		if msg == "" {
			msg = strings.TrimSpace(fmt.Sprint(runErr, ": ", stderr.String()))
		}
		return Download{}, &DownloadError{Query: modPath + "@" + query, Resolved: d.Version, Msg: msg}
	}
	var info struct{ Time string }
	if data, err := os.ReadFile(d.Info); err == nil {
		_ = json.Unmarshal(data, &info)
	}
	return Download{Module: pins.Module{Path: d.Path, Version: d.Version, H1: d.Sum}, Dir: d.Dir, Time: info.Time}, nil
}

// Compare lists how two locks differ in what they pin (source, toolchain,
// fix, build tags, each vendor root's module, h1 and upstream revision, the
// excluded roots), ignoring prose such as how a pin was found.
func Compare(want, got *pins.Lock) []string {
	var diffs []string
	add := func(format string, a ...any) { diffs = append(diffs, fmt.Sprintf(format, a...)) }
	if want.Source.Module != got.Source.Module || want.Source.Commit != got.Source.Commit || want.Source.CommitTime != got.Source.CommitTime {
		add("source: %s %s %s, generated %s %s %s", want.Source.Module, want.Source.Commit, want.Source.CommitTime, got.Source.Module, got.Source.Commit, got.Source.CommitTime)
	}
	if (want.Source.CommitUnknown == "") != (got.Source.CommitUnknown == "") {
		add("source: commitUnknown %q, generated %q", want.Source.CommitUnknown, got.Source.CommitUnknown)
	}
	if want.Toolchain != got.Toolchain {
		add("toolchain: %s, generated %s", want.Toolchain, got.Toolchain)
	}
	if want.Fix != got.Fix {
		add("fix: %+v, generated %+v", want.Fix, got.Fix)
	}
	if !slices.Equal(want.Build.Tags, got.Build.Tags) {
		add("build tags: %v, generated %v", want.Build.Tags, got.Build.Tags)
	}
	if want.Source.Kind != got.Source.Kind {
		add("source kind: %q, generated %q", want.Source.Kind, got.Source.Kind)
	}
	if want.GoMod != nil && got.GoMod != nil {
		diffs = append(diffs, compareGoMod(want.GoMod, got.GoMod)...)
	}
	type pin struct {
		m   pins.Module
		rev string
	}
	w, g := map[string]pin{}, map[string]pin{}
	for _, v := range want.Vendor {
		w[v.Root] = pin{v.Module, v.UpstreamRev}
	}
	for _, v := range got.Vendor {
		g[v.Root] = pin{v.Module, v.UpstreamRev}
	}
	for _, v := range want.Vendor {
		if gp, ok := g[v.Root]; !ok {
			add("vendor %s: missing from the generated lock", v.Root)
		} else if gp != w[v.Root] {
			add("vendor %s: %s (%s) rev %s, generated %s (%s) rev %s", v.Root, v.Module, v.Module.H1, v.UpstreamRev, gp.m, gp.m.H1, gp.rev)
		}
	}
	for _, v := range got.Vendor {
		if _, ok := w[v.Root]; !ok {
			add("vendor %s: only in the generated lock", v.Root)
		}
	}
	ex := func(l *pins.Lock) []string {
		var s []string
		for _, e := range l.Excluded {
			s = append(s, e.Root+"@"+e.UpstreamRev)
		}
		slices.Sort(s)
		return s
	}
	if !slices.Equal(ex(want), ex(got)) {
		add("excluded: %v, generated %v", ex(want), ex(got))
	}
	return diffs
}
