package gobuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
)

func TestExpandX(t *testing.T) {
	v := Vars{Version: "v1.12.4", Commit: "f49fa0", CommitTime: "2018-12-13T04:05:24Z", Marker: "nokmem.abc"}
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"p.gitVersion={{.Version}}+{{.Marker}}", "p.gitVersion=v1.12.4+nokmem.abc", false},
		{"p.buildDate={{.CommitTime}}", "p.buildDate=2018-12-13T04:05:24Z", false},
		{"p.gitMajor=1", "p.gitMajor=1", false},
		{"p.x={{.Clock}}", "", true},
		{"no-equals-sign", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ExpandX([]string{tt.in}, v)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ExpandX(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got[0] != tt.want {
				t.Fatalf("ExpandX(%q) = %v, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{
			name: "static cgo",
			spec: Spec{ImportPath: "k8s.io/kubernetes", OutDir: "/out", CGO: true, Static: true, X: []string{"a.b=c"}},
			want: "build -trimpath -buildvcs=false -tags netgo,osusergo -ldflags -buildid= -extldflags -static -X a.b=c -o /out/kubelet k8s.io/kubernetes/cmd/kubelet",
		},
		{
			name: "dynamic with tags",
			spec: Spec{ImportPath: "k8s.io/kubernetes", OutDir: "/out", Tags: []string{"seccomp"}},
			want: "build -trimpath -buildvcs=false -tags seccomp -ldflags -buildid= -o /out/kubelet k8s.io/kubernetes/cmd/kubelet",
		},
		{
			name: "static does not repeat a tag",
			spec: Spec{ImportPath: "k8s.io/kubernetes", OutDir: "/out", Static: true, Tags: []string{"netgo", "seccomp"}},
			want: "build -trimpath -buildvcs=false -tags netgo,seccomp,osusergo -ldflags -buildid= -extldflags -static -o /out/kubelet k8s.io/kubernetes/cmd/kubelet",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(tt.spec.Args(pins.BuildPackage{Package: "cmd/kubelet", Output: "kubelet"}), " ")
			if got != tt.want {
				t.Errorf("Args =\n %s\nwant\n %s", got, tt.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOROOT", "/somewhere/else")
	t.Setenv("GO111MODULE", "on")
	t.Setenv("GOCACHE", "/inherited") // as under CI, which points GOCACHE at its reused cache
	env := Env("/gp", true, "GOCACHE=/c")
	got := map[string][]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = append(got[k], v)
	}
	want := map[string]string{"GOPATH": "/gp", "GO111MODULE": "off", "GOFLAGS": "", "GOTOOLCHAIN": "local", "CGO_ENABLED": "1", "GOCACHE": "/c"}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("%s = %q, want exactly [%q]", k, got[k], v)
		}
	}
	if _, ok := got["GOROOT"]; ok {
		t.Errorf("GOROOT is passed on: %q", got["GOROOT"])
	}
}

// writeGOPATH creates a GOPATH tree with a cgo main package that prints a
// stamped version.
func writeGOPATH(t *testing.T) string {
	t.Helper()
	gopath := t.TempDir()
	dir := filepath.Join(gopath, "src", "example.com", "hello", "cmd", "hello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := `package main

// #include <stdlib.h>
import "C"

import "fmt"

var gitVersion = "unset"

func main() {
	C.free(C.malloc(1))
	fmt.Println("hello " + gitVersion)
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return gopath
}

// TestBuild builds a small cgo program in GOPATH mode with the go command
// on PATH, static and stamped, twice, and checks the output and that the
// two builds are byte-identical.
func TestBuild(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc for cgo")
	}
	gopath := writeGOPATH(t)
	ctx := context.Background()
	var outs [2][]byte
	var s Spec
	for i := range outs {
		out := t.TempDir()
		var log strings.Builder
		s = Spec{
			Go: goBin, GOPATH: gopath, ImportPath: "example.com/hello",
			Packages: []pins.BuildPackage{{Package: "cmd/hello", Output: "hello"}},
			OutDir:   out, CGO: true, Static: true,
			X:        []string{"main.gitVersion=v1.0.0+nokmem.test"},
			Env:      []string{"GOCACHE=" + t.TempDir()},
			Log:      &log,
			Progress: &Progress{},
		}
		if err := Build(ctx, s); err != nil {
			t.Fatal(err)
		}
		// Cold cache: everything but nothing is compiled, and the -v
		// lines name exactly the packages `go build -n` said it would compile.
		snap := s.Progress.Snapshot()
		if snap.Total < 10 || snap.Done != snap.Total || snap.Cached > 1 || len(s.Progress.compiled) != s.Progress.count.Compile {
			t.Errorf("cold build progress %+v, %d compiled, %d to compile; want all done, none cached", snap, len(s.Progress.compiled), s.Progress.count.Compile)
		}
		if strings.Contains("\n"+log.String(), "\nruntime\n") {
			t.Errorf("the -v package lines reached the build log: %q", log.String())
		}
		bin := filepath.Join(out, "hello")
		got, err := exec.Command(bin).CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != "hello v1.0.0+nokmem.test" {
			t.Fatalf("%s printed %q, %v", bin, got, err)
		}
		v, err := GoVersion(ctx, goBin, bin)
		if err != nil {
			t.Fatal(err)
		}
		if v != runtime.Version() {
			t.Errorf("GoVersion = %q, want %q (test binary's)", v, runtime.Version())
		}
		if err := CheckGoVersion(ctx, goBin, bin, "go1.0.0"); err == nil || !strings.Contains(err.Error(), "pinned go1.0.0") {
			t.Errorf("CheckGoVersion against go1.0.0 = %v, want a mismatch error", err)
		}
		if outs[i], err = os.ReadFile(bin); err != nil {
			t.Fatal(err)
		}
	}
	if string(outs[0]) != string(outs[1]) {
		t.Errorf("two builds with separate caches differ: not reproducible")
	}
	// Warm cache: every package comes from the cache.
	s.OutDir, s.Progress = t.TempDir(), &Progress{}
	if err := Build(ctx, s); err != nil {
		t.Fatal(err)
	}
	if snap := s.Progress.Snapshot(); snap.Total < 10 || snap.Cached != snap.Total || snap.Done != snap.Total {
		t.Errorf("warm build progress %+v, want every package from the cache", snap)
	}
	if got, err := os.ReadFile(filepath.Join(s.OutDir, "hello")); err != nil || string(got) != string(outs[0]) {
		t.Errorf("the warm build (with -v and the counting) differs from the cold ones: %v", err)
	}
}

// TestProgressWriter feeds a fake `go build -v` output through the
// counter: package lines (split across writes, repeated) count once and are
// dropped, compiler and linker lines go on, cached packages count as done.
func TestProgressWriter(t *testing.T) {
	p := &Progress{}
	if snap := p.Snapshot(); snap.Started || snap.String() != "counting packages" {
		t.Errorf("before Start: %+v %q", snap, snap)
	}
	p.Start("cmd/kubelet", Count{Packages: []string{"runtime", "example.com/a", "example.com/b", "example.com/cmd/kubelet", "fmt"}, Compile: 3})
	var out strings.Builder
	w := p.Writer(&out)
	steps := []struct {
		write string
		done  int
	}{
		{"", 2},
		{"example.com/", 2},
		{"a\n# example.com/cmd/kubelet\n", 3},
		{"/usr/bin/ld: warning: Using 'dlopen' in statically linked applications\n", 3},
		{"example.com/a\nexample.com/notabuildpackage\n", 3},
		{"example.com/b\nexample.com/cmd/kubelet", 4},
	}
	for _, st := range steps {
		if _, err := w.Write([]byte(st.write)); err != nil {
			t.Fatal(err)
		}
		if snap := p.Snapshot(); snap.Done != st.done || snap.Total != 5 || snap.Cached != 2 {
			t.Errorf("after %q: %+v, want %d/5 done, 2 from cache", st.write, snap, st.done)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	snap := p.Snapshot()
	if got, want := snap.String(), "5/5 packages (2 from cache)"; got != want || snap.Package != "cmd/kubelet" {
		t.Errorf("at the end: %q (%s), want %q", got, snap.Package, want)
	}
	if want := "# example.com/cmd/kubelet\n/usr/bin/ld: warning: Using 'dlopen' in statically linked applications\nexample.com/notabuildpackage\n"; out.String() != want {
		t.Errorf("passed on %q, want %q", out.String(), want)
	}
}

func TestListFlags(t *testing.T) {
	got := listFlags([]string{"-trimpath", "-buildvcs=false", "-tags", "netgo,nokmem", "-ldflags", "-buildid= -X a=b"})
	if strings.Join(got, " ") != "-trimpath -tags netgo,nokmem" {
		t.Errorf("listFlags = %q", got)
	}
}

func TestBuildFailureNamesPackage(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	s := Spec{Go: goBin, GOPATH: t.TempDir(), ImportPath: "example.com/none",
		Packages: []pins.BuildPackage{{Package: "cmd/missing", Output: "x"}}, OutDir: t.TempDir(), Log: &strings.Builder{}}
	err = Build(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "example.com/none/cmd/missing") {
		t.Fatalf("Build = %v, want an error naming the package", err)
	}
}
