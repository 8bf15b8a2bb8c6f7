package migrate

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalPathRule: a journal with a correct checksum whose paths climb
// out of their tree with ".." is refused by the path rule itself ("leaves
// its tree"), not by a neighbouring check. Each case keeps every other
// check satisfied: parents come before their children (".." is the parent
// of "../victim", and "" of ".."), the names are the derived ones, and the
// Vanished/Adopted entries are cgroups of the snapshot.
func TestJournalPathRule(t *testing.T) {
	escape := func(j *Journal) {
		j.Snapshot.Nodes = []Node{{Rel: "", Pids: []int{1}}, {Rel: ".."}, {Rel: "../victim", Settings: Settings{SoftLimit: "1048576"}}}
	}
	tests := map[string]func(j *Journal){
		"node .. and ../victim": escape,
		"node ../victim/x": func(j *Journal) {
			escape(j)
			j.Snapshot.Nodes = append(j.Snapshot.Nodes, Node{Rel: "../victim/x"})
		},
		"vanished ..": func(j *Journal) {
			escape(j)
			j.Vanished = []string{".."}
		},
		"adopted ../victim": func(j *Journal) {
			escape(j)
			j.Adopted = []string{"../victim"}
		},
		"refused ../victim/file": func(j *Journal) { j.Refused = []string{"../victim/memory.swappiness"} },
		"refused ..":             func(j *Journal) { j.Refused = []string{".."} },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j := testJournal()
			mutate(j)
			if err := saveJournal(dir, j); err != nil { // a correct checksum over bad content
				t.Fatal(err)
			}
			_, err := loadJournal(dir, "kubepods")
			if !errors.Is(err, ErrCorruptJournal) || !strings.Contains(err.Error(), filepath.Join(dir, JournalFile)) {
				t.Fatalf("error %v, want ErrCorruptJournal naming the file", err)
			}
			if !strings.Contains(err.Error(), "leaves its tree") {
				t.Errorf("refused for another reason than the path rule: %v", err)
			}
		})
	}
	// The same journal without the escape loads: the cases above are
	// refused for their paths only.
	t.Run("control", func(t *testing.T) {
		dir := t.TempDir()
		j := testJournal()
		j.Snapshot.Nodes = []Node{{Rel: "", Pids: []int{1}}, {Rel: "up"}, {Rel: "up/victim"}}
		j.Vanished, j.Adopted, j.Refused = []string{"up"}, []string{"up/victim"}, []string{"up/victim/memory.swappiness"}
		if err := saveJournal(dir, j); err != nil {
			t.Fatal(err)
		}
		if _, err := loadJournal(dir, "kubepods"); err != nil {
			t.Fatalf("a journal with clean paths: %v", err)
		}
	})
}
