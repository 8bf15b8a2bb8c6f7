package sums

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCoreutilsReadsOurFiles checks the format with sha256sum/sha512sum -c.
func TestCoreutilsReadsOurFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a": "1", "b": "2"})
	sha, err := Write(dir, []string{"b", "a"}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if sha["a"] != "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b" {
		t.Errorf("sha256 of a = %s", sha["a"])
	}
	for _, tool := range []struct{ cmd, file string }{
		{"sha256sum", "SHA256SUMS"}, {"sha512sum", "SHA512SUMS"}, {"sha256sum", "a.sha256"}, {"sha512sum", "a.sha512"},
	} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			t.Skipf("%s not installed", tool.cmd)
		}
		cmd := exec.Command(tool.cmd, "--strict", "-c", tool.file)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -c %s: %v\n%s", tool.cmd, tool.file, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b.sha256")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b.sha256 written although b was not asked for: %v", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(dir string) error
		wantErr error
	}{
		{"untouched", func(string) error { return nil }, nil},
		{"file changed", func(dir string) error { return os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644) }, ErrMismatch},
		{"file missing", func(dir string) error { return os.Remove(filepath.Join(dir, "b")) }, os.ErrNotExist},
		{"beside file wrong", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "a.sha512"), []byte("00  a\n"), 0o644)
		}, ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"a": "1", "b": "2"})
			if _, err := Write(dir, []string{"a", "b"}, []string{"a"}); err != nil {
				t.Fatal(err)
			}
			if err := tt.tamper(dir); err != nil {
				t.Fatal(err)
			}
			names, err := Check(dir)
			if tt.wantErr == nil {
				if err != nil || len(names) != 2 {
					t.Fatalf("Check = %v, %v; want [a b], nil", names, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Check: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, content string }{
		{"empty", ""},
		{"no name", "abcd\n"},
		{"not hex", "xyz  a\n"},
		{"path", "ab  ../etc/passwd\n"},
		{"twice", "ab  a\nab  a\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "SUMS")
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(p); err == nil {
				t.Fatalf("Parse accepted %q", tt.content)
			}
		})
	}
}
