package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/binary"
)

func TestMemswFirst(t *testing.T) {
	tests := []struct {
		name             string
		newLimit, curMsw string
		want             bool
	}{
		{"fresh cgroup, any limit: limit first", "1073741824", unlimited, false},
		{"fresh cgroup, unlimited: nothing to order", unlimited, unlimited, false},
		{"raise above the current memsw: memsw first", "2147483648", "1073741824", true},
		{"lower under the current memsw: limit first", "536870912", "1073741824", false},
		{"equal: limit first", "1073741824", "1073741824", false},
		{"unlimited above a finite memsw: memsw first", unlimited, "1073741824", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := memswFirst(tt.newLimit, tt.curMsw); got != tt.want {
				t.Errorf("memswFirst(%s, %s) = %v, want %v", tt.newLimit, tt.curMsw, got, tt.want)
			}
		})
	}
}

func TestNormalizeLimit(t *testing.T) {
	tests := map[string]string{
		"9223372036854771712": unlimited, // page_counter kernels
		"9223372036854775807": unlimited, // 3.10 res_counter
		"-1":                  unlimited,
		"1073741824":          "1073741824",
		"0":                   "0",
	}
	for in, want := range tests {
		if got := normalizeLimit(in); got != want {
			t.Errorf("normalizeLimit(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestOOMKillDisable(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"oom_kill_disable 1\nunder_oom 0", "1", false},
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 3", "0", false},
		{"under_oom 0", "", true},
	}
	for _, tt := range tests {
		got, err := oomKillDisable(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("oomKillDisable(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func testJournal() *Journal {
	return &Journal{Version: journalVersion, Kubepods: "kubepods", Temp: TempName("kubepods"), Aside: AsideName("kubepods"), Phase: PhaseMoved,
		Snapshot: Snapshot{Inode: 7, Nodes: []Node{{Rel: "", Pids: []int{1}}, {Rel: "pod1", Settings: Settings{Limit: "1048576"}}}}}
}

func TestJournalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if j, err := loadJournal(dir, "kubepods"); j != nil || err != nil {
		t.Fatalf("empty state dir: %v, %v", j, err)
	}
	want := testJournal()
	if err := saveJournal(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadJournal(dir, "kubepods")
	if err != nil {
		t.Fatal(err)
	}
	if got.Phase != want.Phase || got.Snapshot.Nodes[1].Settings.Limit != "1048576" || got.Snapshot.Inode != 7 {
		t.Errorf("round trip: %+v", got)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != JournalFile {
		t.Errorf("state dir holds %v, want only the journal (no temp files)", ents)
	}
}

func TestJournalCorrupt(t *testing.T) {
	tests := map[string]string{
		"truncated":     `{"version":2,"kubepods":"kubepods","phase":"moved-o`,
		"unknown phase": `{"version":2,"kubepods":"kubepods","temp":"nokmem-migrate-kubepods","aside":"nokmem-migrate-old-kubepods","phase":"halfway","snapshot":{"nodes":[{"rel":""}]}}`,
		"wrong version": `{"version":9,"kubepods":"kubepods","phase":"planned","snapshot":{"nodes":[{"rel":""}]}}`,
		"no checksum":   `{"version":2,"kubepods":"kubepods","temp":"nokmem-migrate-kubepods","aside":"nokmem-migrate-old-kubepods","phase":"planned","snapshot":{"nodes":[{"rel":""}]}}`,
		"unknown field": `{"version":2,"kubepods":"kubepods","phase":"planned","rel":"x"}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, JournalFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadJournal(dir, "kubepods")
			if !errors.Is(err, ErrCorruptJournal) || !strings.Contains(err.Error(), filepath.Join(dir, JournalFile)) {
				t.Errorf("error %v, want ErrCorruptJournal naming the file", err)
			}
		})
	}
}

// TestJournalUntrusted: a journal whose checksum is right but whose paths
// leave their tree, or whose names are not the derived ones, is refused;
// so is a journal edited after it was written.
func TestJournalUntrusted(t *testing.T) {
	tests := map[string]func(j *Journal){
		"rel ../victim":        func(j *Journal) { j.Snapshot.Nodes[1].Rel = "../victim" },
		"absolute rel":         func(j *Journal) { j.Snapshot.Nodes[1].Rel = "/etc" },
		"unclean rel":          func(j *Journal) { j.Snapshot.Nodes[1].Rel = "pod1//x" },
		"dot rel":              func(j *Journal) { j.Snapshot.Nodes[1].Rel = "." },
		"child before parent":  func(j *Journal) { j.Snapshot.Nodes[1].Rel = "pod9/ctr" },
		"temp elsewhere":       func(j *Journal) { j.Temp = "victim" },
		"aside elsewhere":      func(j *Journal) { j.Aside = "kubepods/x" },
		"kubepods escapes":     func(j *Journal) { j.Kubepods = "../kubepods" },
		"vanished not planned": func(j *Journal) { j.Vanished = []string{"../victim"} },
		"duplicate":            func(j *Journal) { j.Snapshot.Nodes = append(j.Snapshot.Nodes, j.Snapshot.Nodes[1]) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j := testJournal()
			mutate(j)
			if err := saveJournal(dir, j); err != nil { // a correct checksum over bad content
				t.Fatal(err)
			}
			_, err := loadJournal(dir, "")
			if !errors.Is(err, ErrCorruptJournal) || !strings.Contains(err.Error(), filepath.Join(dir, JournalFile)) {
				t.Errorf("error %v, want ErrCorruptJournal naming the file", err)
			}
		})
	}
	t.Run("edited after writing", func(t *testing.T) {
		dir := t.TempDir()
		if err := saveJournal(dir, testJournal()); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, JournalFile)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), `"phase": "moved"`, `"phase": "built"`, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadJournal(dir, "kubepods"); !errors.Is(err, ErrCorruptJournal) || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("edited journal: %v, want a checksum refusal", err)
		}
	})
}

func TestKubeletPIDs(t *testing.T) {
	proc := t.TempDir()
	for pid, comm := range map[string]string{"1": "systemd", "200": "kubelet", "201": "kubelet-wrapper", "self": "kubelet"} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(proc, "300"), 0o755); err != nil { // exited: no comm
		t.Fatal(err)
	}
	pids, err := KubeletPIDs(proc)
	if err != nil || len(pids) != 1 || pids[0] != 200 {
		t.Errorf("KubeletPIDs = %v, %v; want [200]", pids, err)
	}
	if err := CheckKubeletStopped(proc); !errors.Is(err, ErrKubeletRunning) {
		t.Errorf("CheckKubeletStopped: %v", err)
	}
}

func TestCheckKubeletBuild(t *testing.T) {
	tests := []struct {
		name, version string
		known         bool // its sha256 is one of --known-sums
		wantErr       bool
	}{
		{"nokmem", "Kubernetes v1.12.4+nokmem", true, false},
		{"claims nokmem", "Kubernetes v1.12.4+nokmem", false, true},
		{"stock", "Kubernetes v1.12.4", false, true},
		{"garbage", "hello", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kubelet")
			if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+tt.version+"'\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			known := map[string]string{}
			if sum, err := binary.FileSHA256(p); err != nil {
				t.Fatal(err)
			} else if tt.known {
				known[sum] = "kubelet"
			}
			err := CheckKubeletBuild(p, known)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrStockKubelet)) {
				t.Errorf("CheckKubeletBuild(%s) = %v", tt.version, err)
			}
		})
	}
	if err := CheckKubeletBuild(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("a missing kubelet passed")
	}
}
