package lockgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"

	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
)

// A go.mod-era version (kubernetes 1.15+, runc rc92+) gets a lock of
// source.kind gomod: upstream's go.mod stays, with replaces for what the
// proxy cannot serve as upstream wrote it (staging directories, dead
// hosts, unserved modules outside the loaded graph) and for the template's
// overrides; the module graph and every hash come from loading the build
// and test packages with the go command against the proxy and the checksum
// database (its go.sum), cross-checked with upstream's go.sum.

// GraphLoader loads packages in a module tree with the network on and
// returns the go.sum the go command wrote: a zip line for every module it
// opened and a go.mod line for every module of the graph.
type GraphLoader interface {
	LoadGraph(ctx context.Context, dir string, tags, pkgs []string) ([]byte, error)
}

// deadHosts maps module paths whose host no longer serves them to a
// mirror that holds the same repository.
var deadHosts = map[string]struct{ path, reason string }{
	"vbom.ml/util": {"github.com/fvbommel/util", "vbom.ml no longer serves the module (the proxy answers 403 for every version); github.com/fvbommel/util is the same repository under its author's GitHub path, at the same commit"},
}

// testPackages are the packages (besides the build packages) whose tests
// the proofs run on a tree (internal/kmemproof, internal/upstreamtest), so
// their graph must be in the lock too.
var testPackages = map[string][]string{
	"kubernetes": {
		"./pkg/kubelet/cm",
		"github.com/opencontainers/runc/libcontainer/cgroups/fs",
		"k8s.io/apimachinery/pkg/runtime/serializer",
		"k8s.io/apimachinery/pkg/runtime/serializer/json",
		"k8s.io/apimachinery/pkg/runtime/serializer/yaml",
	},
	"runc": {"./libcontainer/cgroups/fs"}, // runc 1.3+: cgroupsModule's fs (runcTestPackages)
}

// runcTestPackages is testPackages["runc"] for a runc tree: its own
// libcontainer/cgroups/fs, or from runc 1.3 on (which moved the drivers
// out) the fs package of github.com/opencontainers/cgroups.
func runcTestPackages(srcDir string) []string {
	if _, err := os.Stat(filepath.Join(srcDir, "libcontainer", "cgroups", "fs")); err != nil {
		return []string{cgroupsModule + "/fs"}
	}
	return testPackages["runc"]
}

// upstreamRuncBuild gives a runc tree that needs no fix upstream's own
// build settings: the Makefile's BUILDTAGS (runc 1.4: seccomp
// urfave_cli_no_docs) and, when main.go has extraVersion (runc 1.2+, whose
// version comes from the embedded VERSION file), the marker as
// main.extraVersion instead of main.version.
func upstreamRuncBuild(srcDir string, l *pins.Lock) error {
	mk, err := os.ReadFile(filepath.Join(srcDir, "Makefile"))
	if err != nil {
		return fmt.Errorf("%s %s: upstream build tags: %w", l.Project, l.Version, err)
	}
	m := regexp.MustCompile(`(?m)^BUILDTAGS\s*:?=[ \t]*(.*)$`).FindSubmatch(mk)
	if m == nil {
		return fmt.Errorf("%s %s: Makefile has no BUILDTAGS := line", l.Project, l.Version)
	}
	l.Build.Tags = strings.Fields(string(m[1]))
	main, err := os.ReadFile(filepath.Join(srcDir, "main.go"))
	if err != nil {
		return fmt.Errorf("%s %s: %w", l.Project, l.Version, err)
	}
	if bytes.Contains(main, []byte("var extraVersion")) {
		for i, x := range l.Build.LDFlagsX {
			if strings.HasPrefix(x, "main.version=") {
				l.Build.LDFlagsX[i] = "main.extraVersion=+{{.Marker}}"
			}
		}
	}
	return nil
}

// generateGoMod writes the gomod lock of req from the source module src,
// whose go.mod is in src.Dir.
func generateGoMod(ctx context.Context, r Resolver, req Request, src Download, l *pins.Lock) ([]Unpinned, error) {
	loader, ok := r.(GraphLoader)
	if !ok {
		return nil, fmt.Errorf("source %s has a go.mod: the resolver cannot load a module graph", src.Module)
	}
	data, err := os.ReadFile(filepath.Join(src.Dir, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Module, err)
	}
	mf, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Module, err)
	}
	l.Source.Kind = pins.SourceGoMod
	l.Staging = nil
	g := &pins.GoMod{}
	l.GoMod = g
	for _, p := range l.Build.Packages {
		pkg := path.Clean(p.Package)
		if pkg != "." {
			pkg = "./" + pkg // a relative pattern, not an import path
		}
		g.Load = append(g.Load, pkg)
	}
	if req.Project == "runc" {
		g.Load = append(g.Load, runcTestPackages(src.Dir)...)
	} else {
		g.Load = append(g.Load, testPackages[req.Project]...)
	}

	var unpinned []Unpinned
	upstreamVersion := map[string]string{}
	required := map[string]bool{}
	for _, rq := range mf.Require {
		upstreamVersion[rq.Mod.Path] = rq.Mod.Version
		required[rq.Mod.Path] = true
	}
	for _, rp := range mf.Replace {
		if !modfile.IsDirectoryPath(rp.New.Path) {
			if rp.New.Path == rp.Old.Path {
				upstreamVersion[rp.Old.Path] = rp.New.Version
			}
			continue
		}
		if !required[rp.Old.Path] {
			continue // not in the graph: the go command ignores the directive
		}
		if _, err := os.Stat(filepath.Join(src.Dir, filepath.FromSlash(rp.New.Path))); !errors.Is(err, fs.ErrNotExist) {
			continue // a directory of the zip
		}
		rep, err := stagingReplace(ctx, r, req, rp.Old.Path, rp.New.Path)
		if err != nil {
			unpinned = append(unpinned, Unpinned{Root: rp.Old.Path, Rev: rp.New.Path, Reason: err.Error()})
			continue
		}
		g.Replace = append(g.Replace, rep)
	}
	for _, p := range sortedKeys(upstreamVersion) {
		if m, ok := deadHosts[p]; ok {
			g.Replace = append(g.Replace, pins.Replace{Path: p, Kind: pins.ReplaceMirror, With: &pins.ModVersion{Path: m.path, Version: upstreamVersion[p]},
				Upstream: upstreamVersion[p], Reason: m.reason})
		}
	}
	for _, v := range req.Template.Vendor {
		up, ok := upstreamVersion[v.Module.Path]
		if v.Override == nil || !ok || semver.Compare(up, v.Module.Version) >= 0 {
			continue
		}
		g.Replace = append(g.Replace, pins.Replace{Path: v.Module.Path, Kind: pins.ReplaceOverride, With: &pins.ModVersion{Path: v.Module.Path, Version: v.Module.Version},
			Upstream: up, Reason: fmt.Sprintf("upstream's graph has %s; %s", up, withoutUpstreamPin(v.Override.Fixes)), DropWhen: v.Override.DropWhen})
	}
	if len(unpinned) > 0 {
		return unpinned, nil
	}

	work, err := os.MkdirTemp("", "nokmem-lockgen-gomod-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "src")
	if err := os.CopyFS(root, os.DirFS(src.Dir)); err != nil {
		return nil, fmt.Errorf("copy %s: %w", src.Module, err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(root, "go.mod"), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(root, "go.sum"), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := srctree.WriteGoMod(root, l); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "go.sum"), nil, 0o644); err != nil {
		return nil, err
	}
	tags := slices.Clone(l.Build.Tags)
	if l.Build.Static {
		tags = append(tags, gobuild.StaticTags...)
	}
	sum, err := loader.LoadGraph(ctx, root, tags, g.Load)
	if err != nil {
		return nil, fmt.Errorf("load the graph of %s: %w", strings.Join(g.Load, " "), err)
	}
	if g.Modules, err = parseGoSum(sum); err != nil {
		return nil, err
	}
	if upstream, err := os.ReadFile(filepath.Join(src.Dir, "go.sum")); err == nil {
		if err := crossCheck(g.Modules, upstream); err != nil {
			return nil, fmt.Errorf("%s: %w", src.Module, err)
		}
	}
	for _, rep := range g.Replace {
		if rep.With != nil && g.Module(rep.With.Path, rep.With.Version) == nil {
			return nil, fmt.Errorf("replace %s => %s: not in the loaded graph's go.sum", rep.Path, rep.With)
		}
	}
	return nil, nil
}

// stagingReplace replaces a module upstream takes from a directory the
// zip lacks: the published module at v0.<minor>.<patch> for kubernetes'
// staging repositories, or a stub when that is not served.
func stagingReplace(ctx context.Context, r Resolver, req Request, modPath, dir string) (pins.Replace, error) {
	if req.Project != "kubernetes" || !strings.HasPrefix(req.Version, "v1.") {
		return pins.Replace{}, fmt.Errorf("upstream's go.mod replaces it with %s, which the module zip lacks; no published form known", dir)
	}
	v := "v0." + strings.TrimPrefix(req.Version, "v1.")
	d, err := r.Download(ctx, modPath, v)
	if err == nil && d.Version == v {
		return pins.Replace{Path: modPath, Kind: pins.ReplaceStaging, With: &pins.ModVersion{Path: modPath, Version: v}, Upstream: dir,
			Reason: fmt.Sprintf("upstream builds it from %s, a nested module the k8s.io/kubernetes zip drops; the staging repository is published as %s %s for kubernetes %s", dir, modPath, v, req.Version)}, nil
	}
	msg := "resolves to another version"
	switch {
	case err != nil && strings.Contains(err.Error(), "403"):
		msg = "the module proxy answers 403"
	case err != nil:
		msg = err.Error()
	}
	return pins.Replace{Path: modPath, Kind: pins.ReplaceStub, Upstream: dir,
		Reason: fmt.Sprintf("%s %s is not served (%s); no package of it is in the loaded graph, so only its go.mod is needed", modPath, v, firstLine(msg))}, nil
}

// withoutUpstreamPin drops a leading "upstream pins ...;" clause of the
// template's override text, which names the template version's own pin.
func withoutUpstreamPin(fixes string) string {
	if strings.HasPrefix(fixes, "upstream pins ") {
		if _, rest, ok := strings.Cut(fixes, "; "); ok {
			return rest
		}
	}
	return fixes
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// parseGoSum reads go.sum lines into modules.
func parseGoSum(data []byte) ([]pins.GoModule, error) {
	var out []pins.GoModule
	idx := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("go.sum line %d: %q", n, sc.Text())
		}
		v, isMod := strings.CutSuffix(f[1], "/go.mod")
		key := f[0] + "@" + v
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, pins.GoModule{Path: f[0], Version: v})
		}
		if isMod {
			out[i].GoModH1 = f[2]
		} else {
			out[i].H1 = f[2]
		}
	}
	for _, m := range out {
		if m.GoModH1 == "" {
			return nil, fmt.Errorf("go.sum has no go.mod line for %s", m)
		}
	}
	return out, sc.Err()
}

// crossCheck compares the loaded graph's hashes with upstream's go.sum:
// a line both have must agree.
func crossCheck(mods []pins.GoModule, upstream []byte) error {
	up, err := parseGoSumLoose(upstream)
	if err != nil {
		return err
	}
	var bad []string
	for _, m := range mods {
		if h, ok := up[m.Path+" "+m.Version]; ok && m.H1 != "" && h != m.H1 {
			bad = append(bad, fmt.Sprintf("%s zip %s, upstream's go.sum %s", m, m.H1, h))
		}
		if h, ok := up[m.Path+" "+m.Version+"/go.mod"]; ok && h != m.GoModH1 {
			bad = append(bad, fmt.Sprintf("%s go.mod %s, upstream's go.sum %s", m, m.GoModH1, h))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("hashes differ from upstream's go.sum:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

func parseGoSumLoose(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			out[f[0]+" "+f[1]] = f[2]
		}
	}
	return out, nil
}

// versionLDFlags derives the -X settings of a kubernetes go.mod tree from
// upstream's hack/lib/version.sh: every package it stamps, as module-mode
// import paths (upstream builds with a vendor/ tree in GOPATH, where
// k8s.io/kubernetes/vendor/k8s.io/client-go is k8s.io/client-go here).
func versionLDFlags(srcDir, importPath, minor string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(srcDir, "hack", "lib", "version.sh"))
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`-X '\$\{KUBE_GO_PACKAGE\}/([A-Za-z0-9_./-]+)\.\$\{key\}=`)
	var pkgs []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		p := m[1]
		if v, ok := strings.CutPrefix(p, "vendor/"); ok {
			p = v
		} else {
			p = importPath + "/" + p
		}
		if !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return nil, errors.New("hack/lib/version.sh: no -X '${KUBE_GO_PACKAGE}/<package>.${key}=' lines")
	}
	var x []string
	for _, p := range pkgs {
		x = append(x,
			p+".gitVersion={{.Version}}+{{.Marker}}",
			p+".gitCommit={{.Commit}}",
			p+".gitTreeState=clean",
			p+".buildDate={{.CommitTime}}",
			p+".gitMajor=1",
			p+".gitMinor="+minor,
		)
	}
	return x, nil
}

// LoadGraph implements GraphLoader: `go list -deps -test` of pkgs in dir
// with -mod=mod, the caller's GOPROXY and GOSUMDB, and an empty go.sum in
// dir, which the go command fills with every hash it checked.
func (g GoResolver) LoadGraph(ctx context.Context, dir string, tags, pkgs []string) ([]byte, error) {
	args := []string{"list", "-deps", "-test", "-tags", strings.Join(tags, ",")}
	cmd := exec.CommandContext(ctx, "go", append(args, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), g.Env...)
	cmd.Env = append(cmd.Env, "GOFLAGS=-mod=mod", "GOWORK=off", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return os.ReadFile(filepath.Join(dir, "go.sum"))
}

// generateGoModLock finishes Generate for a source with a go.mod.
func generateGoModLock(ctx context.Context, r Resolver, req Request, src Download, l *pins.Lock) (*pins.Lock, []Unpinned, error) {
	if req.Project == "kubernetes" {
		x, err := versionLDFlags(src.Dir, l.Source.ImportPath, minor(req.Version))
		if err != nil {
			return nil, nil, fmt.Errorf("source %s: %w", src.Module, err)
		}
		l.Build.LDFlagsX = x
	}
	if l.Source.Path == runcModule {
		// A runc that needs no fix builds as upstream does; the tags
		// decide the graph, so before loading it.
		if err := setFix(ctx, r, l, src.Dir); err != nil {
			return nil, nil, err
		}
		if l.Fix.Kind == pins.FixNone {
			if err := upstreamRuncBuild(src.Dir, l); err != nil {
				return nil, nil, err
			}
		}
	}
	unpinned, err := generateGoMod(ctx, r, req, src, l)
	if err != nil || len(unpinned) > 0 {
		return l, unpinned, err
	}
	if err := setFix(ctx, r, l, src.Dir); err != nil {
		return nil, nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, nil, fmt.Errorf("generated lock for %s %s (from go.mod): %w", req.Project, req.Version, err)
	}
	return l, nil, nil
}

// compareGoMod lists how two go.mod pins differ: loaded packages,
// replaces (path, kind, replacement) and every module's hashes.
func compareGoMod(want, got *pins.GoMod) []string {
	var diffs []string
	if !slices.Equal(want.Load, got.Load) {
		diffs = append(diffs, fmt.Sprintf("gomod load: %v, generated %v", want.Load, got.Load))
	}
	rep := func(g *pins.GoMod) map[string]string {
		m := map[string]string{}
		for _, r := range g.Replace {
			m[r.Path] = r.Kind
			if r.With != nil {
				m[r.Path] += " " + r.With.String()
			}
		}
		return m
	}
	wr, gr := rep(want), rep(got)
	for _, p := range sortedKeys(wr) {
		if gr[p] != wr[p] {
			diffs = append(diffs, fmt.Sprintf("gomod replace %s: %q, generated %q", p, wr[p], gr[p]))
		}
	}
	for _, p := range sortedKeys(gr) {
		if _, ok := wr[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("gomod replace %s: only in the generated lock (%s)", p, gr[p]))
		}
	}
	mods := func(g *pins.GoMod) map[string]string {
		m := map[string]string{}
		for _, x := range g.Modules {
			m[x.String()] = x.H1 + " " + x.GoModH1
		}
		return m
	}
	wm, gm := mods(want), mods(got)
	for _, k := range sortedKeys(wm) {
		if g, ok := gm[k]; !ok {
			diffs = append(diffs, "gomod module "+k+": missing from the generated lock")
		} else if g != wm[k] {
			diffs = append(diffs, fmt.Sprintf("gomod module %s: %s, generated %s", k, wm[k], g))
		}
	}
	for _, k := range sortedKeys(gm) {
		if _, ok := wm[k]; !ok {
			diffs = append(diffs, "gomod module "+k+": only in the generated lock")
		}
	}
	return diffs
}
