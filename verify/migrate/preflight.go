package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// PreflightFile, in the state directory, records the kubelet binary that
// `verify migrate --preflight` identified while the kubelet still ran, so
// that the migration inside the downtime window only confirms it with a
// stat instead of hashing it and running its --version again (8.6 s for
// the 136 MB kubelet on a slow guest).
const PreflightFile = "migrate-preflight.json"

// PreflightMaxAge is how long a preflight record may stand in for the
// kubelet check.
const PreflightMaxAge = time.Hour

// FileStamp is what a stat tells of a file: a replaced or rewritten file
// has another one (a rename gives another inode, an in-place write
// another mtime/ctime).
type FileStamp struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
}

// StampOf stats path.
func StampOf(path string) (FileStamp, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return FileStamp{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return FileStamp{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano(), CtimeNs: st.Ctim.Nano()}, nil
}

// Preflight is the record: the kubelet at Path, as it was when
// CheckKubeletBuild passed for it.
type Preflight struct {
	Kubelet string    `json:"kubelet"`
	Stamp   FileStamp `json:"stamp"`
	At      time.Time `json:"at"`
}

// WritePreflight checks the kubelet at path (CheckKubeletBuild) and, when
// it is a nokmem build, records it in stateDir.
func WritePreflight(stateDir, path string, knownSums map[string]string) error {
	before, err := StampOf(path)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	if err := CheckKubeletBuild(path, knownSums); err != nil {
		return err
	}
	after, err := StampOf(path)
	if err != nil || after != before {
		return fmt.Errorf("preflight: %s changed while it was checked; rerun", path)
	}
	b, err := json.MarshalIndent(Preflight{Kubelet: path, Stamp: before, At: time.Now().UTC()}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(stateDir, PreflightFile), append(b, '\n'), true)
}

// CheckKubeletBuildFast is CheckKubeletBuild, confirmed by a stat when
// stateDir holds a fresh preflight record of the same, unchanged file.
// It says which way it went.
func CheckKubeletBuildFast(stateDir, path string, knownSums map[string]string) (string, error) {
	if p, err := readPreflight(stateDir); err == nil && p != nil && p.Kubelet == path && time.Since(p.At) < PreflightMaxAge {
		if st, err := StampOf(path); err == nil && st == p.Stamp {
			return fmt.Sprintf("kubelet %s confirmed by the preflight of %s (unchanged since)", path, p.At.Format(time.RFC3339)), nil
		}
	}
	if err := CheckKubeletBuild(path, knownSums); err != nil {
		return "", err
	}
	return fmt.Sprintf("kubelet %s checked (no current preflight record)", path), nil
}

// readPreflight returns the record, nil when there is none.
func readPreflight(stateDir string) (*Preflight, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, PreflightFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Preflight
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(stateDir, PreflightFile), err)
	}
	return &p, nil
}
