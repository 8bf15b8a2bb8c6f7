package srctree

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nokmem/nokmem/internal/pins"
)

// maxListed bounds how many problems CheckUpstream names.
const maxListed = 20

// dep is one vendored import path as upstream's manifest records it.
type dep struct {
	importPath, rev string
	// needGo: the manifest lists packages (Godeps.json), so the directory
	// must hold .go files; vendor.conf lists repository roots, which need not.
	needGo bool
}

// manifests are upstream's vendor manifests CheckUpstream knows, by file
// path relative to the source root.
var manifests = map[string]func([]byte) ([]dep, error){
	"Godeps/Godeps.json": parseGodeps,
	"vendor.conf":        parseVendorConf,
}

// CheckUpstream compares an assembled tree with upstream's vendor manifests
// when the source has them (kubernetes: Godeps/Godeps.json, runc:
// vendor.conf): every import path listed must be covered by a lock vendor
// root whose upstreamRev is the manifest's revision, or by an excluded root,
// and must exist in vendor/ (with .go files, for Godeps' package paths). It
// returns how many import paths it checked.
func CheckUpstream(root string, l *pins.Lock) (int, error) {
	checked := 0
	for name, parse := range manifests {
		file := filepath.Join(root, filepath.FromSlash(name))
		data, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return checked, err
		}
		deps, err := parse(data)
		if err != nil {
			return checked, fmt.Errorf("parse %s of %s: %w", name, l.Source.Module, err)
		}
		var problems []string
		for _, d := range deps {
			if p := checkDep(root, l, d); p != "" {
				problems = append(problems, p)
			}
		}
		checked += len(deps)
		if len(problems) > 0 {
			shown := problems
			if len(shown) > maxListed {
				shown = append(shown[:maxListed:maxListed], fmt.Sprintf("... and %d more", len(problems)-maxListed))
			}
			return checked, fmt.Errorf("%s of %s: %d of %d import paths do not match the tree:\n  %s",
				name, l.Source.Module, len(problems), len(deps), strings.Join(shown, "\n  "))
		}
	}
	return checked, nil
}

// ManifestDep is one entry of upstream's vendor manifest.
type ManifestDep struct {
	ImportPath, Rev string
	// Comment is Godeps.json's Comment (often `git describe` of Rev, e.g. v1.2.0 or v1.2.0-3-gabcdef).
	Comment string
}

// ReadManifest reads the vendor manifest of the source tree at root
// (Godeps/Godeps.json or vendor.conf) and returns its file name and entries
// in file order.
func ReadManifest(root string) (string, []ManifestDep, error) {
	for _, name := range []string{"Godeps/Godeps.json", "vendor.conf"} {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		var out []ManifestDep
		if name == "vendor.conf" {
			deps, err := parseVendorConf(data)
			if err != nil {
				return "", nil, fmt.Errorf("parse %s: %w", name, err)
			}
			for _, d := range deps {
				out = append(out, ManifestDep{ImportPath: d.importPath, Rev: d.rev})
			}
			return name, out, nil
		}
		var g struct {
			Deps []struct{ ImportPath, Rev, Comment string }
		}
		if err := json.Unmarshal(data, &g); err != nil {
			return "", nil, fmt.Errorf("parse %s: %w", name, err)
		}
		for _, d := range g.Deps {
			out = append(out, ManifestDep{ImportPath: d.ImportPath, Rev: d.Rev, Comment: d.Comment})
		}
		return name, out, nil
	}
	return "", nil, fmt.Errorf("%s: no Godeps/Godeps.json or vendor.conf", root)
}

func parseGodeps(data []byte) ([]dep, error) {
	var g struct {
		Deps []struct{ ImportPath, Rev string }
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, err
	}
	deps := make([]dep, 0, len(g.Deps))
	for _, d := range g.Deps {
		deps = append(deps, dep{importPath: d.ImportPath, rev: d.Rev, needGo: true})
	}
	return deps, nil
}

// parseVendorConf reads vndr's "importpath revision [repository]" lines.
func parseVendorConf(data []byte) ([]dep, error) {
	var deps []dep
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case len(fields) < 2:
			return nil, fmt.Errorf("line %d: want \"importpath revision [repository]\", got %q", n, sc.Text())
		}
		deps = append(deps, dep{importPath: fields[0], rev: fields[1]})
	}
	return deps, sc.Err()
}

// checkDep returns a description of what is wrong with one manifest entry, or "".
func checkDep(root string, l *pins.Lock, d dep) string {
	for _, e := range l.Excluded {
		if hasPathPrefix(d.importPath, e.Root) {
			return ""
		}
	}
	var entry *pins.VendorEntry
	for i := range l.Vendor {
		if hasPathPrefix(d.importPath, l.Vendor[i].Root) && (entry == nil || len(l.Vendor[i].Root) > len(entry.Root)) {
			entry = &l.Vendor[i]
		}
	}
	if entry == nil {
		return d.importPath + ": no vendor root in the lock"
	}
	if entry.UpstreamRev != "" && entry.UpstreamRev != d.rev {
		return fmt.Sprintf("%s: upstream has revision %s, the lock's root %s says %s", d.importPath, d.rev, entry.Root, entry.UpstreamRev)
	}
	dir := filepath.Join(root, "vendor", filepath.FromSlash(d.importPath))
	files, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Sprintf("%s: %v", d.importPath, err)
	}
	for _, f := range files {
		if !d.needGo || !f.IsDir() && strings.HasSuffix(f.Name(), ".go") {
			return ""
		}
	}
	if d.needGo {
		return d.importPath + ": no .go files in " + dir
	}
	return d.importPath + ": empty directory " + dir
}
