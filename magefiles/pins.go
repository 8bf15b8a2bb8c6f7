//go:build mage

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/lockgen"
	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
)

// Pins checks the lock files under vendor-pins/.
type Pins mg.Namespace

// pinsDir is the lock file folder, relative to the repository root (mage's working directory).
const pinsDir = "vendor-pins"

// Verify downloads every module of vendor-pins/<project>/<version>.yaml
// through the Go module proxy (GOPROXY etc. apply) and checks each zip's h1.
// A warm module cache is rehashed, not trusted; GOMODCACHE=$(mktemp -d)
// forces a real re-download.
func (Pins) Verify(ctx context.Context, project, version string) error {
	l, err := pins.Load(pinsDir, project, version)
	if err != nil {
		return err
	}
	start := time.Now()
	got, err := newFetcher().Fetch(ctx, l.Modules())
	if err != nil {
		return err
	}
	if l.GoMod != nil {
		mods, err := newFetcher().FetchGoMods(ctx, l.GoMod.GoModFiles())
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "pins %s %s: %d zips and %d go.mod files verified against their h1 in %s (%d replaces)\n",
			project, version, len(got), len(mods), time.Since(start).Round(time.Millisecond), len(l.GoMod.Replace))
		return nil
	}
	fmt.Fprintf(os.Stderr, "pins %s %s: %d modules verified against their h1 in %s (%d vendor roots, %d excluded)\n",
		project, version, len(got), time.Since(start).Round(time.Millisecond), len(l.Vendor), len(l.Excluded))
	return nil
}

// Generate writes a lock for project@version (commit: the upstream commit
// of that version, which the proxy does not record) from the version's
// Godeps.json or vendor.conf: pins of existing locks are reused for
// identical revisions, the rest is resolved through the module proxy (with
// vendor-pins/pseudo-versions.txt for commits it cannot resolve by hash). What
// cannot be pinned is listed, the draft goes to _build/pins/ and the target
// fails. When the commit is not known, pass "unknown: <why>" as commit: the
// lock gets an empty source.commit and source.commitUnknown <why>.
// A complete new lock goes to
// vendor-pins/<project>/<version>.yaml; when one exists, the generated lock
// goes to _build/pins/<project>/<version>.yaml and is compared with it.
func (Pins) Generate(ctx context.Context, project, version, commit string) error {
	start := time.Now()
	_, tmpl, known, hints, err := generatorInputs(project)
	if err != nil {
		return err
	}
	req := lockgen.Request{Project: project, Version: version, Commit: commit, Template: tmpl, Known: known, Hints: hints}
	if why, ok := strings.CutPrefix(commit, "unknown:"); ok {
		req.Commit, req.CommitUnknown = "", strings.TrimSpace(why)
	}
	l, unpinned, err := lockgen.Generate(ctx, lockgen.GoResolver{}, req)
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(l)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("# Lock file for %s %s, written by `go tool mage pins:generate %s %s %s` from upstream's\n# vendor manifest (pins reused from existing locks for identical revisions, the rest resolved through the\n# module proxy, h1 as checked against the checksum database). Read by internal/pins.\n", project, version, project, version, commit)
	if l.GoMod != nil {
		header = fmt.Sprintf("# Lock file for %s %s, written by `go tool mage pins:generate %s %s %q` from upstream's go.mod:\n# gomod.replace are the changes to it, each with its reason; gomod.modules is the go.sum the go command\n# wrote loading gomod.load against the module proxy and the checksum database (cross-checked with\n# upstream's go.sum). Read by internal/pins; the tree's go.sum is generated from it.\n", project, version, project, version, commit)
	}
	committed, lerr := pins.Load(pinsDir, project, version)
	exists := lerr == nil
	out := pins.Path(pinsDir, project, version)
	if exists || len(unpinned) > 0 {
		out = pins.Path(filepath.Join(repo.BuildRoot(), "pins"), project, version)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(out, append([]byte(header), data...), 0o644); err != nil {
		return err
	}
	if len(unpinned) > 0 {
		for _, u := range unpinned {
			fmt.Fprintf(os.Stderr, "not pinned: %s\n", u)
		}
		return fmt.Errorf("pins %s %s: %d roots could not be pinned (listed above); draft without them in %s, nothing written to %s", project, version, len(unpinned), out, pinsDir)
	}
	if l.GoMod != nil {
		fmt.Fprintf(os.Stderr, "pins %s %s: wrote %s (%d modules, %d zips, %d replaces, fix %s) in %s\n", project, version, out, len(l.GoMod.Modules), len(l.GoMod.Zips()), len(l.GoMod.Replace), l.Fix.Kind, time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Fprintf(os.Stderr, "pins %s %s: wrote %s (%d vendor roots, %d excluded, fix %s) in %s\n", project, version, out, len(l.Vendor), len(l.Excluded), l.Fix.Kind, time.Since(start).Round(time.Millisecond))
	}
	if !exists {
		return nil
	}
	if diffs := lockgen.Compare(committed, l); len(diffs) > 0 {
		return fmt.Errorf("generated %s differs from %s:\n  %s", out, pins.Path(pinsDir, project, version), strings.Join(diffs, "\n  "))
	}
	fmt.Fprintf(os.Stderr, "pins %s %s: the generated lock pins exactly what %s pins\n", project, version, pins.Path(pinsDir, project, version))
	return nil
}

// generatorInputs loads what pins:generate and the audit targets share: the
// matrix, the project's default lock (template), every buildable lock and
// the pseudo-version hints.
func generatorInputs(project string) (*pins.Matrix, *pins.Lock, []*pins.Lock, []lockgen.Hint, error) {
	m, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	def := m.Default(project)
	if def == "" {
		return nil, nil, nil, nil, fmt.Errorf("%s: no default version in %s to take the build settings from", project, filepath.Join(pinsDir, pins.MatrixFile))
	}
	tmpl, err := pins.Load(pinsDir, project, def)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var known []*pins.Lock
	for _, p := range []string{"kubernetes", "runc"} {
		for _, v := range m.Buildable(p) {
			l, err := pins.Load(pinsDir, p, v)
			if err != nil {
				return nil, nil, nil, nil, err
			}
			known = append(known, l)
		}
	}
	hintFile := filepath.Join(pinsDir, "pseudo-versions.txt")
	hintData, err := os.ReadFile(hintFile)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	hints, err := lockgen.ParseHints(hintData)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("%s: %w", hintFile, err)
	}
	return m, tmpl, known, hints, nil
}

// audit reads project@version's source and prints whether it activates
// kmem, which fix applies and whether a lock exists (JSON on stdout).
func audit(ctx context.Context, project, version string) error {
	m, tmpl, known, hints, err := generatorInputs(project)
	if err != nil {
		return err
	}
	a, err := lockgen.AuditVersion(ctx, lockgen.GoResolver{}, lockgen.AuditRequest{
		Project: project, Version: version, Template: tmpl, Known: known, Hints: hints, Matrix: m, PinsDir: pinsDir,
	})
	if err != nil {
		return err
	}
	verdict := "unaffected: MemoryGroup.Apply does not activate kmem"
	if a.ActivatesKmem {
		verdict = "affected: MemoryGroup.Apply activates kmem; fix: " + a.Fix
	}
	lock := "no lock"
	if a.Lock {
		lock = "lock " + pins.Path(pinsDir, project, version)
	}
	status := a.Status
	if status == "" {
		status = "not in the matrix"
	}
	fmt.Fprintf(os.Stderr, "%s %s (libcontainer %s): %s; kmem_disabled.go %v; matrix: %s; %s\n", project, version, a.Runc, verdict, a.KmemDisabled, status, lock)
	return printJSON(a)
}

// newFetcher is the module fetcher every input target uses: the go command
// from PATH, the process environment, progress on stderr.
func newFetcher() *modfetch.Fetcher {
	return &modfetch.Fetcher{Progress: os.Stderr}
}
