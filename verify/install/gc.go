package install

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// GCResult is what GC found and freed.
type GCResult struct {
	// Swept are temporary files and folders of verify runs that were killed
	// (atomicfile.TempPrefix names; their process is gone).
	Swept []string `json:"swept"`
	// Freed are backups and set-aside records no longer needed, and
	// FreedBytes their size.
	Freed      []string `json:"freed"`
	FreedBytes int64    `json:"freed_bytes"`
	// Kept are the backups still needed (the current record's originals,
	// those of the last rolled-back install and of abandoned records), and
	// KeptBytes their size.
	Kept      []string `json:"kept"`
	KeptBytes int64    `json:"kept_bytes"`
}

// sweepDirs are stateDir, its backup folder and dirs, each once.
func sweepDirs(stateDir string, dirs []string) []string {
	all := append([]string{stateDir, filepath.Join(stateDir, BackupDir)}, dirs...)
	slices.Sort(all)
	return slices.Compact(all)
}

// sweep removes the temporary files of killed runs from stateDir, its
// backup folder, and dirs.
func sweep(stateDir string, dirs []string) ([]string, error) {
	var out []string
	var errs []error
	for _, d := range sweepDirs(stateDir, dirs) {
		got, err := atomicfile.Sweep(d)
		out = append(out, got...)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// GC sweeps the temporary files of killed runs from the state directory,
// the directories of the recorded targets and dirs (e.g. --tmp-dir), and
// frees the backups no record needs: it keeps the originals of the current
// install (the rollback target), the backups and record of the last
// rolled-back install, and whatever an abandoned record names. With dryRun
// it only reports. An untrusted install record stops it before any backup
// is freed.
func GC(stateDir string, dirs []string, dryRun bool) (*GCResult, error) {
	res := &GCResult{Swept: []string{}, Freed: []string{}, Kept: []string{}}
	cur, err := ReadRecord(stateDir)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		for _, e := range cur.Entries {
			dirs = append(dirs, filepath.Dir(e.Installed))
		}
	}
	if dryRun {
		for _, d := range sweepDirs(stateDir, dirs) {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if atomicfile.Stray(e.Name()) {
					res.Swept = append(res.Swept, filepath.Join(d, e.Name()))
				}
			}
		}
	} else if res.Swept, err = sweep(stateDir, dirs); err != nil {
		return nil, err
	}
	if res.Swept == nil {
		res.Swept = []string{}
	}
	need := map[string]bool{}
	if cur != nil {
		for _, e := range cur.Entries {
			need[e.Backup] = true
		}
	}
	var free []string
	rolled, _ := filepath.Glob(filepath.Join(stateDir, RolledBackPrefix+"*"))
	slices.Sort(rolled) // time order: the names end in a UTC time stamp
	if n := len(rolled); n > 0 {
		free = append(free, rolled[:n-1]...)
		rolled = rolled[n-1:]
	}
	abandoned, _ := filepath.Glob(filepath.Join(stateDir, AbandonedPrefix+"*"))
	keepAll := false // an unreadable abandoned record may name any backup
	for _, p := range append(rolled, abandoned...) {
		named, ok := backupsNamed(p)
		keepAll = keepAll || !ok
		for _, b := range named {
			need[b] = true
		}
	}
	backups := filepath.Join(stateDir, BackupDir)
	ents, err := os.ReadDir(backups)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(backups, e.Name())
		if strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
			continue // a live writer's (the node lock makes that unlikely)
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if need[p] || keepAll {
			res.Kept = append(res.Kept, p)
			res.KeptBytes += fi.Size()
			continue
		}
		free = append(free, p)
	}
	for _, p := range free {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if !dryRun {
			if err := os.Remove(p); err != nil {
				return res, fmt.Errorf("gc: %w", err)
			}
		}
		res.Freed = append(res.Freed, p)
		res.FreedBytes += fi.Size()
	}
	if !dryRun && len(res.Freed) > 0 {
		if err := atomicfile.SyncDir(stateDir); err != nil {
			return res, err
		}
	}
	return res, nil
}

// backupsNamed reads the backups a set-aside record names, without
// trusting it otherwise; ok is false when it cannot be read (an abandoned
// record may be garbage), and gc then frees no backup.
func backupsNamed(p string) (named []string, ok bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	var r struct {
		Entries []struct {
			Backup string `json:"backup"`
		} `json:"entries"`
	}
	if json.Unmarshal(b, &r) != nil {
		return nil, false
	}
	for _, e := range r.Entries {
		if e.Backup != "" {
			named = append(named, filepath.Clean(e.Backup))
		}
	}
	return named, true
}
