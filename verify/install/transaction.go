package install

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/verify/binary"
)

// transaction replaces the binaries of one install run: it copies every
// present binary into the state directory, writes the record marked
// "installing", swaps each binary and marks the record "installed". Every
// change it makes is noted in its undo first, so that a failure at any step
// leaves the node and the record as they were.
type transaction struct {
	dir  string // the bundle folder
	rec  *Record
	run  []*Entry // the entries this run replaces (in rec.Entries)
	log  *slog.Logger
	undo *undo
}

// do runs the transaction; on failure it undoes what it did and returns
// the failure joined with any error of the undo.
func (t *transaction) do() error {
	backups := filepath.Join(t.undo.stateDir, BackupDir)
	t.undo.newDirs = missingDirs(backups)
	if err := os.MkdirAll(backups, 0o700); err != nil {
		return fmt.Errorf("install: state dir: %w", err)
	}
	for _, step := range []func() error{t.backup, t.writeRecord, t.swap, t.commit} {
		if err := step(); err != nil {
			return t.undo.apply(err)
		}
	}
	t.undo.forget(t.run)
	return nil
}

// backup copies each present binary into the backup folder; the first
// install's copy of a binary is its original.
func (t *transaction) backup() error {
	now := stamp()
	for i, e := range t.run {
		if !fileExists(e.Installed) {
			continue
		}
		cur, err := binary.FileSHA256(e.Installed)
		if err != nil {
			return err
		}
		dst := filepath.Join(t.undo.stateDir, BackupDir, fmt.Sprintf("%s-%d-%s", now, i, filepath.Base(e.Installed)))
		if err := fault("backup " + e.Installed); err != nil {
			return err
		}
		if err := copyAtomic(e.Installed, dst, cur, 0o600, atomicfile.KeepOwner); err != nil {
			return fmt.Errorf("install: back up %s: %w", e.Installed, err)
		}
		t.undo.copies[e] = dst
		if e.Backup == "" && e.Existed {
			e.Backup = dst // the first install's copy is the original
		}
	}
	return nil
}

// writeRecord writes the record marked "installing" before any swap.
func (t *transaction) writeRecord() error {
	if err := fault("record"); err != nil {
		return err
	}
	if err := writeRecord(t.undo.stateDir, t.rec); err != nil {
		return fmt.Errorf("install: record: %w", err)
	}
	return nil
}

// swap puts each binary of the bundle in place, 0755 root:root.
func (t *transaction) swap() error {
	for _, e := range t.run {
		src := filepath.Join(t.dir, e.Name)
		if err := fault("swap " + e.Installed); err != nil {
			return err
		}
		t.undo.swapped = append(t.undo.swapped, e)
		if err := copyAtomic(src, e.Installed, e.NewSHA256, 0o755, atomicfile.Owner{UID: 0, GID: 0}); err != nil {
			return fmt.Errorf("install %s to %s: %w", src, e.Installed, err)
		}
		t.log.Info("installed", "name", e.Name, "path", e.Installed, "sha256", e.NewSHA256, "original", e.Original.SHA256)
	}
	return nil
}

// commit marks the record "installed".
func (t *transaction) commit() error {
	t.rec.State = StateInstalled
	if err := fault("commit"); err != nil {
		return err
	}
	if err := writeRecord(t.undo.stateDir, t.rec); err != nil {
		return fmt.Errorf("install: record: %w", err)
	}
	return nil
}

// undo is what a failed transaction puts back: the binaries it swapped
// (newest first, each from this run's copy, or removed when it created
// it), the previous record (nil: none), and it removes this run's copies
// and the directories it created.
type undo struct {
	stateDir string
	prev     *Record
	copies   map[*Entry]string // this run's copy of the file an entry replaces
	swapped  []*Entry          // entries whose file this run replaced or began to
	newDirs  []string          // created by this run, deepest first
}

func newUndo(stateDir string, prev *Record) *undo {
	return &undo{stateDir: stateDir, prev: prev, copies: map[*Entry]string{}}
}

// apply undoes the transaction after cause; it returns cause joined with
// whatever could not be undone.
func (u *undo) apply(cause error) error {
	errs := []error{cause}
	for i := len(u.swapped) - 1; i >= 0; i-- {
		if err := u.putBack(u.swapped[i]); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", u.swapped[i].Installed, err))
		}
	}
	if err := restoreRecord(u.stateDir, u.prev); err != nil {
		errs = append(errs, err)
	}
	for _, c := range u.copies {
		os.Remove(c) // this run's copies; the previous record does not name them
	}
	for _, d := range u.newDirs {
		os.Remove(d) // only if empty
	}
	return errors.Join(errs...)
}

// putBack restores what the transaction replaced in e: its copy, or nothing.
func (u *undo) putBack(e *Entry) error {
	c, ok := u.copies[e]
	if !ok {
		if err := os.Remove(e.Installed); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	sum, err := binary.FileSHA256(c)
	if err != nil {
		return err
	}
	m := e.Original
	if sum != e.Original.SHA256 {
		m = Meta{Mode: 0o755}
	}
	return copyAtomic(c, e.Installed, sum, m.Mode, atomicfile.Owner{UID: m.UID, GID: m.GID})
}

// forget removes, after a committed transaction, this run's copies that
// are not an original the record keeps.
func (u *undo) forget(run []*Entry) {
	for _, e := range run {
		if c, ok := u.copies[e]; ok && c != e.Backup {
			os.Remove(c)
		}
	}
}

// missingDirs lists dir and those of its parents that do not exist, deepest first.
func missingDirs(dir string) []string {
	var out []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			return out
		}
		out = append(out, p)
	}
}
