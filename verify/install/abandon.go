package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// AbandonResult is what Abandon did.
type AbandonResult struct {
	// Nothing is true when there was no record to set aside.
	Nothing bool `json:"nothing"`
	// SetAside is where the record now is.
	SetAside string `json:"set_aside,omitempty"`
	Message  string `json:"message"`
}

// Abandon sets the install record aside as install.json.abandoned-<time>,
// trusted or not, and changes nothing else: no binary, no backup (gc keeps
// the backups an abandoned record names). Install then starts afresh and
// rollback has nothing to do.
func Abandon(stateDir string) (*AbandonResult, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	if err := checkWritable(stateDir, nil); err != nil {
		return nil, err
	}
	p := filepath.Join(stateDir, RecordFile)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return &AbandonResult{Nothing: true, Message: "nothing to abandon: no install record at " + p}, nil
	}
	dst := filepath.Join(stateDir, AbandonedPrefix+stamp())
	if err := os.Rename(p, dst); err != nil {
		return nil, fmt.Errorf("abandon: %w", err)
	}
	if err := atomicfile.SyncDir(stateDir); err != nil {
		return nil, fmt.Errorf("abandon: %w", err)
	}
	return &AbandonResult{SetAside: dst, Message: fmt.Sprintf("set %s aside as %s; no binary and no backup was changed (the backups it names stay in %s)", p, dst, filepath.Join(stateDir, BackupDir))}, nil
}
