package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// Leftovers is what earlier verify runs left on the node.
type Leftovers struct {
	// TempTrees are children of the memory root named migrate.TempPrefix*.
	TempTrees []string `json:"temp_trees"`
	// Journal is the migration journal, when one exists.
	Journal *JournalState `json:"journal,omitempty"`
	// Install is the install record, when one exists.
	Install *InstallState `json:"install,omitempty"`
}

// JournalState is the top of a migration journal.
type JournalState struct {
	Path  string `json:"path"`
	Phase string `json:"phase"`
	// Unfinished is true unless the phase is done or rolled-back.
	Unfinished bool `json:"unfinished"`
	// Error says why the journal could not be read, if so.
	Error string `json:"error,omitempty"`
}

// InstallState is what detect reads from the install record.
type InstallState struct {
	Path string `json:"path"`
	// SignatureSkipped is true when install ran without a signature check.
	SignatureSkipped bool `json:"signature_skipped"`
	// State is the record's state: "installing" after an interrupted install.
	State string `json:"state"`
	// Error says why the record could not be read, if so.
	Error string `json:"error,omitempty"`
}

// FindLeftovers lists temporary trees under the root and reads the journal
// and the install record in stateDir ("" skips them).
func FindLeftovers(h memcg.Hierarchy, stateDir string) (Leftovers, error) {
	l := Leftovers{TempTrees: []string{}}
	kids, err := h.Children("")
	if err != nil {
		return l, fmt.Errorf("leftovers: %w", err)
	}
	for _, k := range kids {
		if strings.HasPrefix(k, migrate.TempPrefix) {
			l.TempTrees = append(l.TempTrees, k)
		}
	}
	if stateDir == "" {
		return l, nil
	}
	var j struct {
		Phase string `json:"phase"`
	}
	p := filepath.Join(stateDir, migrate.JournalFile)
	if found, rerr := readJSON(p, &j); found {
		l.Journal = &JournalState{Path: p, Phase: j.Phase, Unfinished: !migrate.Phase(j.Phase).Terminal()}
		if rerr != nil {
			l.Journal.Error = rerr.Error()
		}
	} else if rerr != nil {
		return l, rerr
	}
	var rec struct {
		SignatureSkipped bool   `json:"signature_skipped"`
		State            string `json:"state"`
	}
	p = filepath.Join(stateDir, install.RecordFile)
	if found, rerr := readJSON(p, &rec); found {
		l.Install = &InstallState{Path: p, SignatureSkipped: rec.SignatureSkipped, State: rec.State}
		if rerr != nil {
			l.Install.Error = rerr.Error()
		}
	} else if rerr != nil {
		return l, rerr
	}
	return l, nil
}

// readJSON decodes the file at p into v. found is false when p does not
// exist; an unreadable or malformed file is found with an error.
func readJSON(p string, v any) (found bool, err error) {
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("leftovers: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("%s: %w", p, err)
	}
	return true, nil
}
