package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// JournalFile is the name of the journal inside the state directory.
const JournalFile = "migrate-journal.json"

// journalVersion is bumped when the journal format changes incompatibly.
const journalVersion = 1

// ErrCorruptJournal is returned when the journal cannot be read back. The
// engine then refuses to touch the node: it cannot know what state it is in.
var ErrCorruptJournal = errors.New("corrupt migration journal")

// Journal is the durable record of a migration. It holds the snapshot taken
// before anything was changed, so a rerun after a crash knows every path,
// setting and pid even when the old tree is already gone.
type Journal struct {
	Version int `json:"version"`
	// Kubepods and Temp are paths relative to the memory root.
	Kubepods string `json:"kubepods"`
	Temp     string `json:"temp"`
	// Phase is the last phase that completed.
	Phase Phase `json:"phase"`
	// RollingBack is set once --rollback started; the forward path is then closed.
	RollingBack bool      `json:"rolling_back,omitempty"`
	Started     time.Time `json:"started"`
	Updated     time.Time `json:"updated"`
	// NewInode is the inode of the recreated kubepods (set when Phase is done).
	NewInode uint64   `json:"new_inode,omitempty"`
	Snapshot Snapshot `json:"snapshot"`
	// Vanished lists cgroups (relative to kubepods) that disappeared while
	// the migration ran; a resumed run treats them as empty sources.
	Vanished []string `json:"vanished,omitempty"`
	// Refused lists settings the kernel would not take on a rebuilt cgroup,
	// as "<rel relative to kubepods>/<file>"; the invariants accept the
	// inherited value there and the report names them.
	Refused []string `json:"refused,omitempty"`
}

// refuse records that the kernel refused file on the cgroup rel (relative to kubepods).
func (j *Journal) refuse(rel, file string) {
	key := path.Join(rel, file)
	if !slices.Contains(j.Refused, key) {
		j.Refused = append(j.Refused, key)
	}
}

func (j *Journal) refused(rel, file string) bool {
	return slices.Contains(j.Refused, path.Join(rel, file))
}

func (j *Journal) vanished(rel string) bool {
	for _, v := range j.Vanished {
		if v == rel {
			return true
		}
	}
	return false
}

// journalPath is the journal's location in stateDir.
func journalPath(stateDir string) string { return filepath.Join(stateDir, JournalFile) }

// loadJournal reads the journal in stateDir; it returns nil, nil when there is none.
func loadJournal(stateDir string) (*Journal, error) {
	p := journalPath(stateDir)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	var j Journal
	err = json.Unmarshal(b, &j)
	if err == nil {
		err = j.validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w (cannot tell what an earlier run did: check the kubepods tree and any nokmem-migrate-* tree under the memory root, then move the journal away)",
			ErrCorruptJournal, p, err)
	}
	return &j, nil
}

func (j *Journal) validate() error {
	switch {
	case j.Version != journalVersion:
		return fmt.Errorf("version %d, want %d", j.Version, journalVersion)
	case j.Kubepods == "" || j.Temp == "" || j.Kubepods == j.Temp:
		return fmt.Errorf("kubepods %q and temp %q must be distinct and non-empty", j.Kubepods, j.Temp)
	case !j.Phase.known():
		return fmt.Errorf("unknown phase %q", j.Phase)
	case len(j.Snapshot.Nodes) == 0 || j.Snapshot.Nodes[0].Rel != "":
		return errors.New("snapshot does not start with the kubepods cgroup")
	}
	return nil
}

// saveJournal writes j durably: temp file, fsync, rename over the journal,
// fsync of the directory. A crash leaves either the old or the new journal.
func saveJournal(stateDir string, j *Journal) error {
	j.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	return writeFileAtomic(journalPath(stateDir), append(b, '\n'))
}

// removeJournal deletes the journal durably (used only when a run changed nothing).
func removeJournal(stateDir string) error {
	if err := os.Remove(journalPath(stateDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove journal: %w", err)
	}
	return atomicfile.SyncDir(stateDir)
}

// writeFileAtomic writes the journal, creating the state directory on first use.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, data, 0o600)
}
