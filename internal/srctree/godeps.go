package srctree

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nokmem/nokmem/internal/pins"
)

// godeps is the part of Godeps/Godeps.json checked here.
type godeps struct {
	Deps []struct {
		ImportPath string
		Rev        string
	}
}

// maxListed bounds how many problems CheckGodeps names.
const maxListed = 20

// CheckGodeps compares an assembled tree with upstream's Godeps/Godeps.json
// when the source has one (kubernetes does; runc has none and passes with 0):
// every import path Godeps.json lists must be covered by a lock vendor root
// whose upstreamRev is the Godeps revision, or by an excluded root, and each
// vendored one must be a directory with .go files. It returns how many import
// paths it checked.
func CheckGodeps(root string, l *pins.Lock) (int, error) {
	file := filepath.Join(root, "Godeps", "Godeps.json")
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var g godeps
	if err := json.Unmarshal(data, &g); err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	var problems []string
	for _, d := range g.Deps {
		if p := checkDep(root, l, d.ImportPath, d.Rev); p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		shown := problems
		if len(shown) > maxListed {
			shown = append(shown[:maxListed:maxListed], fmt.Sprintf("... and %d more", len(problems)-maxListed))
		}
		return len(g.Deps), fmt.Errorf("%s: %d of %d import paths do not match the tree:\n  %s",
			file, len(problems), len(g.Deps), strings.Join(shown, "\n  "))
	}
	return len(g.Deps), nil
}

// checkDep returns a description of what is wrong with one Godeps entry, or "".
func checkDep(root string, l *pins.Lock, importPath, rev string) string {
	for _, e := range l.Excluded {
		if hasPathPrefix(importPath, e.Root) {
			return ""
		}
	}
	var entry *pins.VendorEntry
	for i := range l.Vendor {
		if hasPathPrefix(importPath, l.Vendor[i].Root) && (entry == nil || len(l.Vendor[i].Root) > len(entry.Root)) {
			entry = &l.Vendor[i]
		}
	}
	if entry == nil {
		return importPath + ": no vendor root in the lock"
	}
	if entry.UpstreamRev != "" && entry.UpstreamRev != rev {
		return fmt.Sprintf("%s: Godeps.json has revision %s, the lock's root %s says %s", importPath, rev, entry.Root, entry.UpstreamRev)
	}
	dir := filepath.Join(root, "vendor", filepath.FromSlash(importPath))
	files, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Sprintf("%s: %v", importPath, err)
	}
	for _, f := range files {
		if !f.IsDir() && strings.HasSuffix(f.Name(), ".go") {
			return ""
		}
	}
	return importPath + ": no .go files in " + dir
}
