// Package install replaces the node's kubelet and runc binaries with those
// of a signed nokmem node bundle (internal/bundle), in one transaction, and
// rolls them back.
//
// Order of an install: privileges (root, write access to the state
// directory and every target directory) → the bundle's signature and
// contents → a plan per target (identify the present binary; refuse
// symlinks, unknown binaries and files changed since an earlier install) →
// free space → a copy of every present binary → the record, marked
// "installing" → each binary swapped atomically (temp file, fsync, rename,
// 0755 root:root) → the record marked "installed". A failure at any step
// after the first write puts back the binaries already swapped and the
// previous record, so either every target is replaced or none is. After a
// kill -9 between two swaps the record says "installing": a rerun finishes
// the install, a rollback undoes it.
//
// The record keeps, per target, the original binary (backup copy and its
// sha256, mode, owner) from before the first install, and every sha256
// verify put there. Installing a newer bundle is an upgrade: the original
// backups stay the rollback target. Rollback restores a target only when it
// still holds a binary verify installed; anything else is someone else's
// change and is refused unless forced.
package install

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/verify/binary"
)

// RecordFile is the name of the install record in the state directory, and
// BackupDir the folder of the backups.
const (
	RecordFile = "install.json"
	BackupDir  = "backup"
)

// DefaultPubKey is where install looks for the release public key.
const DefaultPubKey = "/etc/nokmem/release.pub"

// Record states.
const (
	StateInstalling = "installing"
	StateInstalled  = "installed"
)

// Target maps a binary of the bundle to a node path it replaces.
type Target struct {
	// Name is the binary's file name in the bundle ("kubelet", "runc").
	Name string `json:"name"`
	// Path is where it is installed on the node.
	Path string `json:"path"`
	// Create allows creating Path when no binary is there (--create).
	Create bool `json:"create,omitempty"`
}

// Meta is a file's content digest and metadata.
type Meta struct {
	SHA256 string      `json:"sha256"`
	Mode   fs.FileMode `json:"mode"` // permission bits with setuid/setgid/sticky
	UID    int         `json:"uid"`
	GID    int         `json:"gid"`
}

// Entry is one installed target.
type Entry struct {
	Target
	// Installed is the file that is replaced (Path, or where it links to).
	Installed string `json:"installed"`
	// Existed is false when Path was created by --create.
	Existed bool `json:"existed"`
	// Original is the binary before the first install, kept at Backup.
	Original Meta   `json:"original"`
	Backup   string `json:"backup,omitempty"`
	// OldKind is how the original binary was identified (binary.Kind*).
	OldKind string `json:"old_kind,omitempty"`
	// NewSHA256 is the binary the latest install put there; Ours lists
	// every sha256 verify has installed at this path (upgrades included).
	NewSHA256 string   `json:"new_sha256"`
	Ours      []string `json:"ours"`
	// Notes report what was unusual about the original file (mode, owner,
	// setuid), which rollback restores.
	Notes []string `json:"notes,omitempty"`
	// undo is this run's copy of the file it replaces, for a failed run.
	undo string
}

// Bundle names an installed bundle.
type Bundle struct {
	Name   string    `json:"name"`
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
}

// Record is what the state directory remembers of installs. It is
// untrusted input when read back: a checksum covers the whole content and
// every path is checked (ReadRecord).
type Record struct {
	// Version is the record format (recordVersion).
	Version int `json:"version"`
	// State is "installing" while binaries are being swapped, "installed" after.
	State string `json:"state"`
	// Bundle is the latest bundle; History the ones installed before it.
	Bundle  Bundle   `json:"bundle"`
	History []Bundle `json:"history,omitempty"`
	// Signed is true when the bundle's signature was checked, with key KeyID;
	// SignatureSkipped when --insecure-skip-signature was given.
	Signed           bool    `json:"signed"`
	SignatureSkipped bool    `json:"signature_skipped"`
	KeyID            string  `json:"key_id,omitempty"`
	DevelopmentKey   bool    `json:"development_key,omitempty"`
	Entries          []Entry `json:"entries"`
	// Replaced lists the files the latest install replaced and Kept the
	// targets it left as they were, with the reason.
	Replaced []string   `json:"replaced"`
	Kept     []Decision `json:"kept,omitempty"`
	// Checksum is "sha256:<hex>" of the record encoded with Checksum empty.
	Checksum string `json:"checksum"`
}

// Entry returns the entry installed at path, or nil.
func (r *Record) Entry(installed string) *Entry {
	for i := range r.Entries {
		if r.Entries[i].Installed == installed {
			return &r.Entries[i]
		}
	}
	return nil
}

// Options for Install.
type Options struct {
	// Dir is the verified bundle folder (see Open) and Manifest its manifest.
	Dir      string
	Manifest *bundle.Manifest
	// Source is what the user named (folder or tarball), for the record.
	Source string
	// Signed and KeyID say how Dir was checked; SignatureSkipped records
	// --insecure-skip-signature.
	Signed           bool
	SignatureSkipped bool
	KeyID            string
	StateDir         string
	Targets          []Target
	// AllowSymlink installs through a symlinked target (to the file it points at).
	AllowSymlink bool
	// AllowUnknown replaces a binary whose version cannot be recognised.
	AllowUnknown bool
	// AllowVersionChange replaces a binary that the bundle does not fix
	// (a nokmem build, a stock version that does not activate kmem) and one
	// that the version guard refuses (see checkVersionChange).
	AllowVersionChange bool
	// AllowSecurityDowngrade puts in place a binary with more known
	// vulnerabilities than the one it replaces (see checkSecurity).
	AllowSecurityDowngrade bool
	// Force replaces a target that changed since verify installed it.
	Force bool
	// Binaries is how existing binaries are identified.
	Binaries binary.Options
	Logger   *slog.Logger
}

// Errors.
var (
	// ErrForeignChange: a target holds neither what verify installed nor the original.
	ErrForeignChange = errors.New("changed since verify installed it")
	// ErrPrivileges: not root, or a directory that must be written is not writable.
	ErrPrivileges = errors.New("insufficient privileges")
	// ErrNoSpace: a file system lacks room for a binary or its backup.
	ErrNoSpace = errors.New("not enough free space")
	// ErrDigest: a file's content changed between the check and the copy.
	ErrDigest = errors.New("sha256 mismatch")
)

// Hooks for tests: faultAfterCopy interrupts a copy after the data is
// written and before it is synced and renamed; faultStep fails the named
// step ("unpacked", "backup <path>", "record", "swap <path>", "commit";
// rollback's "restore <path>").
var (
	faultAfterCopy func(dst string) error
	faultStep      func(step string) error
	geteuid        = os.Geteuid
)

func fault(step string) error {
	if faultStep == nil {
		return nil
	}
	return faultStep(step)
}

// CheckPrivileges fails unless the process is root and can write stateDir
// (or create it) and every directory in dirs. It writes nothing.
func CheckPrivileges(stateDir string, dirs []string) error {
	if uid := geteuid(); uid != 0 {
		return fmt.Errorf("%w: install and rollback replace root-owned binaries and must run as root (euid %d); nothing was changed", ErrPrivileges, uid)
	}
	check := append([]string{existingAncestor(stateDir)}, dirs...)
	for _, d := range check {
		if err := unix.Access(d, unix.W_OK|unix.X_OK); errors.Is(err, unix.EROFS) {
			return fmt.Errorf("cannot write %s: %w (remount it read-write or choose another directory); nothing was changed", d, err)
		} else if err != nil {
			return fmt.Errorf("%w: cannot write %s: %v; nothing was changed", ErrPrivileges, d, err)
		}
	}
	return nil
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

// Install installs o.Targets from the bundle in o.Dir. On any error the
// node is left as it was.
func Install(o Options) (*Record, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if len(o.Targets) == 0 {
		return nil, errors.New("install: the node has none of the bundle's binaries (use --create PATH to install one anyway)")
	}
	var dirs []string
	for _, t := range o.Targets {
		dirs = append(dirs, filepath.Dir(t.Path))
	}
	if err := CheckPrivileges(o.StateDir, dirs); err != nil {
		return nil, err
	}
	prev, err := ReadRecord(o.StateDir)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		for _, e := range prev.Entries {
			dirs = append(dirs, filepath.Dir(e.Installed))
		}
	}
	if swept, err := sweep(o.StateDir, dirs); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	} else if len(swept) > 0 {
		log.Info("removed temporary files of an earlier run that was killed", "files", swept)
	}
	rec := &Record{State: StateInstalling, Signed: o.Signed, SignatureSkipped: o.SignatureSkipped, KeyID: o.KeyID,
		DevelopmentKey: o.Manifest.SigningKey.Development,
		Bundle:         Bundle{Name: o.Manifest.Name, Source: o.Source, Time: time.Now().UTC()}}
	if prev != nil {
		rec.History = append(slices.Clone(prev.History), prev.Bundle)
		rec.Entries = slices.Clone(prev.Entries)
		if prev.State == StateInstalling {
			log.Warn("an earlier install was interrupted; this install finishes it", "bundle", prev.Bundle.Name)
		}
	}
	idx, kept, err := planAll(o, rec)
	if err != nil {
		return nil, err
	}
	rec.Kept = kept
	var run []*Entry // the entries this run replaces
	for _, i := range idx {
		run = append(run, &rec.Entries[i])
		rec.Replaced = append(rec.Replaced, rec.Entries[i].Installed)
	}
	if len(run) == 0 {
		// Nothing to replace: the node and the record stay as they are.
		out := &Record{Kept: kept, Replaced: []string{}}
		if prev != nil {
			out.State, out.Bundle, out.Entries = prev.State, prev.Bundle, prev.Entries
		}
		return out, nil
	}
	if err := checkSpace(o, run); err != nil {
		return nil, err
	}

	// From here on the node changes: every failure undoes what this run did.
	var done []*Entry
	backups := filepath.Join(o.StateDir, BackupDir)
	newDirs := missingDirs(backups)
	undo := func(cause error) error {
		errs := []error{cause}
		for i := len(done) - 1; i >= 0; i-- {
			if err := putBack(done[i]); err != nil {
				errs = append(errs, fmt.Errorf("undo %s: %w", done[i].Installed, err))
			}
		}
		if err := restoreRecord(o.StateDir, prev); err != nil {
			errs = append(errs, err)
		}
		for _, e := range run {
			if e.undo != "" {
				os.Remove(e.undo) // this run's copies; the previous record does not name them
			}
		}
		for _, d := range newDirs {
			os.Remove(d) // only if empty
		}
		return errors.Join(errs...)
	}
	if err := os.MkdirAll(backups, 0o700); err != nil {
		return nil, fmt.Errorf("install: state dir: %w", err)
	}
	now := stamp()
	for i, e := range run {
		if !fileExists(e.Installed) {
			continue
		}
		cur, err := binary.FileSHA256(e.Installed)
		if err != nil {
			return nil, undo(err)
		}
		dst := filepath.Join(backups, fmt.Sprintf("%s-%d-%s", now, i, filepath.Base(e.Installed)))
		if err := fault("backup " + e.Installed); err != nil {
			return nil, undo(err)
		}
		if err := copyAtomic(e.Installed, dst, cur, 0o600, atomicfile.KeepOwner); err != nil {
			return nil, undo(fmt.Errorf("install: back up %s: %w", e.Installed, err))
		}
		e.undo = dst
		if e.Backup == "" && e.Existed {
			e.Backup = dst // the first install's copy is the original
		}
	}
	if err := fault("record"); err != nil {
		return nil, undo(err)
	}
	if err := writeRecord(o.StateDir, rec); err != nil {
		return nil, undo(fmt.Errorf("install: record: %w", err))
	}
	for _, e := range run {
		src := filepath.Join(o.Dir, e.Name)
		if err := fault("swap " + e.Installed); err != nil {
			return nil, undo(err)
		}
		done = append(done, e)
		if err := copyAtomic(src, e.Installed, e.NewSHA256, 0o755, atomicfile.Owner{UID: 0, GID: 0}); err != nil {
			return nil, undo(fmt.Errorf("install %s to %s: %w", src, e.Installed, err))
		}
		log.Info("installed", "name", e.Name, "path", e.Installed, "sha256", e.NewSHA256, "original", e.Original.SHA256)
	}
	rec.State = StateInstalled
	if err := fault("commit"); err != nil {
		return nil, undo(err)
	}
	if err := writeRecord(o.StateDir, rec); err != nil {
		return nil, undo(fmt.Errorf("install: record: %w", err))
	}
	for _, e := range run {
		if e.undo != "" && e.undo != e.Backup {
			os.Remove(e.undo)
		}
	}
	if g, err := GC(o.StateDir, nil, false); err != nil {
		log.Warn("install done; collecting old backups failed (run verify gc)", "err", err)
	} else if len(g.Freed) > 0 {
		log.Info("freed old backups", "files", g.Freed, "bytes", g.FreedBytes)
	}
	return rec, nil
}

// owns reports whether a file with sha256 cur is verify's or the original.
func (e *Entry) owns(cur string) bool {
	if !e.Existed && cur == "" {
		return true
	}
	return slices.Contains(e.Ours, cur) || (e.Existed && cur == e.Original.SHA256)
}

// metaNotes reports a replaced file's metadata that differs from 0755 root:root.
func metaNotes(m Meta) []string {
	var n []string
	if m.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		n = append(n, fmt.Sprintf("the replaced file was setuid/setgid (mode %s); the new one is not", m.Mode))
	}
	if m.Mode.Perm() != 0o755 {
		n = append(n, fmt.Sprintf("the replaced file had mode %04o; the new one has 0755", m.Mode.Perm()))
	}
	if m.UID != 0 || m.GID != 0 {
		n = append(n, fmt.Sprintf("the replaced file was owned by %d:%d; the new one by root:root", m.UID, m.GID))
	}
	if len(n) > 0 {
		n = append(n, "rollback restores the old metadata")
	}
	return n
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
	for _, d := range slices.Sorted(mapsKeys(need)) {
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

func mapsKeys(m map[string]uint64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// putBack restores what a failed run replaced in e: its copy, or nothing.
func putBack(e *Entry) error {
	if e.undo == "" {
		if err := os.Remove(e.Installed); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	sum, err := binary.FileSHA256(e.undo)
	if err != nil {
		return err
	}
	m := e.Original
	if sum != e.Original.SHA256 {
		m = Meta{Mode: 0o755}
	}
	return copyAtomic(e.undo, e.Installed, sum, m.Mode, atomicfile.Owner{UID: m.UID, GID: m.GID})
}

// restoreRecord puts the record back as it was before a failed run.
func restoreRecord(stateDir string, prev *Record) error {
	p := filepath.Join(stateDir, RecordFile)
	if prev == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("undo record: %w", err)
		}
		return nil
	}
	return writeRecord(stateDir, prev)
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

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func orNone(s string) string {
	if s == "" {
		return "(no file)"
	}
	return s
}

// copyAtomic copies src over dst (atomicfile.Write) and fails unless the
// bytes written hash to wantSHA.
func copyAtomic(src, dst, wantSHA string, mode fs.FileMode, owner atomicfile.Owner) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, mode, owner, func(w io.Writer) error {
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

// RollbackResult is what Rollback did.
type RollbackResult struct {
	// Nothing is true when no install was recorded.
	Nothing bool     `json:"nothing"`
	Message string   `json:"message"`
	Record  *Record  `json:"record,omitempty"`
	Actions []string `json:"actions,omitempty"`
}

// Rollback restores the original binaries recorded in stateDir, byte for
// byte with their old mode and owner, and removes binaries created by
// --create. A target that holds neither a binary verify installed nor the
// original was changed by someone else: Rollback then changes nothing and
// names the file and both digests, unless force. Without a record it
// reports that there is nothing to roll back.
func Rollback(stateDir string, force bool) (*RollbackResult, error) {
	if err := CheckPrivileges(stateDir, nil); err != nil {
		return nil, err
	}
	rec, err := ReadRecord(stateDir)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return &RollbackResult{Nothing: true, Message: "nothing to roll back: no install is recorded in " + filepath.Join(stateDir, RecordFile)}, nil
	}
	var dirs []string
	for _, e := range rec.Entries {
		dirs = append(dirs, filepath.Dir(e.Installed))
	}
	if err := CheckPrivileges(stateDir, dirs); err != nil {
		return nil, err
	}
	if _, err := sweep(stateDir, dirs); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	// Check every target first, so that a refusal changes nothing.
	var foreign []string
	for _, e := range rec.Entries {
		cur := ""
		if fileExists(e.Installed) {
			if cur, err = binary.FileSHA256(e.Installed); err != nil {
				return nil, fmt.Errorf("rollback: %w", err)
			}
		}
		if !e.owns(cur) {
			want := e.NewSHA256
			foreign = append(foreign, fmt.Sprintf("%s has sha256 %s, verify installed %s", e.Installed, orNone(cur), want))
		}
	}
	if len(foreign) > 0 && !force {
		return nil, fmt.Errorf("rollback: %w: %s; nothing was rolled back (--force restores the originals over these changes)", ErrForeignChange, strings.Join(foreign, "; "))
	}
	res := &RollbackResult{Record: rec}
	var errs []error
	for i := len(rec.Entries) - 1; i >= 0; i-- {
		e := rec.Entries[i]
		if !e.Existed {
			if err := os.Remove(e.Installed); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			res.Actions = append(res.Actions, "removed "+e.Installed+" (created by install)")
			continue
		}
		if err := fault("restore " + e.Installed); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := copyAtomic(e.Backup, e.Installed, e.Original.SHA256, e.Original.Mode, atomicfile.Owner{UID: e.Original.UID, GID: e.Original.GID}); err != nil {
			errs = append(errs, fmt.Errorf("restore %s from %s: %w", e.Installed, e.Backup, err))
			continue
		}
		res.Actions = append(res.Actions, fmt.Sprintf("restored %s (sha256 %s, mode %s, owner %d:%d)", e.Installed, e.Original.SHA256, e.Original.Mode, e.Original.UID, e.Original.GID))
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
