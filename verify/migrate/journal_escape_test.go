package migrate_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// resignJournal rewrites the journal in stateDir after edit, with the
// checksum the tool computes (sha256 of the journal encoded with an empty
// checksum), as someone who knows the format could.
func resignJournal(t *testing.T, stateDir string, edit func(j *migrate.Journal)) {
	t.Helper()
	p := filepath.Join(stateDir, migrate.JournalFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var j migrate.Journal
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	edit(&j)
	j.Checksum = ""
	plain, err := json.Marshal(&j)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(plain)
	j.Checksum = "sha256:" + hex.EncodeToString(h[:])
	if b, err = json.MarshalIndent(&j, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestJournalDotDotResigned: a journal whose nodes climb out of kubepods
// ("..", "../victim") and whose checksum is correct is refused by every
// command for its paths, naming the file and the way out, and nothing
// changes: not the victim cgroup beside kubepods, not the tree. (Resigning
// is what sets this apart from TestReproJournalRelEscapes, where the
// checksum alone refuses the edited file.)
func TestJournalDotDotResigned(t *testing.T) {
	n := newSimNode(t, memcgsim.RHEL78, "qos", true)
	n.must(t, n.h.Mkdir("victim"))
	n.must(t, n.h.Write("victim", memcg.SoftLimit, "1048576"))
	if !runUntilKilled(t, n.engine(t, killAt(migrate.PhasePlanned)).Migrate) {
		t.Fatal("kill never fired")
	}
	resignJournal(t, n.stateDir, func(j *migrate.Journal) {
		j.Snapshot.Nodes = append(j.Snapshot.Nodes, migrate.Node{Rel: ".."}, migrate.Node{Rel: "../victim"})
	})
	p := filepath.Join(n.stateDir, migrate.JournalFile)
	costs := n.sim.Costs()
	for name, run := range map[string]func(*migrate.Engine) (*migrate.Report, error){
		"migrate": (*migrate.Engine).Migrate, "rollback": (*migrate.Engine).Rollback, "cleanup": (*migrate.Engine).Cleanup,
	} {
		_, err := run(n.engine(t, migrate.Hooks{}))
		if !errors.Is(err, migrate.ErrCorruptJournal) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "--abandon") {
			t.Errorf("%s with a resigned ../victim journal: %v, want a refusal naming %s and the way out", name, err, p)
		} else if !strings.Contains(err.Error(), "leaves its tree") {
			t.Errorf("%s: refused for another reason than the path rule: %v", name, err)
		}
	}
	if c := n.sim.Costs().Sub(costs); c.Mkdir+c.Rmdir+c.Rename+c.Move+c.Write != 0 {
		t.Errorf("an untrusted journal led to changes: %v", c)
	}
	if v, err := n.h.ReadString("victim", memcg.SoftLimit); err != nil || v != "1048576" {
		t.Errorf("victim soft limit %q (%v)", v, err)
	}
}
