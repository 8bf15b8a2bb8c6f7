package vulndb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/mod/semver"
	"sigs.k8s.io/yaml"
)

// SupplementEntry is one reviewed advisory the database misses.
type SupplementEntry struct {
	ID         string   `json:"id"`
	Aliases    []string `json:"aliases"`
	Summary    string   `json:"summary"`
	Module     string   `json:"module"`
	Ranges     []Range  `json:"ranges"`
	Fixed      []string `json:"fixed"`
	FixCommits []string `json:"fixCommits,omitempty"`
	// Why the database does not have it.
	Why string `json:"why"`
	// References cite the upstream fix and advisory.
	References []string `json:"references"`
	// Reviewed says who checked the entry against upstream, and when.
	Reviewed string `json:"reviewed"`
}

type supplement struct {
	Entries []SupplementEntry `json:"entries"`
}

// LoadSupplement reads and checks the supplement file; sha256 is its hex
// digest, recorded in every account.
func LoadSupplement(p string) (entries []SupplementEntry, sha string, err error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, "", fmt.Errorf("vulnerability supplement: %w", err)
	}
	sum := sha256.Sum256(data)
	var s supplement
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, "", fmt.Errorf("%s: %w", p, err)
	}
	for i, e := range s.Entries {
		if err := e.validate(); err != nil {
			return nil, "", fmt.Errorf("%s: entry %d (%s): %w", p, i+1, e.ID, err)
		}
	}
	return s.Entries, hex.EncodeToString(sum[:]), nil
}

// addSupplement adds the supplement's entries.
func (db *DB) addSupplement(p string) error {
	entries, sha, err := LoadSupplement(p)
	if err != nil {
		return err
	}
	db.SupplementSHA256 = sha
	for _, e := range entries {
		db.add(&Record{ID: e.ID, Aliases: e.Aliases, Summary: e.Summary, Module: e.Module, Ranges: e.Ranges, FixCommits: e.FixCommits, Source: "supplement"})
	}
	return nil
}

func (e *SupplementEntry) validate() error {
	switch {
	case e.ID == "" || e.Module == "" || e.Summary == "":
		return fmt.Errorf("%w: id, module and summary are required", ErrRecord)
	case len(e.Ranges) == 0:
		return fmt.Errorf("%w: no affected range", ErrRecord)
	case len(e.References) == 0 || e.Reviewed == "":
		return fmt.Errorf("%w: every entry needs its upstream references and a reviewed note", ErrRecord)
	}
	for _, r := range e.Ranges {
		for _, v := range []string{r.Introduced, r.Fixed} {
			if v != "" && !semver.IsValid(v) {
				return fmt.Errorf("%w: range version %q is not a Go module version", ErrRecord, v)
			}
		}
	}
	for _, c := range e.FixCommits {
		if len(c) != 40 || strings.Trim(c, "0123456789abcdef") != "" {
			return fmt.Errorf("%w: fix commit %q is not a full hash", ErrRecord, c)
		}
	}
	return nil
}

// OpenVEX vocabulary (OpenVEX specification v0.2.0, "Status Labels" and
// "Status Justifications") that statements may use.
const (
	StatusNotAffected = "not_affected"
	StatusAffected    = "affected"
	// StatusOpen is nokmem's status of a finding without a statement.
	StatusOpen = "open"
)

// Justifications are OpenVEX's justifications for not_affected.
var Justifications = []string{
	"component_not_present",
	"vulnerable_code_not_present",
	"vulnerable_code_not_in_execute_path",
	"vulnerable_code_cannot_be_controlled_by_adversary",
	"inline_mitigations_already_exist",
}

// Statement is a reviewed statement about one vulnerability in some of
// nokmem's artifacts, in OpenVEX's terms.
type Statement struct {
	// Vulnerability is the OSV id or one of its aliases (a CVE id).
	Vulnerability string `json:"vulnerability"`
	// Products are the artifact names (kubelet, runc, verify).
	Products []string `json:"products"`
	// Versions are the artifact versions it is about; empty: all.
	Versions []string `json:"versions,omitempty"`
	// Module is the affected component; empty: any.
	Module        string `json:"module,omitempty"`
	Status        string `json:"status"`
	Justification string `json:"justification,omitempty"`
	// ImpactStatement says why not_affected holds (the evidence).
	ImpactStatement string `json:"impact_statement,omitempty"`
	// ActionStatement says what is done about an affected finding.
	ActionStatement string `json:"action_statement,omitempty"`
	// Reviewed says who reviewed it, and when.
	Reviewed string `json:"reviewed"`
}

type vexFile struct {
	// Templates are shared fields that statements merge in (YAML <<: *name).
	Templates  map[string]any `json:"templates,omitempty"`
	Statements []Statement    `json:"statements"`
}

// LoadVEX reads and checks the statements file.
func LoadVEX(p string) ([]Statement, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("vulnerability statements: %w", err)
	}
	var f vexFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	for i, s := range f.Statements {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("%s: statement %d (%s): %w", p, i+1, s.Vulnerability, err)
		}
	}
	return f.Statements, nil
}

// ErrStatement is a statement outside the vocabulary or without its evidence.
var ErrStatement = fmt.Errorf("bad vulnerability statement")

func (s *Statement) validate() error {
	switch {
	case s.Vulnerability == "" || len(s.Products) == 0:
		return fmt.Errorf("%w: vulnerability and products are required", ErrStatement)
	case s.Reviewed == "":
		return fmt.Errorf("%w: no reviewed note", ErrStatement)
	}
	switch s.Status {
	case StatusNotAffected:
		if !slices.Contains(Justifications, s.Justification) {
			return fmt.Errorf("%w: not_affected needs an OpenVEX justification (%s), got %q", ErrStatement, strings.Join(Justifications, ", "), s.Justification)
		}
		if s.ImpactStatement == "" {
			return fmt.Errorf("%w: not_affected needs an impact_statement with the evidence", ErrStatement)
		}
	case StatusAffected:
		if s.ActionStatement == "" {
			return fmt.Errorf("%w: affected needs an action_statement", ErrStatement)
		}
	default:
		return fmt.Errorf("%w: status %q: use %s or %s (a finding without a statement is open)", ErrStatement, s.Status, StatusNotAffected, StatusAffected)
	}
	return nil
}

// statementFor returns the statement about record r in module version of
// artifact product at version, or nil.
func statementFor(stmts []Statement, r *Record, product, version string) *Statement {
	for i := range stmts {
		s := &stmts[i]
		if s.Vulnerability != r.ID && !slices.Contains(r.Aliases, s.Vulnerability) {
			continue
		}
		if !slices.Contains(s.Products, product) || (len(s.Versions) > 0 && !slices.Contains(s.Versions, version)) {
			continue
		}
		if s.Module != "" && s.Module != r.Module {
			continue
		}
		return s
	}
	return nil
}
