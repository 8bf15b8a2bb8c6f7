//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/sbom"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/internal/vulndb"
)

// pinnedVulnDB opens the pinned vulnerability database once per mage run.
var pinnedVulnDB = sync.OnceValues(func() (*vulndb.DB, error) {
	return vulndb.Open(context.Background(), newFetcher(), pinsDir)
})

// writeAccount writes VULNERABILITIES.json and VULNERABILITIES.md of the
// artifacts (file names in dir) built from in: the SBOM document that
// release.Write is about to write, matched against the pinned database,
// its supplement and the reviewed statements. release.Write then lists and
// signs both files with the rest of the set.
func writeAccount(dir string, in *inputs.Inputs, artifacts []string) error {
	db, err := pinnedVulnDB()
	if err != nil {
		return err
	}
	var arts []inputs.Artifact
	for _, n := range slices.Sorted(slices.Values(artifacts)) {
		d, err := sums.File(sums.SHA256, filepath.Join(dir, n))
		if err != nil {
			return err
		}
		arts = append(arts, inputs.Artifact{Name: n, SHA256: d})
	}
	doc, err := sbom.Document(in, arts)
	if err != nil {
		return err
	}
	a := vulndb.NewAccount(db)
	a.Artifacts = db.ScanDoc(doc)
	if err := a.Write(dir); err != nil {
		return err
	}
	for _, line := range a.Summary() {
		slog.Info("vulnerability account", "dir", dir, "artifact", line)
	}
	return nil
}

// Vuln re-checks, without rebuilding, every artifact against the pinned
// vulnerability database (vendor-pins/vulndb): the modules of every
// buildable kubelet and runc lock and of verify's go.sum (what their
// SBOMs list), and every published release set and bundle under _output
// (their SBOMs, against the VULNERABILITIES.json they were published
// with). It prints each artifact's findings and every finding that is new
// since publication, and fails when the default runc has a finding without
// a reviewed not_affected statement (the weekly CI job).
func Vuln(ctx context.Context) error {
	db, err := pinnedVulnDB()
	if err != nil {
		return err
	}
	return vulnCheck(ctx, db)
}

// VulnAt is Vuln against another version of golang.org/x/vulndb (a newer
// one, to see what it would change before pinning it): the go command
// checks its zip against the checksum database, and its h1 is printed for
// vendor-pins/vulndb/lock.yaml.
func VulnAt(ctx context.Context, version string) error {
	m, err := vulndb.Resolve(ctx, version)
	if err != nil {
		return err
	}
	db, err := vulndb.OpenVersion(ctx, newFetcher(), pinsDir, m)
	if err != nil {
		return err
	}
	fmt.Printf("database %s@%s h1 %s (to pin it: vendor-pins/vulndb/lock.yaml, then `go tool mage verify:genAffected`)\n", m.Path, m.Version, m.H1)
	return vulnCheck(ctx, db)
}

// vulnCheck prints the findings of the committed locks and the published
// artifacts and gates the default runc.
func vulnCheck(ctx context.Context, db *vulndb.DB) error {
	fmt.Printf("vulnerability database %s (%d records), supplement sha256 %s\n", db.Database, db.Len(), db.SupplementSHA256)
	m, err := pins.LoadMatrix(pinsDir)
	if err != nil {
		return err
	}
	locked, err := vulndb.LockAccount(ctx, db, pinsDir, ".")
	if err != nil {
		return err
	}
	fmt.Println("\ncommitted locks (what a build of each would carry):")
	for _, line := range locked.Summary() {
		fmt.Println("  " + line)
	}
	published := vulnPublished(db)
	gate := vulndb.NewAccount(db)
	for _, a := range locked.Artifacts {
		if a.Name == "runc" && a.Version == m.Default("runc") {
			gate.Artifacts = append(gate.Artifacts, a)
		}
	}
	return errors.Join(published, vulndb.BundleGate(gate))
}

// vulnPublished re-scans every SBOM under _output and reports the findings
// that its published VULNERABILITIES.json does not have. A published set
// without an account is an error: it was published before accounts.
func vulnPublished(db *vulndb.DB) error {
	var sboms []string
	for _, pattern := range []string{filepath.Join(repo.OutputRoot(), "*", "*", sbom.FileName), filepath.Join(repo.Verify(), sbom.FileName), filepath.Join(repo.OutputRoot(), "bundle*", "*", "*."+sbom.FileName)} {
		found, _ := filepath.Glob(pattern)
		sboms = append(sboms, found...)
	}
	if len(sboms) == 0 {
		fmt.Println("\nno published artifacts under _output")
		return nil
	}
	fmt.Println("\npublished artifacts:")
	var errs []error
	for _, p := range sboms {
		dir := filepath.Dir(p)
		old, err := vulndb.Read(filepath.Join(dir, vulndb.JSONFile))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: no vulnerability account: republish it (`go tool mage build`): %w", dir, err))
			continue
		}
		arts, err := db.ScanSBOM(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range arts {
			known := map[string]bool{}
			if o := old.Artifact(a.Name); o != nil {
				for _, f := range o.Findings {
					known[f.ID+" "+f.Module] = true
				}
			}
			var added []string
			for _, f := range a.Findings {
				if !known[f.ID+" "+f.Module] {
					added = append(added, fmt.Sprintf("%s %s@%s fixed in %s: %s", strings.Join(append([]string{f.ID}, f.Aliases...), " "), f.Module, f.Version, strings.Join(f.Fixed, ", "), f.Status))
				}
			}
			fmt.Printf("  %s: %s %s: %d findings, %d open, %d new since publication (database %s)\n", dir, a.Name, a.Version, len(a.Findings), a.Open, len(added), old.Database.Version)
			for _, line := range added {
				fmt.Println("    new: " + line)
			}
		}
	}
	return errors.Join(errs...)
}

// securityDoc holds the generated table of what each artifact carries.
const securityDoc = "docs/security.md"

// VulnDocs writes the table of docs/security.md: the findings of every
// buildable kubelet and runc lock and of verify against the pinned
// database (vulndb.LockAccount). `go test ./internal/vulndb` fails while
// the committed table is out of date.
func VulnDocs(ctx context.Context) error {
	db, err := pinnedVulnDB()
	if err != nil {
		return err
	}
	a, err := vulndb.LockAccount(ctx, db, pinsDir, ".")
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(securityDoc)
	if err != nil {
		return err
	}
	out, err := vulndb.ReplaceDocTable(doc, vulndb.DocTable(a))
	if err != nil {
		return fmt.Errorf("%s: %w", securityDoc, err)
	}
	return writeGenerated(securityDoc, out)
}
