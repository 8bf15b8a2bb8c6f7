// Package install replaces the node's kubelet and runc binaries with verified
// nokmem artifacts, and rolls them back. The release is checked (SHA256SUMS,
// SHA512SUMS; with a public key the full signed release check) before
// anything is touched; the current binaries are backed up with their sha256
// in the state directory; each binary is replaced atomically (temp file in
// the same directory, fsync, rename, mode and owner kept), so an interrupted
// install never leaves a half-written binary; and a record of what was done
// lets Rollback restore the previous binaries byte for byte.
package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/sums"
	"github.com/nokmem/nokmem/verify/detect"
)

// RecordFile is the name of the install record in the state directory, and
// BackupDir the folder of the backups.
const (
	RecordFile = "install.json"
	BackupDir  = "backup"
)

// Target maps an artifact of the release to the path it is installed at.
type Target struct {
	// Name is the artifact's file name in the release directory and in
	// SHA256SUMS ("kubelet", "runc").
	Name string `json:"name"`
	// Path is where the binary is installed on the node.
	Path string `json:"path"`
}

// Options for Install.
type Options struct {
	// Artifacts is the release directory (binaries, SHA256SUMS, SHA512SUMS,
	// SHA256SUMS.minisig).
	Artifacts string
	// PubKey, when set, is the minisign public key SHA256SUMS must be signed with.
	PubKey string
	// StateDir keeps the record and the backups.
	StateDir string
	Targets  []Target
	// AllowSymlink installs through a symlinked target (to the file it points at).
	AllowSymlink bool
	// AllowUnknown replaces a binary whose version cannot be recognised.
	AllowUnknown bool
	// Binaries is how existing binaries are identified.
	Binaries detect.BinaryOptions
	Logger   *slog.Logger
}

// Entry is what Install did to one target.
type Entry struct {
	Target
	// Installed is the file that was replaced (Path, or where it links to).
	Installed string `json:"installed"`
	// Existed is false when there was no binary before.
	Existed   bool   `json:"existed"`
	OldSHA256 string `json:"old_sha256,omitempty"`
	NewSHA256 string `json:"new_sha256"`
	// Backup is the copy of the previous binary in the state directory.
	Backup string      `json:"backup,omitempty"`
	Mode   fs.FileMode `json:"mode"`
	UID    int         `json:"uid"`
	GID    int         `json:"gid"`
	// OldKind is how the previous binary was identified (detect.Kind*).
	OldKind string `json:"old_kind,omitempty"`
}

// Record is what the state directory remembers of an install.
type Record struct {
	Time      time.Time `json:"time"`
	Artifacts string    `json:"artifacts"`
	Signed    bool      `json:"signed"`
	Entries   []Entry   `json:"entries"`
}

// ErrPreviousInstall means the state directory holds an install that was not
// rolled back, so its backups (the original binaries) must not be overwritten.
var ErrPreviousInstall = errors.New("a previous install is recorded; run rollback first")

// Install verifies the release in o.Artifacts and installs o.Targets from it.
// On any error the node is left as it was: nothing is touched before the
// checks pass, and targets already replaced are restored.
func Install(o Options) (*Record, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if len(o.Targets) == 0 {
		return nil, errors.New("install: no targets")
	}
	want, err := CheckRelease(o.Artifacts, o.PubKey)
	if err != nil {
		return nil, err
	}
	recPath := filepath.Join(o.StateDir, RecordFile)
	if _, err := os.Stat(recPath); err == nil {
		return nil, fmt.Errorf("install: %s: %w", recPath, ErrPreviousInstall)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("install: %w", err)
	}

	rec := &Record{Time: time.Now().UTC(), Artifacts: o.Artifacts, Signed: o.PubKey != ""}
	for _, t := range o.Targets {
		e, err := preflight(t, want, o)
		if err != nil {
			return nil, err
		}
		rec.Entries = append(rec.Entries, e)
	}

	backups := filepath.Join(o.StateDir, BackupDir)
	if err := os.MkdirAll(backups, 0o700); err != nil {
		return nil, fmt.Errorf("install: state dir: %w", err)
	}
	for i := range rec.Entries {
		e := &rec.Entries[i]
		if !e.Existed {
			continue
		}
		// Numbered: runc and docker-runc may both come from artifact "runc".
		e.Backup = filepath.Join(backups, fmt.Sprintf("%d-%s", i, filepath.Base(e.Installed)))
		if err := copyAtomic(e.Installed, e.Backup, e.OldSHA256, 0o600, -1, -1); err != nil {
			return nil, fmt.Errorf("install: back up %s: %w", e.Installed, err)
		}
	}

	for i, e := range rec.Entries {
		src := filepath.Join(o.Artifacts, e.Name)
		if err := copyAtomic(src, e.Installed, e.NewSHA256, e.Mode, e.UID, e.GID); err != nil {
			err = fmt.Errorf("install %s to %s: %w", src, e.Installed, err)
			if rerr := restore(rec.Entries[:i]); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo earlier targets: %w", rerr))
			}
			return nil, err
		}
		log.Info("installed", "name", e.Name, "path", e.Installed, "sha256", e.NewSHA256, "previous", e.OldSHA256)
	}
	if err := writeJSONAtomic(recPath, rec); err != nil {
		err = fmt.Errorf("install: record: %w", err)
		if rerr := restore(rec.Entries); rerr != nil {
			err = errors.Join(err, fmt.Errorf("undo install: %w", rerr))
		}
		return nil, err
	}
	return rec, nil
}

// CheckRelease checks the release directory and returns name → sha256 from
// its SHA256SUMS. With a public key it runs the full release check
// (release.Verify: signature, checksums, SBOM, provenance subjects);
// without one it checks the checksums only.
func CheckRelease(dir, pubKey string) (map[string]string, error) {
	sumsPath := filepath.Join(dir, sums.SHA256.SumsFile)
	if _, err := os.Stat(sumsPath); err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	var err error
	if pubKey != "" {
		err = release.Verify(dir, pubKey)
	} else {
		_, err = sums.Check(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	return sums.Parse(sumsPath)
}

// preflight checks one target without changing anything.
func preflight(t Target, want map[string]string, o Options) (Entry, error) {
	e := Entry{Target: t, Installed: t.Path, Mode: 0o755, UID: -1, GID: -1}
	var ok bool
	if e.NewSHA256, ok = want[t.Name]; !ok {
		return e, fmt.Errorf("install: %s is not listed in %s", t.Name, filepath.Join(o.Artifacts, sums.SHA256.SumsFile))
	}
	fi, err := os.Lstat(t.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(filepath.Dir(t.Path)); err != nil {
			return e, fmt.Errorf("install %s: %w", t.Name, err)
		}
		return e, nil
	case err != nil:
		return e, fmt.Errorf("install %s: %w", t.Name, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if !o.AllowSymlink {
			return e, fmt.Errorf("install %s: %s is a symlink; refusing to replace it (--allow-symlink installs to the file it points at)", t.Name, t.Path)
		}
		if e.Installed, err = filepath.EvalSymlinks(t.Path); err != nil {
			return e, fmt.Errorf("install %s: %w", t.Name, err)
		}
		if fi, err = os.Stat(e.Installed); err != nil {
			return e, fmt.Errorf("install %s: %w", t.Name, err)
		}
	}
	if !fi.Mode().IsRegular() {
		return e, fmt.Errorf("install %s: %s is not a regular file (%s); refusing to replace it", t.Name, e.Installed, fi.Mode().Type())
	}
	e.Existed = true
	e.Mode = fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	if e.OldSHA256, err = detect.FileSHA256(e.Installed); err != nil {
		return e, fmt.Errorf("install %s: %w", t.Name, err)
	}
	b, err := detect.Identify(t.Name, e.Installed, o.Binaries)
	if err != nil {
		return e, fmt.Errorf("install: %w", err)
	}
	e.OldKind = b.Kind
	if b.Kind == detect.KindUnknown && !o.AllowUnknown {
		return e, fmt.Errorf("install %s: unknown %s at %s (%s); refusing to replace it (--allow-unknown overrides)", t.Name, t.Name, e.Installed, b.Reason)
	}
	return e, nil
}

// Rollback restores the binaries recorded in stateDir byte for byte and
// removes the record, so a later install starts afresh.
func Rollback(stateDir string) (*Record, error) {
	recPath := filepath.Join(stateDir, RecordFile)
	b, err := os.ReadFile(recPath)
	if err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("rollback: %s: %w", recPath, err)
	}
	if err := restore(rec.Entries); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	done := recPath + ".rolled-back-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(recPath, done); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	return &rec, nil
}

// restore puts the previous binaries of entries back, last first.
func restore(entries []Entry) error {
	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if !e.Existed {
			if err := os.Remove(e.Installed); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err := copyAtomic(e.Backup, e.Installed, e.OldSHA256, e.Mode, e.UID, e.GID); err != nil {
			errs = append(errs, fmt.Errorf("restore %s from %s: %w", e.Installed, e.Backup, err))
		}
	}
	return errors.Join(errs...)
}

// ErrDigest means a file's content changed between the check and the copy.
var ErrDigest = errors.New("sha256 mismatch")

// faultAfterCopy, when set (tests only), is called after the data is written
// to the temporary file and before it is synced and renamed, to interrupt an
// install at its most delicate point.
var faultAfterCopy func(dst string) error

// copyAtomic copies src over dst (atomicfile.Write) and fails unless the
// bytes written hash to wantSHA.
func copyAtomic(src, dst, wantSHA string, mode fs.FileMode, uid, gid int) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, mode, atomicfile.Owner{UID: uid, GID: gid}, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), in); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if faultAfterCopy != nil {
			if err := faultAfterCopy(dst); err != nil {
				return err
			}
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
			return fmt.Errorf("%s: %w (want %s, copied %s)", src, ErrDigest, wantSHA, got)
		}
		return nil
	})
}

// writeJSONAtomic writes v as indented JSON to path atomically.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}
