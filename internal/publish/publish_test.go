package publish

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/release/sums"
)

func artifact(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func stamp(lock string) *Stamp {
	s := &Stamp{}
	s.Add("vendor-pins/kubernetes/v1.12.4.yaml", []byte(lock))
	s.Add("toolchain", []byte("golang.org/toolchain@v0.0.1-go1.26.11.linux-amd64"))
	return s
}

// snapshot reads every file of dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func TestPublishAndCurrent(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "_output", "kubernetes", "v1.12.4")
	s := stamp("lock v1")
	if ok, err := Current(dest, s); err != nil || ok {
		t.Fatalf("Current before any publish = %v, %v; want false, nil", ok, err)
	}
	sha, err := Publish(dest, []string{artifact(t, "kubelet", "binary one")}, s)
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of "binary one": `printf "binary one" | sha256sum`
	if want := "d4e217a0cce0ef65ed50283685edd58725a17c1c6520c7a815b42583497814b2"; sha["kubelet"] != want {
		t.Fatalf("sha[kubelet] = %q, want %q", sha["kubelet"], want)
	}
	got := snapshot(t, dest)
	for _, name := range []string{"kubelet", "SHA256SUMS", "SHA512SUMS", "kubelet.sha256", "kubelet.sha512", StampFile} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing from %s", name, dest)
		}
	}
	if want := sha["kubelet"] + "  kubelet\n"; got["kubelet.sha256"] != want || got["SHA256SUMS"] != want {
		t.Errorf("kubelet.sha256 = %q, SHA256SUMS = %q; want %q (coreutils format)", got["kubelet.sha256"], got["SHA256SUMS"], want)
	}
	if fi, err := os.Stat(filepath.Join(dest, "kubelet")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("kubelet not executable: %v %v", fi.Mode(), err)
	}

	tests := []struct {
		name   string
		stamp  *Stamp
		tamper bool
		want   bool
	}{
		{"unchanged inputs", stamp("lock v1"), false, true},
		{"changed lock file", stamp("lock v2"), false, false},
		{"artifact changed on disk", stamp("lock v1"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.tamper {
				if err := os.WriteFile(filepath.Join(dest, "kubelet"), []byte("tampered"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if ok, err := Current(dest, tt.stamp); err != nil || ok != tt.want {
				t.Fatalf("Current = %v, %v; want %v", ok, err, tt.want)
			}
		})
	}
}

// TestFailedPublishKeepsEarlierArtifacts: a publish that fails (an artifact
// is missing) leaves the earlier folder byte for byte, and no staging
// folder behind.
func TestFailedPublishKeepsEarlierArtifacts(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "v1.12.4")
	if _, err := Publish(dest, []string{artifact(t, "kubelet", "good build")}, stamp("v1")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dest)
	missing := filepath.Join(t.TempDir(), "kubelet")
	_, err := Publish(dest, []string{artifact(t, "other", "x"), missing}, stamp("v2"))
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Publish with a missing artifact = %v, want an error naming %s", err, missing)
	}
	after := snapshot(t, dest)
	if len(after) != len(before) {
		t.Fatalf("files changed: before %v, after %v", keys(before), keys(after))
	}
	for n, b := range before {
		if after[n] != b {
			t.Errorf("%s changed by a failed publish", n)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(dest))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if ok, err := Current(dest, stamp("v1")); err != nil || !ok {
		t.Errorf("earlier artifacts no longer current: %v, %v", ok, err)
	}
}

func TestRepublishReplaces(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "v1.12.4")
	for i, content := range []string{"first", "second"} {
		if _, err := Publish(dest, []string{artifact(t, "kubelet", content)}, stamp(content)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if got := snapshot(t, dest)["kubelet"]; got != content {
			t.Fatalf("kubelet = %q after publish %d, want %q", got, i, content)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(dest))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("old folder left behind: %v", entries)
	}
}

func TestCheckExpected(t *testing.T) {
	const good = "46d92539c1337d6653f54cb7989f0842c114523cf158d3e46e82c4e3677aa680"
	const bad = "68c3b7d489fef19b9a5f5e451b9411fd109520d914c05237d0d5e3fb97f5b862"
	file := filepath.Join(t.TempDir(), "v1.12.4.CHECKSUMS")
	if err := os.WriteFile(file, []byte(good+"  kubelet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		got     map[string]string
		wantErr string
	}{
		{"reproduced", map[string]string{"kubelet": good}, ""},
		{"different binary", map[string]string{"kubelet": bad}, "built sha256 " + bad},
		{"not built", map[string]string{"runc": good}, "not built"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckExpected(file, tt.got)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), file) {
				t.Fatalf("CheckExpected = %v, want an error naming %s with %q", err, file, tt.wantErr)
			}
			if tt.name == "different binary" && !errors.Is(err, ErrNotReproduced) {
				t.Errorf("error is not ErrNotReproduced: %v", err)
			}
		})
	}
	if err := CheckExpected(filepath.Join(t.TempDir(), "none"), nil); err == nil {
		t.Error("CheckExpected with no committed file passes")
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

// TestCommittedChecksums: every committed CHECKSUMS file under vendor-pins/
// parses and names sha256 digests.
func TestCommittedChecksums(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "vendor-pins", "*", "*.CHECKSUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no committed CHECKSUMS file under vendor-pins/")
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			want, err := sums.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			for name, d := range want {
				if len(d) != 64 {
					t.Errorf("%s: %s has a %d-digit digest, want sha256 (64)", f, name, len(d))
				}
			}
			// Matching its own digests passes; anything else fails.
			if err := CheckExpected(f, want); err != nil {
				t.Errorf("CheckExpected(%s, its own digests) = %v", f, err)
			}
		})
	}
}

// TestStampDiff names exactly the inputs that changed, appeared or went.
func TestStampDiff(t *testing.T) {
	var old, cur Stamp
	old.Add("lock", []byte("a"))
	old.Add("patch", []byte("p"))
	old.Add("gone", []byte("g"))
	cur.Add("lock", []byte("b"))
	cur.Add("patch", []byte("p"))
	cur.Add("new", []byte("n"))
	if got, want := strings.Join(cur.Diff(old.Text()), ","), "gone,lock,new"; got != want {
		t.Errorf("Diff = %q, want %q", got, want)
	}
	if d := cur.Diff(cur.Text()); len(d) != 0 {
		t.Errorf("Diff of the same stamp = %q, want none", d)
	}
}
