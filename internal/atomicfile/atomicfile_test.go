package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("read %q, %v", b, err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
}

// A failure while writing leaves the old file and no temporary file.
func TestFailedWriteLeavesOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, 0o600, KeepOwner, func(w io.Writer) error {
		if _, err := w.Write([]byte("half")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file now %q, want old", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only f", len(ents))
	}
}

func TestWriteMissingDir(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("no error for a missing directory")
	}
}

// TestSweep: a temporary file of a writer that is gone is swept; this
// process's own, a live process's and other files are kept.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{ // name → swept
		TempPrefix + strconv.Itoa(dead.Process.Pid) + "-kubelet-123": true,
		TempPrefix + "garbage":                                true,
		TempPrefix + strconv.Itoa(os.Getpid()) + "-kubelet-1": false,
		TempPrefix + "1-kubelet-1":                            false, // pid 1 is alive
		"kubelet":                                             false,
		".kubelet.nokmem-1":                                   false,
	}
	for n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Sweep(dir)
	if err != nil {
		t.Fatal(err)
	}
	for n, swept := range names {
		_, statErr := os.Stat(filepath.Join(dir, n))
		if gone := statErr != nil; gone != swept {
			t.Errorf("%s: gone %v, want %v", n, gone, swept)
		}
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want the 2 stray files", removed)
	}
	if got, err := Sweep(filepath.Join(dir, "missing")); err != nil || got != nil {
		t.Errorf("missing dir: %v, %v", got, err)
	}
}

// TestTempName: Write's temporary file carries TempPrefix and the pid.
func TestTempName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kubelet")
	err := Write(p, 0o600, KeepOwner, func(io.Writer) error {
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), TempPrefix+strconv.Itoa(os.Getpid())+"-kubelet-") {
			return fmt.Errorf("temporary files %v", ents)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// WriteFileNoSync replaces the content and leaves no temporary file.
func TestWriteFileNoSyncReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileNoSync(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "new" {
		t.Fatalf("read %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only f", len(ents))
	}
}
