package install

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors of the checks before anything is written.
var (
	// ErrPrivileges: not root, or a directory that must be written is not writable.
	ErrPrivileges = errors.New("insufficient privileges")
	// ErrNoSpace: a file system lacks room for a binary or its backup.
	ErrNoSpace = errors.New("not enough free space")
)

// geteuid is replaced by tests.
var geteuid = os.Geteuid

// checkRoot fails unless the process runs as root: install, rollback and
// abandon replace root-owned binaries and their record. Each of them checks
// once, before it reads or unpacks anything.
func checkRoot() error {
	if uid := geteuid(); uid != 0 {
		return fmt.Errorf("%w: install and rollback replace root-owned binaries and must run as root (euid %d); nothing was changed", ErrPrivileges, uid)
	}
	return nil
}

// checkWritable fails unless stateDir (or the parent it would be created
// in) and every directory in dirs can be written. It writes nothing.
func checkWritable(stateDir string, dirs []string) error {
	for _, d := range append([]string{existingAncestor(stateDir)}, dirs...) {
		if err := unix.Access(d, unix.W_OK|unix.X_OK); errors.Is(err, unix.EROFS) {
			return fmt.Errorf("cannot write %s: %w (remount it read-write or choose another directory); nothing was changed", d, err)
		} else if err != nil {
			return fmt.Errorf("%w: cannot write %s: %w; nothing was changed", ErrPrivileges, d, err)
		}
	}
	return nil
}

// preflight checks that stateDir and the targets' directories can be
// written, reads the previous record (nil when none), and sweeps what a
// killed run left in those directories and the recorded ones.
func preflight(stateDir string, targets []Target, log *slog.Logger) (*Record, error) {
	var dirs []string
	for _, t := range targets {
		dirs = append(dirs, filepath.Dir(t.Path))
	}
	if err := checkWritable(stateDir, dirs); err != nil {
		return nil, err
	}
	prev, err := ReadRecord(stateDir)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		dirs = append(dirs, prev.dirs()...)
	}
	if swept, err := sweep(stateDir, dirs); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	} else if len(swept) > 0 {
		log.Info("removed temporary files of an earlier run that was killed", "files", swept)
	}
	return prev, nil
}

// dirs are the directories of the recorded binaries.
func (r *Record) dirs() []string {
	var out []string
	for _, e := range r.Entries {
		out = append(out, filepath.Dir(e.Installed))
	}
	return out
}

// existingAncestor is p or its nearest existing parent.
func existingAncestor(p string) string {
	for {
		if _, err := os.Stat(p); err == nil || p == filepath.Dir(p) {
			return p
		}
		p = filepath.Dir(p)
	}
}

// checkSpace checks that every target's file system has room for the new
// binary and the state directory's for the copies of the present ones.
func checkSpace(o Options, run []*Entry) error {
	need := map[string]uint64{} // directory → bytes
	for _, e := range run {
		fi, err := os.Stat(filepath.Join(o.Dir, e.Name))
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		need[filepath.Dir(e.Installed)] += uint64(fi.Size())
		if cur, err := os.Stat(e.Installed); err == nil {
			need[existingAncestor(o.StateDir)] += uint64(cur.Size())
		}
	}
	// Sum per file system, so that two targets on one small disk both count.
	type fsNeed struct {
		dirs  []string
		bytes uint64
		free  uint64
	}
	byFS := map[[2]int64]*fsNeed{}
	for _, d := range slices.Sorted(maps.Keys(need)) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err != nil {
			return fmt.Errorf("install: free space of %s: %w", d, err)
		}
		k := [2]int64{int64(st.Fsid.Val[0]), int64(st.Fsid.Val[1])}
		if byFS[k] == nil {
			byFS[k] = &fsNeed{free: st.Bavail * uint64(st.Bsize)}
		}
		byFS[k].dirs = append(byFS[k].dirs, d)
		byFS[k].bytes += need[d]
	}
	for _, f := range byFS {
		if f.bytes > f.free {
			return fmt.Errorf("install: %w on the file system of %s: need %d bytes, %d free; nothing was changed", ErrNoSpace, strings.Join(f.dirs, ", "), f.bytes, f.free)
		}
	}
	return nil
}
