package install

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/verify/binary"
)

// RollbackResult is what Rollback did.
type RollbackResult struct {
	// Nothing is true when no install was recorded.
	Nothing bool     `json:"nothing"`
	Message string   `json:"message"`
	Record  *Record  `json:"record,omitempty"`
	Actions []string `json:"actions,omitempty"`
}

// Rollback restores the original binaries recorded in stateDir, byte for
// byte with their old mode and owner, and removes binaries an install
// created. A target that holds neither a binary verify installed nor the
// original was changed by someone else: Rollback then changes nothing and
// names the file and both digests, unless force. Without a record it
// reports that there is nothing to roll back.
func Rollback(stateDir string, force bool) (*RollbackResult, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	if err := checkWritable(stateDir, nil); err != nil {
		return nil, err
	}
	rec, err := ReadRecord(stateDir)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return &RollbackResult{Nothing: true, Message: "nothing to roll back: no install is recorded in " + filepath.Join(stateDir, RecordFile)}, nil
	}
	dirs := rec.dirs()
	if err := checkWritable(stateDir, dirs); err != nil {
		return nil, err
	}
	if _, err := sweep(stateDir, dirs); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	if err := checkOwned(rec, force); err != nil {
		return nil, err
	}
	res := &RollbackResult{Record: rec}
	var errs []error
	for i := len(rec.Entries) - 1; i >= 0; i-- {
		action, err := restore(rec.Entries[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Actions = append(res.Actions, action)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("rollback: %w (the record is kept; rerun rollback)", err)
	}
	recPath := filepath.Join(stateDir, RecordFile)
	done := filepath.Join(stateDir, RolledBackPrefix+stamp())
	if err := os.Rename(recPath, done); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	res.Message = fmt.Sprintf("rolled back %s: %d binaries restored; record kept as %s", rec.Bundle.Name, len(res.Actions), done)
	if g, err := GC(stateDir, nil, false); err != nil {
		res.Message += fmt.Sprintf("; collecting old backups failed (%v): run verify gc", err)
	} else if len(g.Freed) > 0 {
		res.Message += fmt.Sprintf("; freed %d bytes of older backups", g.FreedBytes)
	}
	return res, nil
}

// checkOwned checks every target before anything is restored, so that a
// refusal changes nothing: each must hold a binary verify installed or the
// original, unless force.
func checkOwned(rec *Record, force bool) error {
	var foreign []string
	for _, e := range rec.Entries {
		cur := ""
		if fileExists(e.Installed) {
			var err error
			if cur, err = binary.FileSHA256(e.Installed); err != nil {
				return fmt.Errorf("rollback: %w", err)
			}
		}
		if !e.owns(cur) {
			foreign = append(foreign, fmt.Sprintf("%s has sha256 %s, verify installed %s", e.Installed, cmp.Or(cur, "(no file)"), e.NewSHA256))
		}
	}
	if len(foreign) > 0 && !force {
		return fmt.Errorf("rollback: %w: %s; nothing was rolled back", ErrForeignChange, strings.Join(foreign, "; "))
	}
	return nil
}

// restore puts back the original of e (or removes the file an install
// created) and says what it did.
func restore(e Entry) (string, error) {
	if !e.Existed {
		if err := os.Remove(e.Installed); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "removed " + e.Installed + " (created by install)", nil
	}
	if err := fault("restore " + e.Installed); err != nil {
		return "", err
	}
	if err := copyAtomic(e.Backup, e.Installed, e.Original.SHA256, e.Original.Mode, atomicfile.Owner{UID: e.Original.UID, GID: e.Original.GID}); err != nil {
		return "", fmt.Errorf("restore %s from %s: %w", e.Installed, e.Backup, err)
	}
	return fmt.Sprintf("restored %s (sha256 %s, mode %s, owner %d:%d)", e.Installed, e.Original.SHA256, e.Original.Mode, e.Original.UID, e.Original.GID), nil
}
