package stepstamp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/publish"
)

// fixture is a step with one small input, one large input recorded by
// identity, an output folder and an output file.
type fixture struct {
	dir, patch, binary, outDir, outFile string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	d := t.TempDir()
	f := fixture{dir: d, patch: filepath.Join(d, "0001.patch"), binary: filepath.Join(d, "kubelet"),
		outDir: filepath.Join(d, "out"), outFile: filepath.Join(d, "out.tar.gz")}
	write(t, f.patch, "fix\n")
	write(t, f.binary, "ELF")
	if err := os.MkdirAll(filepath.Join(f.outDir, "repodata"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.outDir, "SHA256SUMS"), "sums\n")
	write(t, filepath.Join(f.outDir, "repodata", "repomd.xml"), "<repomd/>\n")
	write(t, f.outFile, "tar")
	return f
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// step builds the step's record description from the files as they are now.
func (f fixture) step(t *testing.T, env string) Step {
	t.Helper()
	s := &publish.Stamp{}
	if err := s.AddFile("patch", f.patch); err != nil {
		t.Fatal(err)
	}
	if err := AddFileIdentity(s, "binary", f.binary); err != nil {
		t.Fatal(err)
	}
	s.Add("env", []byte(env))
	return Step{Name: "test", File: filepath.Join(f.dir, "stamps", "test"), Inputs: s, Outputs: []string{f.outDir, f.outFile}}
}

func check(t *testing.T, s Step) (bool, string) {
	t.Helper()
	ok, why, err := s.Check()
	if err != nil {
		t.Fatal(err)
	}
	return ok, why
}

func TestSkipsOnlyWhenNothingChanged(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, f fixture)
		env    string
		why    string // part of the reason to rerun; "" means up to date
	}{
		{name: "nothing changed", change: func(*testing.T, fixture) {}},
		{name: "patch touched, same bytes", change: func(t *testing.T, f fixture) {
			now := time.Now().Add(time.Hour)
			if err := os.Chtimes(f.patch, now, now); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "patch changed", change: func(t *testing.T, f fixture) { write(t, f.patch, "fix2\n") }, why: "inputs changed: patch"},
		{name: "binary replaced, same size", change: func(t *testing.T, f fixture) {
			tmp := f.binary + ".new"
			write(t, tmp, "ELF")
			if err := os.Rename(tmp, f.binary); err != nil {
				t.Fatal(err)
			}
		}, why: "inputs changed: binary"},
		{name: "key changed", env: "other key", change: func(*testing.T, fixture) {}, why: "inputs changed: env"},
		{name: "output file deleted", change: func(t *testing.T, f fixture) {
			if err := os.Remove(f.outFile); err != nil {
				t.Fatal(err)
			}
		}, why: "missing"},
		{name: "file in output folder deleted", change: func(t *testing.T, f fixture) {
			if err := os.Remove(filepath.Join(f.outDir, "repodata", "repomd.xml")); err != nil {
				t.Fatal(err)
			}
		}, why: "output missing: "},
		{name: "output rewritten in place, same size", change: func(t *testing.T, f fixture) {
			p := filepath.Join(f.outDir, "SHA256SUMS")
			old, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			write(t, p, "SUMS\n")
			later := old.ModTime().Add(time.Millisecond)
			if err := os.Chtimes(p, later, later); err != nil {
				t.Fatal(err)
			}
		}, why: "output changed: "},
		{name: "file added to an output folder", change: func(t *testing.T, f fixture) {
			write(t, filepath.Join(f.outDir, "stray"), "x")
		}, why: "new output"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if ok, why := check(t, f.step(t, "")); ok || why != "no record of an earlier run" {
				t.Fatalf("first run: up to date %v (%s), want a run without a record", ok, why)
			}
			if err := f.step(t, "").Record(); err != nil {
				t.Fatal(err)
			}
			c.change(t, f)
			ok, why := check(t, f.step(t, c.env))
			switch {
			case c.why == "" && !ok:
				t.Errorf("after %s: reruns (%s), want up to date", c.name, why)
			case c.why != "" && ok:
				t.Errorf("after %s: up to date, want a rerun", c.name)
			case c.why != "" && !strings.Contains(why, c.why):
				t.Errorf("after %s: rerun because %q, want %q", c.name, why, c.why)
			}
		})
	}
}

// A step that builds on another reruns when the earlier step's record
// changes: here its output was rebuilt.
func TestFollowsTheStepBefore(t *testing.T) {
	f := newFixture(t)
	first := f.step(t, "")
	if err := first.Record(); err != nil {
		t.Fatal(err)
	}
	next := func() Step {
		s := &publish.Stamp{}
		if err := AddRecord(s, "step test", first.File); err != nil {
			t.Fatal(err)
		}
		return Step{Name: "next", File: filepath.Join(f.dir, "stamps", "next"), Inputs: s, Outputs: []string{f.outFile}}
	}
	if err := next().Record(); err != nil {
		t.Fatal(err)
	}
	if ok, why := check(t, next()); !ok {
		t.Fatalf("unchanged: reruns (%s)", why)
	}
	tmp := f.outFile + ".new"
	write(t, tmp, "tar")
	if err := os.Rename(tmp, f.outFile); err != nil {
		t.Fatal(err)
	}
	if err := first.Record(); err != nil {
		t.Fatal(err)
	}
	ok, why := check(t, next())
	if ok || !strings.Contains(why, "step test") {
		t.Errorf("after the step before reran: up to date %v (%s), want a rerun naming it", ok, why)
	}
	if err := next().Forget(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := check(t, next()); ok {
		t.Error("after Forget: up to date")
	}
}
