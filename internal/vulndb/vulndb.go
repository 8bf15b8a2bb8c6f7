// Package vulndb is nokmem's vulnerability knowledge for the pipeline: the
// pinned Go vulnerability database (golang.org/x/vulndb, OSV records under
// data/osv/, read from its h1-checked module zip), the reviewed supplement
// for what that database misses, and the reviewed OpenVEX-style statements
// about findings (vendor-pins/vulndb). Scan matches an artifact's SBOM
// modules against them and returns its vulnerability account
// (VULNERABILITIES.json and VULNERABILITIES.md of every release set and
// bundle).
package vulndb

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/verify/affected/vulnorder"
)

// Files under the vendor-pins folder.
var (
	LockFile       = filepath.Join("vulndb", "lock.yaml")
	SupplementFile = filepath.Join("vulndb", "supplement.yaml")
	VEXFile        = filepath.Join("vulndb", "vex.yaml")
)

// DatabaseModule is the module path of the Go vulnerability database.
const DatabaseModule = "golang.org/x/vulndb"

// Module paths that name the Go distribution in the database.
const (
	Stdlib    = "stdlib"
	Toolchain = "toolchain"
)

// Lock pins the database module.
type Lock struct {
	Database pins.Module `json:"database"`
}

// LoadLock reads vendor-pins/vulndb/lock.yaml under pinsDir.
func LoadLock(pinsDir string) (*Lock, error) {
	p := filepath.Join(pinsDir, LockFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("vulndb lock: %w", err)
	}
	var l Lock
	if err := yaml.UnmarshalStrict(data, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if l.Database.Path != DatabaseModule || l.Database.Version == "" || !strings.HasPrefix(l.Database.H1, "h1:") {
		return nil, fmt.Errorf("%s: database must name %s with a version and an h1, got %+v", p, DatabaseModule, l.Database)
	}
	return &l, nil
}

// Range is one affected range [Introduced, Fixed) in canonical "v"
// versions; "" Introduced is from the first version, "" Fixed is unfixed.
type Range struct {
	Introduced string `json:"introduced,omitempty"`
	Fixed      string `json:"fixed,omitempty"`
}

// Record is one advisory for one module.
type Record struct {
	ID      string
	Aliases []string
	Summary string
	Module  string
	Ranges  []Range
	// FixCommits carry the fix inside an affected range (supplement only).
	FixCommits []string
	// Source is "vulndb" or "supplement".
	Source string
}

// Fixed lists the fixed version of every range, in order.
func (r *Record) Fixed() []string {
	var out []string
	for _, rg := range r.Ranges {
		if rg.Fixed != "" && !slices.Contains(out, rg.Fixed) {
			out = append(out, rg.Fixed)
		}
	}
	return out
}

// CVEs are the record's CVE aliases.
func (r *Record) CVEs() []string {
	var out []string
	for _, a := range r.Aliases {
		if strings.HasPrefix(a, "CVE-") {
			out = append(out, a)
		}
	}
	return out
}

// Affects reports whether module version v (with its upstream commit, ""
// when unknown) is in one of r's ranges and not built from a fix commit.
func (r *Record) Affects(version, commit string) bool {
	if commit != "" {
		for _, c := range r.FixCommits {
			if n := min(len(c), len(commit)); n >= 7 && c[:n] == commit[:n] {
				return false
			}
		}
	}
	runc := r.Module == RuncModule
	for _, rg := range r.Ranges {
		if rg.Introduced != "" && vulnorder.Compare(runc, version, rg.Introduced) < 0 {
			continue
		}
		if rg.Fixed != "" && vulnorder.Compare(runc, version, rg.Fixed) >= 0 {
			continue
		}
		return true
	}
	return false
}

// Module paths of the projects verify knows by name.
const (
	RuncModule    = "github.com/opencontainers/runc"
	KubeletModule = "k8s.io/kubernetes"
)

// DB is the database and supplement, by module.
type DB struct {
	// Database is the pinned module the records come from.
	Database pins.Module
	// SupplementSHA256 is the sha256 of the supplement file.
	SupplementSHA256 string
	byModule         map[string][]*Record
	// VEX are the reviewed statements.
	VEX []Statement
}

// Records returns module's records, by id.
func (db *DB) Records(module string) []*Record { return db.byModule[module] }

// Len is the number of records.
func (db *DB) Len() int {
	n := 0
	for _, rs := range db.byModule {
		n += len(rs)
	}
	return n
}

func (db *DB) add(r *Record) {
	if db.byModule == nil {
		db.byModule = map[string][]*Record{}
	}
	db.byModule[r.Module] = append(db.byModule[r.Module], r)
}

func (db *DB) sort() {
	for _, rs := range db.byModule {
		sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	}
}

// Open fetches the pinned database through f (checking its zip's h1), and
// reads it with the supplement and the statements under pinsDir.
func Open(ctx context.Context, f *modfetch.Fetcher, pinsDir string) (*DB, error) {
	l, err := LoadLock(pinsDir)
	if err != nil {
		return nil, err
	}
	return OpenVersion(ctx, f, pinsDir, l.Database)
}

// OpenVersion is Open with another database version (its h1 is checked
// like the lock's).
func OpenVersion(ctx context.Context, f *modfetch.Fetcher, pinsDir string, m pins.Module) (*DB, error) {
	got, err := f.Fetch(ctx, []pins.Module{m})
	if err != nil {
		return nil, fmt.Errorf("vulnerability database: %w", err)
	}
	db, err := ReadZip(got[0].Zip, m)
	if err != nil {
		return nil, err
	}
	if err := db.addSupplement(filepath.Join(pinsDir, SupplementFile)); err != nil {
		return nil, err
	}
	if db.VEX, err = LoadVEX(filepath.Join(pinsDir, VEXFile)); err != nil {
		return nil, err
	}
	db.sort()
	return db, nil
}

// osvDir is the folder of the OSV records in the database module.
const osvDir = "data/osv/"

// ReadZip reads every OSV record of the database module zip (withdrawn
// records left out). A record that does not parse is an error naming it.
func ReadZip(zipPath string, m pins.Module) (*DB, error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", m, err)
	}
	defer zr.Close()
	db := &DB{Database: m}
	prefix := m.Path + "@" + m.Version + "/" + osvDir
	n := 0
	for _, zf := range zr.File {
		if !strings.HasPrefix(zf.Name, prefix) || path.Ext(zf.Name) != ".json" {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", m, zf.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", m, zf.Name, err)
		}
		if err := db.addOSV(data); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", m, strings.TrimPrefix(zf.Name, m.Path+"@"+m.Version+"/"), err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("vulnerability database %s: no OSV records under %s", m, osvDir)
	}
	db.sort()
	return db, nil
}

// ErrRecord is a malformed OSV record or supplement entry.
var ErrRecord = errors.New("malformed advisory")

// addOSV adds the Go-ecosystem SEMVER ranges of one OSV record.
func (db *DB) addOSV(data []byte) error {
	var v osvschema.Vulnerability
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &v); err != nil {
		return fmt.Errorf("%w: %w", ErrRecord, err)
	}
	if v.GetId() == "" {
		return fmt.Errorf("%w: no id", ErrRecord)
	}
	if v.GetWithdrawn() != nil {
		return nil
	}
	for _, a := range v.GetAffected() {
		if a.GetPackage().GetEcosystem() != "Go" {
			continue
		}
		r := &Record{ID: v.GetId(), Aliases: v.GetAliases(), Summary: v.GetSummary(), Module: a.GetPackage().GetName(), Source: "vulndb"}
		for _, rg := range a.GetRanges() {
			if rg.GetType() != osvschema.Range_SEMVER {
				continue
			}
			ranges, err := semverRanges(rg.GetEvents())
			if err != nil {
				return fmt.Errorf("%s %s: %w", v.GetId(), r.Module, err)
			}
			r.Ranges = append(r.Ranges, ranges...)
		}
		if len(r.Ranges) > 0 {
			db.add(r)
		}
	}
	return nil
}

// semverRanges turns OSV events (introduced/fixed pairs, in order) into ranges.
func semverRanges(events []*osvschema.Event) ([]Range, error) {
	var out []Range
	open := false
	for _, e := range events {
		switch {
		case e.GetIntroduced() != "":
			intro := ""
			if e.GetIntroduced() != "0" {
				intro = "v" + e.GetIntroduced()
			}
			out = append(out, Range{Introduced: intro})
			open = true
		case e.GetFixed() != "":
			if !open {
				return nil, fmt.Errorf("%w: fixed %s without introduced", ErrRecord, e.GetFixed())
			}
			out[len(out)-1].Fixed = "v" + e.GetFixed()
			open = false
		case e.GetLastAffected() != "", e.GetLimit() != "":
			return nil, fmt.Errorf("%w: last_affected/limit events are not used by the Go database", ErrRecord)
		}
	}
	return out, nil
}

// Resolve downloads the database module at version (a version or a query
// such as "latest") with the go command, which checks the zip against the
// Go checksum database (GOSUMDB), and returns it with its version and that
// h1, for OpenVersion and for the lock.
func Resolve(ctx context.Context, version string) (pins.Module, error) {
	m := pins.Module{Path: DatabaseModule, Version: version}
	dir, err := os.MkdirTemp("", "nokmem-vulndb-")
	if err != nil {
		return m, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", m.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err := cmd.Output()
	var d struct{ Version, Sum, Error string }
	if jerr := json.Unmarshal(out, &d); jerr != nil || d.Error != "" || err != nil {
		return m, fmt.Errorf("download %s: %v %s %v", m, err, d.Error, jerr)
	}
	if d.Version == "" || !strings.HasPrefix(d.Sum, "h1:") {
		return m, fmt.Errorf("download %s: the go command gave %s %q", m, d.Version, d.Sum)
	}
	m.Version, m.H1 = d.Version, d.Sum
	return m, nil
}
