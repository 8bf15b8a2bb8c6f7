package elfcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"2.17", "2.17", 0},
		{"2.9", "2.17", -1},
		{"2.34", "2.17", 1},
		{"2.2.5", "2.17", -1},
		{"3", "2.17", 1},
		{"2.17.1", "2.17", 1},
	}
	for _, tt := range tests {
		got, err := compare(tt.a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("compare(%s, %s) = %d, %v; want %d", tt.a, tt.b, got, err, tt.want)
		}
	}
	if _, err := compare("2.x", "2.17"); err == nil {
		t.Error("compare accepts a non-numeric version")
	}
}

// buildHello builds a cgo hello program with the go command on PATH.
func buildHello(t *testing.T, static bool) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc for cgo")
	}
	dir := t.TempDir()
	src := "package main\n\n// #include <stdio.h>\n// static void hello(void) { puts(\"hello\"); }\nimport \"C\"\n\nfunc main() { C.hello() }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello")
	args := []string{"build", "-o", out}
	if static {
		args = append(args, "-ldflags", "-extldflags -static")
	}
	cmd := exec.Command(goBin, append(args, "main.go")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GO111MODULE=off", "GOFLAGS=", "GOCACHE="+filepath.Join(dir, "cache"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello (static=%v): %v\n%s", static, err, b)
	}
	return out
}

func TestCheck(t *testing.T) {
	static := buildHello(t, true)
	dynamic := buildHello(t, false)
	tests := []struct {
		name       string
		bin        string
		max        string
		wantStatic bool
		wantErr    string
	}{
		{"static cgo binary passes", static, CentOS7GLIBC, true, ""},
		// This machine's glibc (Debian 12: 2.36) puts __libc_start_main@GLIBC_2.34
		// into every dynamic binary, so a dynamic build fails the CentOS 7 check...
		{"dynamic cgo binary fails against 2.17", dynamic, CentOS7GLIBC, false, "GLIBC_2.34"},
		// ...and passes against a glibc as new as the build machine's.
		{"dynamic cgo binary passes against 99.0", dynamic, "99.0", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Check(tt.bin, tt.max)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.bin) {
					t.Fatalf("Check = %v, want an error naming %s and %s", err, tt.bin, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if r.Static() != tt.wantStatic {
				t.Errorf("Static = %v (interp %q, needed %v), want %v", r.Static(), r.Interp, r.Needed, tt.wantStatic)
			}
			if !tt.wantStatic && (r.Interp == "" || len(r.Needed) == 0 || len(r.GLIBC) == 0) {
				t.Errorf("dynamic binary report incomplete: %+v", r)
			}
		})
	}
}

func TestCheckNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(p, CentOS7GLIBC); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Check(non-ELF) = %v, want an error naming the file", err)
	}
}
