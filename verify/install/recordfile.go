package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/sealedjson"
)

// recordVersion is bumped when the record format changes incompatibly.
// Version 2: checksum, kept binaries, replaced paths.
const recordVersion = 2

// AbandonedPrefix and RolledBackPrefix start the names under which a record
// is set aside (Abandon) or kept after a rollback.
const (
	AbandonedPrefix  = RecordFile + ".abandoned-"
	RolledBackPrefix = RecordFile + ".rolled-back-"
)

// ErrUntrustedRecord: the install record is not one this state directory's
// installs wrote (garbage, edited, from another state directory or an
// older format); install and rollback refuse to act on it.
var ErrUntrustedRecord = errors.New("untrusted install record")

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// stamp names set-aside records and backups in time order.
func stamp() string { return time.Now().UTC().Format("20060102T150405.000000000Z") }

// sum is the checksum of r's content.
func (r *Record) sum() (string, error) { return sealedjson.Sum(r, &r.Checksum) }

// validate checks a record read back from stateDir: its checksum, its
// state, and that every path is one an install into stateDir writes.
func (r *Record) validate(stateDir string) error {
	sum, err := r.sum()
	switch {
	case err != nil:
		return err
	case r.Version != recordVersion:
		return fmt.Errorf("format version %d, want %d (written by another verify release?)", r.Version, recordVersion)
	case r.Checksum != sum:
		return fmt.Errorf("checksum %q does not match the content (%s): edited or damaged", r.Checksum, sum)
	case r.State != StateInstalling && r.State != StateInstalled:
		return fmt.Errorf("unknown state %q", r.State)
	}
	backups := filepath.Join(stateDir, BackupDir)
	seen := map[string]bool{}
	for _, e := range r.Entries {
		switch {
		case e.Name == "" || filepath.Base(e.Name) != e.Name:
			return fmt.Errorf("entry %q: not a binary name", e.Name)
		case !filepath.IsAbs(e.Installed) || filepath.Clean(e.Installed) != e.Installed:
			return fmt.Errorf("entry %s: installed path %q is not clean and absolute", e.Name, e.Installed)
		case seen[e.Installed]:
			return fmt.Errorf("%s twice", e.Installed)
		case e.Existed && (e.Backup == "" || !hexSHA256.MatchString(e.Original.SHA256)):
			return fmt.Errorf("%s existed but has no backup and original sha256", e.Installed)
		case e.Backup != "" && filepath.Dir(e.Backup) != backups:
			return fmt.Errorf("%s: backup %s is not in %s: the record belongs to another state directory", e.Installed, e.Backup, backups)
		case !hexSHA256.MatchString(e.NewSHA256):
			return fmt.Errorf("%s: sha256 %q", e.Installed, e.NewSHA256)
		}
		seen[e.Installed] = true
		for _, s := range e.Ours {
			if !hexSHA256.MatchString(s) {
				return fmt.Errorf("%s: sha256 %q", e.Installed, s)
			}
		}
	}
	return nil
}

// ReadRecord reads and checks the install record; nil (no error) when
// there is none. A record that fails the checks is refused with
// ErrUntrustedRecord, naming the file.
func ReadRecord(stateDir string) (*Record, error) {
	p := filepath.Join(stateDir, RecordFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("install record: %w", err)
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(&r)
	if err == nil {
		err = r.validate(stateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w (nothing was changed; the record cannot be trusted to say what an earlier install replaced: compare the node's binaries with it, then set it aside)",
			ErrUntrustedRecord, p, err)
	}
	return &r, nil
}

func writeRecord(stateDir string, r *Record) error {
	r.Version = recordVersion
	b, err := sealedjson.Encode(r, &r.Checksum)
	if err != nil {
		return fmt.Errorf("encode install record: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(stateDir, RecordFile), b, 0o644)
}

// restoreRecord puts the record back as it was before a failed run (prev
// nil: there was none).
func restoreRecord(stateDir string, prev *Record) error {
	if prev == nil {
		if err := os.Remove(filepath.Join(stateDir, RecordFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("undo record: %w", err)
		}
		return nil
	}
	return writeRecord(stateDir, prev)
}
