package install

import (
	"errors"
	"io/fs"
	"slices"
	"time"
)

// RecordFile is the name of the install record in the state directory, and
// BackupDir the folder of the backups.
const (
	RecordFile = "install.json"
	BackupDir  = "backup"
)

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
	// Create allows creating Path when no binary is there.
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
	// Existed is false when Path was created (Target.Create).
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
}

// ErrForeignChange: a target holds neither what verify installed nor the original.
var ErrForeignChange = errors.New("changed since verify installed it")

// owns reports whether a file with sha256 cur is verify's or the original.
func (e *Entry) owns(cur string) bool {
	if !e.Existed && cur == "" {
		return true
	}
	return slices.Contains(e.Ours, cur) || (e.Existed && cur == e.Original.SHA256)
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
	// SignatureSkipped when the check was skipped on request.
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
