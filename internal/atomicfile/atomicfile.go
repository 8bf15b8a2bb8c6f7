// Package atomicfile replaces files so that readers, and a crash at any
// point, see either the old or the new content, never part of it: the data
// goes to a temporary file in the same directory, which is fsync'ed and
// renamed over the target, and then the directory is fsync'ed
// (WriteFileNoSync skips the fsyncs where a machine crash need not be
// survived).
//
// Every temporary file is named TempPrefix<pid>-<target>-<random>, so that
// one that a killed writer left behind is recognised and swept (Sweep).
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// TempPrefix starts the name of every temporary file Write creates; the
// writer's pid follows it.
const TempPrefix = ".nokmem-tmp-"

// TempPattern is the os.CreateTemp pattern of a temporary file for target
// written by this process.
func TempPattern(target string) string {
	return TempPrefix + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(target) + "-*"
}

// Stray reports whether name (a file name in some directory) is a
// temporary file or folder named with TempPrefix whose writer process is
// gone. This process's own are never stray.
func Stray(name string) bool {
	rest, ok := strings.CutPrefix(name, TempPrefix)
	if !ok {
		return false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 {
		return true // ours by name, but no writer can be named: left behind
	}
	if pid == os.Getpid() {
		return false
	}
	return !alive(pid)
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Sweep removes the temporary files and folders of writers that are gone
// from dir (see Stray) and returns their paths. A missing dir is empty.
func Sweep(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if !Stray(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("sweep: %w", err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// Owner is the uid and gid the new file gets; -1 keeps the creating process's.
type Owner struct{ UID, GID int }

// KeepOwner leaves the new file owned by the creating process.
var KeepOwner = Owner{UID: -1, GID: -1}

// Write replaces path with what fill writes, with the given mode and owner.
// On error the temporary file is removed and path is untouched.
func Write(path string, mode fs.FileMode, owner Owner, fill func(io.Writer) error) error {
	return write(path, mode, owner, fill, true)
}

// WriteFileNoSync replaces path with data like WriteFile but without the
// two fsyncs: readers and a writer killed at any point (kill -9) still see
// the old or the new content, never part of it, but a crash of the machine
// may lose the change. Only for a file that describes state which does not
// survive such a crash either (in-memory kernel state such as cgroupfs).
func WriteFileNoSync(path string, data []byte, mode fs.FileMode) error {
	return write(path, mode, KeepOwner, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, false)
}

func write(path string, mode fs.FileMode, owner Owner, fill func(io.Writer) error, sync bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, TempPattern(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			err = errors.Join(err, tmp.Close())
		}
		if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}()
	if err := fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if owner != KeepOwner {
		if err := tmp.Chown(owner.UID, owner.GID); err != nil {
			return err
		}
	}
	// After chown, which clears setuid/setgid bits.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
		}
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	return SyncDir(dir)
}

// WriteFile replaces path with data (see Write), owned by the caller.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return Write(path, mode, KeepOwner, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir fsyncs a directory, so that renames and removals in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("fsync %s: %w", dir, serr)
	}
	if cerr != nil {
		return fmt.Errorf("close %s: %w", dir, cerr)
	}
	return nil
}
