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
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/sealedjson"
)

// JournalFile is the name of the journal inside the state directory.
const JournalFile = "migrate-journal.json"

// journalVersion is bumped when the journal format changes incompatibly.
// Version 2: rename-based flow (set-aside tree), checksum.
const journalVersion = 2

// ErrCorruptJournal is returned when the journal cannot be read back or is
// not trustworthy. The engine then refuses to touch the node.
var ErrCorruptJournal = errors.New("corrupt or untrusted migration journal")

// Journal is the durable record of a migration. It holds the snapshot taken
// before anything was changed, so a rerun after a crash knows every path,
// setting and pid. It is untrusted input when read back: every path is
// checked and a checksum covers the whole content.
type Journal struct {
	Version int `json:"version"`
	// Kubepods, Temp and Aside are paths relative to the memory root: the
	// tree, the fresh tree's temporary name, the old tree's set-aside name.
	Kubepods string `json:"kubepods"`
	Temp     string `json:"temp"`
	Aside    string `json:"aside"`
	// Phase is the last phase that completed.
	Phase Phase `json:"phase"`
	// RollingBack is set once --rollback started; the forward path is then closed.
	RollingBack bool      `json:"rolling_back,omitempty"`
	Started     time.Time `json:"started"`
	Updated     time.Time `json:"updated"`
	// FreshInode is the inode of the fresh tree's root directory (under the
	// temporary name, later at kubepods: a rename keeps it).
	FreshInode uint64 `json:"fresh_inode,omitempty"`
	// MoveCharge is whether the kernel took move_charge_at_immigrate=3.
	MoveCharge bool     `json:"move_charge,omitempty"`
	Snapshot   Snapshot `json:"snapshot"`
	// Vanished lists cgroups (relative to kubepods) that disappeared from
	// the old tree while the migration ran; the fresh tree keeps them.
	Vanished []string `json:"vanished,omitempty"`
	// Adopted lists cgroups (relative to kubepods) that someone created in
	// the old tree after the plan; they were added to the plan.
	Adopted []string `json:"adopted,omitempty"`
	// Refused lists settings the kernel would not take on a fresh cgroup,
	// as "<rel relative to kubepods>/<file>"; the inherited value is kept.
	Refused []string `json:"refused,omitempty"`
	// Checksum is "sha256:<hex>" of the journal encoded with Checksum empty.
	Checksum string `json:"checksum"`
}

// refuse records that the kernel refused file on the cgroup rel (relative to kubepods).
func (j *Journal) refuse(rel, file string) {
	key := path.Join(rel, file)
	if !slices.Contains(j.Refused, key) {
		j.Refused = append(j.Refused, key)
	}
}

// journalPath is the journal's location in stateDir.
func journalPath(stateDir string) string { return filepath.Join(stateDir, JournalFile) }

// loadJournal reads the journal in stateDir; it returns nil, nil when there is none.
func loadJournal(stateDir string, kubepods string) (*Journal, error) {
	p := journalPath(stateDir)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	var j Journal
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	err = dec.Decode(&j)
	if err == nil {
		err = j.validate(kubepods)
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w (nothing was changed; the journal cannot be trusted to say what an earlier run did: "+
			"compare the node with it (verify detect lists the kubepods tree and any nokmem-migrate-* tree), then run `verify migrate --abandon` to set it aside)",
			ErrCorruptJournal, p, err)
	}
	return &j, nil
}

// sum returns the checksum of j's content.
func (j *Journal) sum() (string, error) { return sealedjson.Sum(j, &j.Checksum) }

// cleanRel checks that rel is a clean path relative to its tree: no
// leading slash, no "." or ".." element, no empty element.
func cleanRel(rel string) error {
	if rel == "" {
		return nil
	}
	if strings.HasPrefix(rel, "/") || path.Clean(rel) != rel {
		return fmt.Errorf("path %q is not clean and relative", rel)
	}
	for _, el := range strings.Split(rel, "/") {
		if el == "." || el == ".." || strings.ContainsAny(el, "\n\x00") {
			return fmt.Errorf("path %q leaves its tree", rel)
		}
	}
	return nil
}

func (j *Journal) validate(kubepods string) error {
	sum, err := j.sum()
	switch {
	case err != nil:
		return err
	case j.Version != journalVersion:
		return fmt.Errorf("version %d, want %d", j.Version, journalVersion)
	case j.Checksum != sum:
		return fmt.Errorf("checksum %q does not match the content (%s): edited or damaged", j.Checksum, sum)
	case j.Kubepods == "" || cleanRel(j.Kubepods) != nil:
		return fmt.Errorf("kubepods %q is not a clean relative path", j.Kubepods)
	case kubepods != "" && j.Kubepods != kubepods:
		return fmt.Errorf("it is for %s, not %s", j.Kubepods, kubepods)
	case j.Temp != TempName(j.Kubepods) || j.Aside != AsideName(j.Kubepods):
		return fmt.Errorf("temporary %q and set-aside %q are not the names this tool derives from %q", j.Temp, j.Aside, j.Kubepods)
	case !j.Phase.known():
		return fmt.Errorf("unknown phase %q", j.Phase)
	case len(j.Snapshot.Nodes) == 0 || j.Snapshot.Nodes[0].Rel != "":
		return errors.New("snapshot does not start with the kubepods cgroup")
	}
	seen := map[string]bool{}
	for _, n := range j.Snapshot.Nodes {
		if err := cleanRel(n.Rel); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		if seen[n.Rel] {
			return fmt.Errorf("snapshot: %q twice", n.Rel)
		}
		if n.Rel != "" && !seen[parentRel(n.Rel)] {
			return fmt.Errorf("snapshot: %q comes before its parent", n.Rel)
		}
		seen[n.Rel] = true
	}
	for _, list := range [][]string{j.Vanished, j.Adopted} {
		for _, r := range list {
			if err := cleanRel(r); err != nil || !seen[r] {
				return fmt.Errorf("%q is not a cgroup of the snapshot", r)
			}
		}
	}
	for _, r := range j.Refused {
		if err := cleanRel(r); err != nil {
			return err
		}
	}
	return nil
}

// parentRel returns the parent of a kubepods-relative path ("" for a top one).
func parentRel(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// saveJournal writes j durably: temp file, fsync, rename over the journal,
// fsync of the directory. A crash leaves either the old or the new journal.
// The journal is encoded once (sealedjson.Encode).
func saveJournal(stateDir string, j *Journal) error { return writeJournal(stateDir, j, true) }

// writeJournal is saveJournal; without sync it skips the fsyncs (see
// Engine.record): a killed run still leaves the old or the new journal,
// a crash of the machine may keep the old one.
func writeJournal(stateDir string, j *Journal, sync bool) error {
	j.Updated = time.Now().UTC()
	b, err := sealedjson.Encode(j, &j.Checksum)
	if err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	return writeFileAtomic(journalPath(stateDir), b, sync)
}

// removeJournal deletes the journal durably (used only when a run changed nothing).
func removeJournal(stateDir string) error {
	if err := os.Remove(journalPath(stateDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove journal: %w", err)
	}
	return atomicfile.SyncDir(stateDir)
}

// retireJournal renames the journal to migrate-journal.<why>-<time>.json
// next to it, durably, and returns the new path.
func retireJournal(stateDir, why string) (string, error) {
	to := filepath.Join(stateDir, fmt.Sprintf("migrate-journal.%s-%s.json", why, time.Now().UTC().Format("20060102T150405Z")))
	if err := os.Rename(journalPath(stateDir), to); err != nil {
		return "", fmt.Errorf("set the journal aside: %w", err)
	}
	return to, atomicfile.SyncDir(stateDir)
}

// writeFileAtomic writes the journal, creating the state directory on first use.
func writeFileAtomic(path string, data []byte, sync bool) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	if !sync {
		return atomicfile.WriteFileNoSync(path, data, 0o600)
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// JournalKubepods returns the kubepods path recorded by the journal in
// stateDir ("" when there is none), for a caller that runs only the cleanup.
func JournalKubepods(stateDir string) (string, error) {
	j, err := loadJournal(stateDir, "")
	if err != nil || j == nil {
		return "", err
	}
	return j.Kubepods, nil
}
