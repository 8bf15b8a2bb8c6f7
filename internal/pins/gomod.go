package pins

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/module"
)

// GoMod is the dependency pin of a go.mod tree (source.kind gomod: kubelet
// 1.15+, runc rc92+). The tree keeps upstream's go.mod, changed only by
// Replace, and gets a go.sum generated from Modules, so the go command
// builds exactly this graph (GOFLAGS=-mod=mod, GOPROXY=off) and every
// module it reads was checked against the lock first.
type GoMod struct {
	// Load are the packages (import patterns relative to the module, or
	// import paths) whose graph Modules covers: the build packages and the
	// packages the proofs test. pins:generate loads them to find Modules.
	Load []string `json:"load"`
	// Replace lists the lock's changes to upstream's go.mod, each with a reason.
	Replace []Replace `json:"replace,omitempty"`
	// Modules are every module of the build graph (after Replace): the
	// go.mod h1 of each, and the zip h1 of those whose packages are loaded
	// (or that the go command opens to resolve an import path).
	Modules []GoModule `json:"modules"`
}

// GoModule is one module of a go.mod tree's graph, as go.sum records it.
type GoModule struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	// H1 is the zip's h1 ("" when the build reads only the module's go.mod).
	H1 string `json:"h1,omitempty"`
	// GoModH1 is the h1 of the module's go.mod file.
	GoModH1 string `json:"goModH1"`
}

// String returns path@version.
func (m GoModule) String() string { return m.Path + "@" + m.Version }

// Replace kinds: why a go.mod tree's module differs from upstream's go.mod.
const (
	// ReplaceStaging: upstream replaces the module with a staging directory
	// that the module zip lacks (it holds nested modules); the published
	// module at the matching version takes its place.
	ReplaceStaging = "staging"
	// ReplaceMirror: the module's host is gone; a byte-identical mirror
	// under another path serves the same commit.
	ReplaceMirror = "mirror"
	// ReplaceStub: the module is not served, and no package of it is in
	// the loaded graph: a directory holding only its go.mod stands in.
	ReplaceStub = "stub"
	// ReplaceOverride: a deliberate version change (a fix), with DropWhen.
	ReplaceOverride = "override"
)

// Replace is one replace directive the lock adds to upstream's go.mod
// (for every version of Path, replacing upstream's own directive for it).
type Replace struct {
	// Path is the module path replaced.
	Path string `json:"path"`
	// Kind is ReplaceStaging, ReplaceMirror, ReplaceStub or ReplaceOverride.
	Kind string `json:"kind"`
	// With is the replacement module (every kind but stub); it must be in
	// Modules, so its hashes are pinned.
	With *ModVersion `json:"with,omitempty"`
	// Upstream is what upstream's go.mod had for Path (its replacement
	// directory or version), for the record.
	Upstream string `json:"upstream,omitempty"`
	// Reason says why.
	Reason string `json:"reason"`
	// DropWhen (override) says when the replace can go.
	DropWhen string `json:"dropWhen,omitempty"`
}

// ModVersion is a module path and version.
type ModVersion struct {
	Path    string `json:"path"`
	Version string `json:"version"`
}

func (m ModVersion) String() string { return m.Path + "@" + m.Version }

// StubDir is where a go.mod tree keeps its stub modules, relative to the source root.
const StubDir = ".nokmem-stubs"

// Zips returns the modules whose zip h1 the lock pins.
func (g *GoMod) Zips() []Module {
	var ms []Module
	for _, m := range g.Modules {
		if m.H1 != "" {
			ms = append(ms, Module{Path: m.Path, Version: m.Version, H1: m.H1})
		}
	}
	return ms
}

// GoModFiles returns every module's go.mod file as a Module whose H1 is the go.mod h1.
func (g *GoMod) GoModFiles() []Module {
	ms := make([]Module, 0, len(g.Modules))
	for _, m := range g.Modules {
		ms = append(ms, Module{Path: m.Path, Version: m.Version, H1: m.GoModH1})
	}
	return ms
}

// GoSum is the go.sum of the tree: one zip line (when pinned) and one
// go.mod line per module, sorted as the go command writes them.
func (g *GoMod) GoSum() []byte {
	var lines []string
	for _, m := range g.Modules {
		if m.H1 != "" {
			lines = append(lines, m.Path+" "+m.Version+" "+m.H1)
		}
		lines = append(lines, m.Path+" "+m.Version+"/go.mod "+m.GoModH1)
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n")
}

// Module returns the graph's module at path@version, or nil.
func (g *GoMod) Module(path, version string) *GoModule {
	for i := range g.Modules {
		if g.Modules[i].Path == path && g.Modules[i].Version == version {
			return &g.Modules[i]
		}
	}
	return nil
}

// validateGoMod checks a source.kind gomod lock.
func (l *Lock) validateGoMod() error {
	g := l.GoMod
	if g == nil {
		return fmt.Errorf("source.kind %s needs gomod: (the module graph)", SourceGoMod)
	}
	var errs []error
	if len(l.Vendor) > 0 || len(l.Excluded) > 0 || l.Staging != nil {
		errs = append(errs, fmt.Errorf("source.kind %s: vendor, excluded and staging are for GOPATH trees; the graph is in gomod", SourceGoMod))
	}
	if len(g.Load) == 0 {
		errs = append(errs, errors.New("gomod: load names no packages"))
	}
	if len(g.Modules) == 0 {
		errs = append(errs, errors.New("gomod: no modules"))
	}
	seen := map[string]bool{}
	for _, m := range g.Modules {
		what := "gomod module " + m.String()
		if err := module.Check(m.Path, m.Version); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		if seen[m.String()] {
			errs = append(errs, fmt.Errorf("%s: listed twice", what))
		}
		seen[m.String()] = true
		if !strings.HasPrefix(m.GoModH1, "h1:") {
			errs = append(errs, fmt.Errorf("%s: missing or malformed goModH1 %q", what, m.GoModH1))
		}
		if m.H1 != "" && !strings.HasPrefix(m.H1, "h1:") {
			errs = append(errs, fmt.Errorf("%s: malformed h1 %q", what, m.H1))
		}
	}
	replaced := map[string]bool{}
	for _, r := range g.Replace {
		what := "gomod replace " + r.Path
		if replaced[r.Path] {
			errs = append(errs, fmt.Errorf("%s: listed twice", what))
		}
		replaced[r.Path] = true
		if err := module.CheckPath(r.Path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		if r.Reason == "" {
			errs = append(errs, fmt.Errorf("%s: a reason is required", what))
		}
		switch r.Kind {
		case ReplaceStub:
			if r.With != nil {
				errs = append(errs, fmt.Errorf("%s: a stub replaces with a directory holding only go.mod, not with %s", what, r.With))
			}
			continue
		case ReplaceStaging, ReplaceMirror, ReplaceOverride:
		default:
			errs = append(errs, fmt.Errorf("%s: kind %q is not %s, %s, %s or %s", what, r.Kind, ReplaceStaging, ReplaceMirror, ReplaceStub, ReplaceOverride))
			continue
		}
		if r.Kind == ReplaceOverride && r.DropWhen == "" {
			errs = append(errs, fmt.Errorf("%s: an override needs dropWhen", what))
		}
		if r.With == nil || r.With.Path == "" || r.With.Version == "" {
			errs = append(errs, fmt.Errorf("%s: kind %s needs with: the replacement module path and version", what, r.Kind))
		} else if g.Module(r.With.Path, r.With.Version) == nil {
			errs = append(errs, fmt.Errorf("%s: the replacement %s is not in gomod.modules, so its hashes are not pinned", what, r.With))
		}
	}
	return errors.Join(errs...)
}

// Stubs returns the module paths the lock replaces with stubs, sorted.
func (g *GoMod) Stubs() []string {
	var s []string
	for _, r := range g.Replace {
		if r.Kind == ReplaceStub {
			s = append(s, r.Path)
		}
	}
	slices.Sort(s)
	return s
}
