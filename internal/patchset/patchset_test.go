package patchset

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/patchset/guard"
)

const header = `Subject: test change
Why: because the test says so
Upstream: none
Upstream-Difference: none
Drop-When: never

`

// original is the file every test tree starts with.
const original = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n"

// twoHunks changes line 2 and line 9 of original.
const twoHunks = `diff --git a/pkg/a.txt b/pkg/a.txt
--- a/pkg/a.txt
+++ b/pkg/a.txt
@@ -1,3 +1,3 @@
 one
-two
+TWO
 three
@@ -8,3 +8,3 @@
 eight
-nine
+NINE
 ten
`

// newFile adds pkg/b.txt.
const newFile = `diff --git a/pkg/b.txt b/pkg/b.txt
new file mode 100644
--- /dev/null
+++ b/pkg/b.txt
@@ -0,0 +1 @@
+bee
`

// onTop changes a line that twoHunks changed, so it only applies after it.
const onTop = `diff --git a/pkg/a.txt b/pkg/a.txt
--- a/pkg/a.txt
+++ b/pkg/a.txt
@@ -1,3 +1,3 @@
 one
-TWO
+Two
 three
`

type fixture struct {
	patches map[string]string
	tree    string // content of pkg/a.txt
}

func setup(t *testing.T, fx fixture) (dir, root string) {
	t.Helper()
	dir = t.TempDir()
	root = t.TempDir()
	for name, body := range fx.patches {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "pkg", "a.txt"), []byte(fx.tree), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, root
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApply(t *testing.T) {
	fx := fixture{
		patches: map[string]string{
			"0001-two-hunks.patch": header + twoHunks,
			"0002-new-file.patch":  header + newFile,
			"0003-on-top.patch":    header + onTop,
		},
		tree: original,
	}
	dir, root := setup(t, fx)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Patches); got != 3 {
		t.Fatalf("loaded %d patches, want 3", got)
	}
	if st, err := s.Status(root); err != nil || st != Unpatched {
		t.Fatalf("Status before = %v, %v; want Unpatched", st, err)
	}
	applied, err := s.Apply(root)
	if err != nil || !applied {
		t.Fatalf("Apply = %v, %v; want true, nil", applied, err)
	}
	want := strings.NewReplacer("two", "Two", "nine", "NINE").Replace(original)
	if got := read(t, filepath.Join(root, "pkg", "a.txt")); got != want {
		t.Errorf("a.txt = %q, want %q", got, want)
	}
	if got := read(t, filepath.Join(root, "pkg", "b.txt")); got != "bee\n" {
		t.Errorf("b.txt = %q", got)
	}
	// A second Apply sees the series in place and does nothing.
	if st, err := s.Status(root); err != nil || st != Patched {
		t.Fatalf("Status after = %v, %v; want Patched", st, err)
	}
	if applied, err := s.Apply(root); err != nil || applied {
		t.Fatalf("second Apply = %v, %v; want false, nil", applied, err)
	}
	// Reverse gives back the pristine content.
	rev, err := s.Result(root, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rev["pkg/a.txt"]); got != original {
		t.Errorf("reverse a.txt = %q, want original", got)
	}
	if b, ok := rev["pkg/b.txt"]; !ok || b != nil {
		t.Errorf("reverse should delete pkg/b.txt, got %q (present %v)", b, ok)
	}
}

func TestApplyFailsStrictly(t *testing.T) {
	tests := []struct {
		name     string
		tree     string
		wantHunk int
	}{
		{"first hunk context changed", strings.Replace(original, "one", "uno", 1), 1},
		{"second hunk line changed", strings.Replace(original, "nine", "nueve", 1), 2},
		// A line inserted above hunk 2 shifts it; patch(1) would apply it with an
		// offset, strict application must refuse.
		{"second hunk shifted by one line", strings.Replace(original, "five\n", "five\nfive and a half\n", 1), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := fixture{patches: map[string]string{
				"0001-new-file.patch":  header + newFile,
				"0002-two-hunks.patch": header + twoHunks,
			}, tree: tt.tree}
			dir, root := setup(t, fx)
			s, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Apply(root)
			var he *HunkError
			if !errors.As(err, &he) {
				t.Fatalf("Apply error = %v, want *HunkError", err)
			}
			if he.Patch != "0002-two-hunks.patch" || he.File != "pkg/a.txt" || he.Hunk != tt.wantHunk {
				t.Errorf("HunkError = {%s %s hunk %d}, want {0002-two-hunks.patch pkg/a.txt hunk %d}", he.Patch, he.File, he.Hunk, tt.wantHunk)
			}
			for _, part := range []string{"0002-two-hunks.patch", "pkg/a.txt", "hunk " + string(rune('0'+tt.wantHunk))} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %q", err, part)
				}
			}
			// Nothing was written: the earlier patch's new file is not there either.
			if got := read(t, filepath.Join(root, "pkg", "a.txt")); got != tt.tree {
				t.Errorf("a.txt changed by a failed apply")
			}
			if _, err := os.Stat(filepath.Join(root, "pkg", "b.txt")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("b.txt written by a failed apply: %v", err)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		body    string
		wantErr string
	}{
		{"no header", "0001-x.patch", twoHunks, "header"},
		{"missing drop-when", "0001-x.patch", strings.Replace(header, "Drop-When: never\n", "", 1) + twoHunks, "Drop-When"},
		{"empty upstream", "0001-x.patch", strings.Replace(header, "Upstream: none", "Upstream: ", 1) + twoHunks, "Upstream"},
		{"bad name", "fix.patch", header + twoHunks, "NNNN-short-name.patch"},
		{"no diff", "0001-x.patch", header, "no file diff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tt.file), []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.file) {
				t.Fatalf("Load error = %v, want one naming %s and %q", err, tt.file, tt.wantErr)
			}
		})
	}
}

func TestMarker(t *testing.T) {
	mk := func(body string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "0001-x.patch"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s.Marker()
	}
	a, b := mk(header+twoHunks), mk(header+twoHunks)
	c := mk(strings.Replace(header, "never", "later", 1) + twoHunks)
	if !regexp.MustCompile(`^nokmem\.[0-9a-f]{12}$`).MatchString(a) {
		t.Errorf("marker %q is not nokmem.<12 hex>", a)
	}
	if a != b {
		t.Errorf("same series gives markers %q and %q", a, b)
	}
	if a == c {
		t.Errorf("changed series keeps marker %q", a)
	}
}

// TestKubernetesSeries loads the committed kubelet patch series: every patch
// must parse and carry a complete header, and the kmem patch must take the
// vendored runc's unconditional EnableKernelMemoryAccounting call and put it
// under `KernelMemory != 0` (read from the hunks, no build needed).
func TestKubernetesSeries(t *testing.T) {
	s, err := Load(filepath.Join("..", "..", "patches", "kubernetes", "v1.12.4"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Patches) < 2 {
		t.Fatalf("want the kmem and the ugorji patch, got %d patches", len(s.Patches))
	}
	kmem := s.Patches[0]
	if len(kmem.Files) != 1 || kmem.Files[0].NewName != "vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/memory.go" {
		t.Errorf("first patch should change the vendored runc memory.go only")
	}
	calls, err := guard.Calls(kmem.Files, "EnableKernelMemoryAccounting")
	if err != nil {
		t.Fatal(err)
	}
	const file = "vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs/memory.go"
	want := []guard.Call{
		{File: file, Hunk: 1, New: false, Cond: ""},
		{File: file, Hunk: 1, New: true, Cond: "d.config.Resources.KernelMemory != 0"},
	}
	if !slices.Equal(calls, want) {
		t.Errorf("%s: EnableKernelMemoryAccounting calls %v, want %v (unguarded before, guarded by a kernel memory limit after)", kmem.Name, calls, want)
	}
}
