package verifybuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadLock(t *testing.T) {
	l, err := LoadLock(filepath.Join("..", "..", LockFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.Toolchain.Version, "v0.0.1-go") {
		t.Errorf("toolchain %+v", l.Toolchain)
	}
	for name, body := range map[string]string{
		"no h1":         "toolchain:\n  path: golang.org/toolchain\n  version: v0.0.1-go1.26.11.linux-amd64\n",
		"other module":  "toolchain:\n  path: example.com/go\n  version: v1\n  h1: \"h1:x\"\n",
		"unknown field": "toolchain:\n  path: golang.org/toolchain\n  version: v1\n  h1: \"h1:x\"\nextra: 1\n",
	} {
		p := filepath.Join(t.TempDir(), "lock.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLock(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestArgs: the reproducibility settings and the stamps are on the command line.
func TestArgs(t *testing.T) {
	s := Spec{Out: "/x/verify", Stamp: Stamp{Version: "v0.0.0-20260101000000-abcdefabcdef", Commit: "abc", Bundle: "nokmem-a-b+c"}}
	args := strings.Join(s.Args(), " ")
	for _, want := range []string{"build -trimpath -buildvcs=false -mod=readonly", "-ldflags=-buildid= -X main.version=v0.0.0-20260101000000-abcdefabcdef -X main.commit=abc -X main.fromBundle=nokmem-a-b+c", "-o /x/verify ./verify"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if env := strings.Join(Env(), "\n"); !strings.Contains(env, "\nCGO_ENABLED=0\n") || !strings.HasSuffix(env, "GOFLAGS=") {
		t.Errorf("env lacks the fixed settings")
	}
}

// TestSourceStampAndInputs runs on this repository: verify's source files,
// the commit that last touched them, and the module graph with go.sum h1s.
func TestSourceStampAndInputs(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "..")
	ctx := context.Background()
	files, err := SourceFiles(ctx, goBin, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go.mod", "go.sum", "verify/main.go", "verify/install/install.go", "internal/bundle/bundle.go"} {
		if !slices.Contains(files, want) {
			t.Errorf("source files lack %s", want)
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "magefiles/") {
			t.Errorf("%s is not a source of verify", f)
		}
	}
	st, err := SourceStamp(ctx, root, files, "nokmem-x")
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.TrimSuffix(st.Commit, "-dirty")) != 40 || st.CommitTime.Before(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		!strings.HasPrefix(st.Version, "v0.0.0-"+st.CommitTime.Format("20060102150405")+"-"+st.Commit[:12]) {
		t.Errorf("stamp %+v", st)
	}
	mods, err := Modules(ctx, goBin, root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range mods {
		paths = append(paths, m.Path)
		if !strings.HasPrefix(m.H1, "h1:") {
			t.Errorf("%s without h1", m)
		}
	}
	for _, want := range []string{"github.com/spf13/cobra", "aead.dev/minisign"} {
		if !slices.Contains(paths, want) {
			t.Errorf("modules %v lack %s", paths, want)
		}
	}
	if slices.Contains(paths, "github.com/magefile/mage") {
		t.Error("mage (a tool, not linked into verify) listed")
	}
}
