package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spdx/tools-golang/spdx"

	"github.com/nokmem/nokmem/internal/release/sbom"
)

// Files of an account, in a release set and in a bundle.
const (
	JSONFile     = "VULNERABILITIES.json"
	MarkdownFile = "VULNERABILITIES.md"
)

// Schema names the format of VULNERABILITIES.json.
const Schema = "https://github.com/nokmem/nokmem/docs/security.md#vulnerabilitiesjson/v1"

// Component is one Go module (or the Go standard library) in an artifact.
type Component struct {
	Path, Version string
	// Commit is the upstream commit of the artifact's own source module.
	Commit string
}

// Account is the content of VULNERABILITIES.json.
type Account struct {
	Schema   string   `json:"schema"`
	Database Database `json:"database"`
	// Artifacts are the binaries, by name.
	Artifacts []Artifact `json:"artifacts"`
}

// Database names the knowledge the account was made with.
type Database struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	H1      string `json:"h1"`
	// SupplementSHA256 is the sha256 of vendor-pins/vulndb/supplement.yaml.
	SupplementSHA256 string `json:"supplement_sha256"`
}

// Artifact is one binary's findings.
type Artifact struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256,omitempty"`
	// Components is how many modules (and the standard library) were matched.
	Components int `json:"components"`
	// Open counts findings with status open.
	Open     int       `json:"open"`
	Findings []Finding `json:"findings"`
}

// Finding is one advisory that matches one component.
type Finding struct {
	ID string `json:"id"`
	// Aliases are the CVE ids.
	Aliases []string `json:"aliases"`
	Summary string   `json:"summary"`
	// Module and Version are the affected component as the artifact has it.
	Module  string `json:"module"`
	Version string `json:"version"`
	// Fixed lists the first fixed version of each release line.
	Fixed []string `json:"fixed"`
	// Status is open, not_affected or affected (OpenVEX terms).
	Status        string `json:"status"`
	Justification string `json:"justification,omitempty"`
	// Statement is the reviewed impact or action statement.
	Statement string `json:"statement,omitempty"`
	// Source is "vulndb" or "supplement".
	Source string `json:"source"`
}

// NewAccount is an empty account made with db.
func NewAccount(db *DB) *Account {
	return &Account{Schema: Schema, Database: Database{Module: db.Database.Path, Version: db.Database.Version, H1: db.Database.H1, SupplementSHA256: db.SupplementSHA256}}
}

// Scan matches the components of artifact name at version against db and
// its statements.
func (db *DB) Scan(name, version, sha256 string, comps []Component) Artifact {
	a := Artifact{Name: name, Version: version, SHA256: sha256, Components: len(comps), Findings: []Finding{}}
	for _, c := range comps {
		for _, r := range db.Records(c.Path) {
			if !r.Affects(c.Version, c.Commit) {
				continue
			}
			f := Finding{ID: r.ID, Aliases: r.CVEs(), Summary: r.Summary, Module: c.Path, Version: c.Version, Fixed: r.Fixed(), Status: StatusOpen, Source: r.Source}
			if f.Aliases == nil {
				f.Aliases = []string{}
			}
			if f.Fixed == nil {
				f.Fixed = []string{}
			}
			if s := statementFor(db.VEX, r, name, version); s != nil {
				f.Status, f.Justification, f.Statement = s.Status, s.Justification, s.ImpactStatement
				if s.Status == StatusAffected {
					f.Statement = s.ActionStatement
				}
			}
			if f.Status == StatusOpen {
				a.Open++
			}
			a.Findings = append(a.Findings, f)
		}
	}
	sort.SliceStable(a.Findings, func(i, j int) bool {
		fi, fj := a.Findings[i], a.Findings[j]
		if fi.Module != fj.Module {
			return fi.Module < fj.Module
		}
		return fi.ID < fj.ID
	})
	return a
}

// ScanSBOM reads an SPDX SBOM written by internal/release/sbom and scans
// each artifact it describes.
func (db *DB) ScanSBOM(path string) ([]Artifact, error) {
	doc, err := sbom.Read(path)
	if err != nil {
		return nil, err
	}
	out := db.ScanDoc(doc)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: the SBOM describes no artifact", path)
	}
	return out, nil
}

// ScanDoc scans each artifact an SBOM document describes.
func (db *DB) ScanDoc(doc *spdx.Document) []Artifact {
	arts, comps := Components(doc)
	var out []Artifact
	for _, p := range arts {
		sha := ""
		for _, c := range p.PackageChecksums {
			if c.Algorithm == "SHA256" {
				sha = c.Value
			}
		}
		out = append(out, db.Scan(p.PackageName, p.PackageVersion, sha, comps))
	}
	return out
}

// Components splits an SBOM into its artifact packages and the Go
// components they are built from: the source module (with its upstream
// commit), every module, and the standard library of the toolchain.
func Components(doc *spdx.Document) (artifacts []*spdx.Package, comps []Component) {
	for _, p := range doc.Packages {
		id := string(p.PackageSPDXIdentifier)
		switch {
		case strings.HasPrefix(id, string(sbom.ArtifactID(""))):
			artifacts = append(artifacts, p)
		case id == string(sbom.ToolchainID):
			comps = append(comps, ToolchainComponent(p.PackageVersion))
		case isGoModule(p):
			c := Component{Path: p.PackageName, Version: p.PackageVersion}
			if id == string(sbom.SourceID) {
				if rest, ok := strings.CutPrefix(p.PackageComment, "upstream commit "); ok {
					c.Commit, _, _ = strings.Cut(rest, ",")
				}
			}
			comps = append(comps, c)
		}
	}
	return artifacts, comps
}

func isGoModule(p *spdx.Package) bool {
	for _, r := range p.PackageExternalReferences {
		if strings.HasPrefix(r.Locator, "pkg:golang/") {
			return true
		}
	}
	return false
}

// Merge adds other's artifacts (an account made with the same database).
func (a *Account) Merge(other *Account) error {
	if other.Database != a.Database {
		return fmt.Errorf("accounts made with different databases: %+v and %+v", a.Database, other.Database)
	}
	a.Artifacts = append(a.Artifacts, other.Artifacts...)
	sort.SliceStable(a.Artifacts, func(i, j int) bool { return a.Artifacts[i].Name < a.Artifacts[j].Name })
	return nil
}

// MergeDirs merges the VULNERABILITIES.json of release set folders into
// one account (the bundle's).
func MergeDirs(dirs ...string) (*Account, error) {
	var out *Account
	for _, d := range dirs {
		a, err := Read(filepath.Join(d, JSONFile))
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = a
			continue
		}
		if err := out.Merge(a); err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
	}
	if out == nil {
		return nil, errors.New("vulnerability account: no release set to merge")
	}
	return out, nil
}

// Artifact returns the named artifact's findings, or nil.
func (a *Account) Artifact(name string) *Artifact {
	for i := range a.Artifacts {
		if a.Artifacts[i].Name == name {
			return &a.Artifacts[i]
		}
	}
	return nil
}

// ErrOpenFinding stops a build whose gated artifact has an open or
// affected finding.
var ErrOpenFinding = errors.New("finding(s) without a reviewed not_affected statement")

// RuncFix is what to do when the default bundle's runc has a finding.
const RuncFix = "build the bundle with a maintained runc that fixes them (vendor-pins/matrix.yaml's default runc; " +
	"its fixed versions are listed above), or, for a finding that does not apply to this build, commit a reviewed " +
	"not_affected statement with its evidence to vendor-pins/vulndb/vex.yaml (docs/security.md)"

// BundleGate is the default bundle's check: its runc has no finding
// without a reviewed not_affected statement. Kubelet findings are listed
// in the account and the release notes, not gated.
func BundleGate(a *Account) error { return a.Gate("runc", RuncFix) }

// Gate fails when artifact name has a finding that is not covered by a
// not_affected statement, listing them and what to do.
func (a *Account) Gate(name, fix string) error {
	art := a.Artifact(name)
	if art == nil {
		return fmt.Errorf("vulnerability account: no artifact %s", name)
	}
	var lines []string
	for _, f := range art.Findings {
		if f.Status != StatusNotAffected {
			lines = append(lines, fmt.Sprintf("  %s %s@%s (fixed in %s): %s", strings.Join(append([]string{f.ID}, f.Aliases...), " "), f.Module, f.Version, orNone(f.Fixed), f.Status))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s: %d %w (database %s):\n%s\nwhat to do: %s",
		name, art.Version, len(lines), ErrOpenFinding, a.Database.Version, strings.Join(lines, "\n"), fix)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no release"
	}
	return strings.Join(s, ", ")
}

// JSON is the account as written to VULNERABILITIES.json.
func (a *Account) JSON() ([]byte, error) {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Markdown is the short human table of VULNERABILITIES.md.
func (a *Account) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Known vulnerabilities\n\n")
	fmt.Fprintf(&b, "Matched against %s@%s (h1 %s) and nokmem's reviewed supplement (sha256 %s).\n", a.Database.Module, a.Database.Version, a.Database.H1, a.Database.SupplementSHA256)
	fmt.Fprintf(&b, "Status: open (no statement), not_affected or affected (reviewed OpenVEX statement). The details are in %s.\n", JSONFile)
	for _, art := range a.Artifacts {
		fmt.Fprintf(&b, "\n## %s %s\n\n", art.Name, art.Version)
		fmt.Fprintf(&b, "%d components, %d findings, %d open.\n", art.Components, len(art.Findings), art.Open)
		if len(art.Findings) == 0 {
			continue
		}
		b.WriteString("\n| id | CVE | module | version | fixed in | status |\n|---|---|---|---|---|---|\n")
		for _, f := range art.Findings {
			status := f.Status
			if f.Justification != "" {
				status += " (" + f.Justification + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", f.ID, strings.Join(f.Aliases, " "), f.Module, f.Version, orNone(f.Fixed), status)
		}
	}
	return b.Bytes()
}

// Write writes VULNERABILITIES.json and VULNERABILITIES.md into dir.
func (a *Account) Write(dir string) error {
	data, err := a.JSON()
	if err != nil {
		return err
	}
	for name, content := range map[string][]byte{JSONFile: data, MarkdownFile: a.Markdown()} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return fmt.Errorf("vulnerability account: %w", err)
		}
	}
	return nil
}

// Read reads a VULNERABILITIES.json.
func Read(path string) (*Account, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vulnerability account: %w", err)
	}
	var a Account
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if a.Schema != Schema {
		return nil, fmt.Errorf("%s: schema %q, want %q", path, a.Schema, Schema)
	}
	return &a, nil
}

// Summary lines, one per artifact with findings, for release notes.
func (a *Account) Summary() []string {
	var out []string
	for _, art := range a.Artifacts {
		var open []string
		for _, f := range art.Findings {
			if f.Status == StatusOpen {
				open = append(open, f.ID)
			}
		}
		slices.Sort(open)
		line := fmt.Sprintf("%s %s: %d findings, %d open", art.Name, art.Version, len(art.Findings), art.Open)
		if len(open) > 0 {
			line += ": " + strings.Join(open, " ")
		}
		out = append(out, line)
	}
	return out
}
