package install

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/atomicfile"
	"github.com/nokmem/nokmem/internal/bundle/bundletest"
)

// dirBytes sums the sizes of the files in dir.
func dirBytes(t *testing.T, dir string) (n int64, files int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
		files++
	}
	return n, files
}

// TestBackupsAfterCycles is issue 21's "backups are never collected": 3
// install/rollback cycles left 3 copies of the originals in state/backup.
// Now the originals of the last install are kept, nothing more, and the
// older rolled-back records go with their backups.
func TestBackupsAfterCycles(t *testing.T) {
	n := newNode(t)
	pad := "#" + strings.Repeat("x", 1<<20) + "\n" // 1 MiB originals
	for name, v := range map[string]string{"kubelet": "Kubernetes v1.12.4", "runc": "runc version 1.0.0-rc5", "docker-runc": "runc version 1.0.0-rc5"} {
		n.put(t, name, append(script(v), pad...), 0o755)
	}
	originals, _ := dirBytes(t, n.bin)
	f := bundletest.Make(t, bundleName, "", "")
	for range 3 {
		if _, err := Install(n.open(t, f)); err != nil {
			t.Fatal(err)
		}
		if _, err := Rollback(n.state, false); err != nil {
			t.Fatal(err)
		}
	}
	kept, files := dirBytes(t, filepath.Join(n.state, BackupDir))
	rolled, _ := filepath.Glob(filepath.Join(n.state, RolledBackPrefix+"*"))
	t.Logf("after 3 install/rollback cycles: state/backup keeps %d files, %d bytes (originals: %d bytes); %d rolled-back records", files, kept, originals, len(rolled))
	if kept != originals || files != 3 || len(rolled) != 1 {
		t.Errorf("backups %d bytes in %d files, %d rolled-back records; want one copy of the originals (%d bytes, 3 files) and the last record", kept, files, len(rolled), originals)
	}
}

// TestGC: gc sweeps the temporary files of dead writers from the state,
// backup, target and given directories, frees backups no record names, and
// keeps the current install's originals and an abandoned record's backups;
// --dry-run only reports. An abandoned record gc cannot read keeps every
// backup.
func TestGC(t *testing.T) {
	n := newNode(t)
	f := bundletest.Make(t, bundleName, "", "")
	rec, err := Install(n.open(t, f))
	if err != nil {
		t.Fatal(err)
	}
	dead := "999999999" // above pid_max: no such process
	tmp := t.TempDir()
	backups := filepath.Join(n.state, BackupDir)
	stray := []string{
		filepath.Join(n.bin, atomicfile.TempPrefix+dead+"-kubelet-1"),
		filepath.Join(backups, atomicfile.TempPrefix+dead+"-x-1"),
		filepath.Join(n.state, atomicfile.TempPrefix+dead+"-install.json-1"),
		filepath.Join(tmp, atomicfile.TempPrefix+dead+"-bundle-1"),
	}
	orphan := filepath.Join(backups, "20200101T000000.000000000Z-0-kubelet")
	for _, p := range append(stray, orphan) {
		must(t, os.WriteFile(p, []byte("debris"), 0o600))
	}
	live := filepath.Join(tmp, atomicfile.TempPrefix+strconv.Itoa(os.Getpid())+"-bundle-1")
	must(t, os.WriteFile(live, nil, 0o600))

	dry, err := GC(n.state, []string{tmp}, true)
	if err != nil || len(dry.Swept) != len(stray) || len(dry.Freed) != 1 || dry.Freed[0] != orphan {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	for _, p := range append(stray, orphan) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("dry run removed %s", p)
		}
	}
	res, err := GC(n.state, []string{tmp}, false)
	if err != nil || len(res.Swept) != len(stray) || len(res.Freed) != 1 || res.FreedBytes != int64(len("debris")) || len(res.Kept) != 3 {
		t.Fatalf("gc: %+v, %v", res, err)
	}
	for _, p := range append(stray, orphan) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live writer's temporary file was removed: %v", err)
	}
	for _, e := range rec.Entries {
		if _, err := os.Stat(e.Backup); err != nil {
			t.Errorf("original %s freed: %v", e.Backup, err)
		}
	}
	// Abandoned: its backups stay; an unreadable abandoned record keeps all.
	if _, err := Abandon(n.state); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(orphan, []byte("debris"), 0o600))
	if res, err = GC(n.state, nil, false); err != nil || len(res.Kept) != 3 || len(res.Freed) != 1 {
		t.Errorf("gc with an abandoned record: %+v, %v", res, err)
	}
	must(t, os.WriteFile(filepath.Join(n.state, AbandonedPrefix+"garbage"), []byte("{"), 0o600))
	must(t, os.WriteFile(orphan, []byte("debris"), 0o600))
	if res, err = GC(n.state, nil, false); err != nil || len(res.Freed) != 0 || len(res.Kept) != 4 {
		t.Errorf("gc with an unreadable abandoned record: %+v, %v", res, err)
	}
}
