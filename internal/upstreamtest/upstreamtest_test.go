package upstreamtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// writeTree creates a GOPATH project with one package per case.
func writeTree(t *testing.T, files map[string]string) (gopath, root string) {
	t.Helper()
	gopath = t.TempDir()
	root = filepath.Join(gopath, "src", "example.com", "proj")
	for name, src := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return gopath, root
}

// TestRunReportsRed: a failing test, a crash at init (as the ugorji codec
// panics on Go >= 1.22) and a runtime fatal error (as reflect2's map
// iteration on Go >= 1.18) each make their package red, and the error names
// package and test; a good package stays green.
func TestRunReportsRed(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	gopath, root := writeTree(t, map[string]string{
		"good/good_test.go":   "package good\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {}\n",
		"bad/bad_test.go":     "package bad\n\nimport \"testing\"\n\nfunc TestOK(t *testing.T) {}\n\nfunc TestBroken(t *testing.T) { t.Fatal(\"broken\") }\n",
		"initpanic/p.go":      "package initpanic\n\nimport \"encoding/base64\"\n\nvar Enc = base64.NewEncoding(\"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789__\")\n",
		"initpanic/p_test.go": "package initpanic\n\nimport \"testing\"\n\nfunc TestEnc(t *testing.T) { _ = Enc }\n",
		"fatal/f_test.go":     "package fatal\n\nimport (\n\t\"sync\"\n\t\"testing\"\n)\n\nfunc TestFatal(t *testing.T) {\n\tvar mu sync.Mutex\n\tmu.Unlock() // fatal error: sync: unlock of unlocked mutex\n}\n",
		"nobuild/n_test.go":   "package nobuild\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { undefined() }\n",
	})
	tests := []struct {
		pkg        string
		wantAction string
		wantInErr  string
	}{
		{"./good", "pass", ""},
		{"./bad", "fail", "example.com/proj/bad (TestBroken)"},
		{"./initpanic", "fail", "example.com/proj/initpanic"},
		{"./fatal", "fail", "example.com/proj/fatal"},
		{"./nobuild", "fail", "example.com/proj/nobuild"},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			pkgs, err := Run(context.Background(), Spec{Go: goBin, GOPATH: gopath, Root: root, Packages: []string{tt.pkg},
				Env: []string{"GOCACHE=" + filepath.Join(gopath, "cache")}})
			if tt.wantInErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("Run error = %v, want ErrFailed naming %q", err, tt.wantInErr)
			}
			if len(pkgs) != 1 || pkgs[0].Action != tt.wantAction {
				t.Fatalf("packages = %+v, want one with action %s", pkgs, tt.wantAction)
			}
		})
	}
}

// kubeletTree returns the lock, the assembled tree's GOPATH and root and
// the pinned go, or skips (fails under NOKMEM_STRICT=1) when the tree has not
// been assembled. NOKMEM_KUBE_GOPATH points the tests at another tree.
func kubeletTree(t *testing.T) (*pins.Lock, string, string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("compiles a large part of the kubelet")
	}
	const repoRoot = "../.."
	lock, err := pins.Load(filepath.Join(repoRoot, "vendor-pins"), "kubernetes", "v1.12.4")
	if err != nil {
		t.Fatal(err)
	}
	gopath := os.Getenv("NOKMEM_KUBE_GOPATH")
	if gopath == "" {
		gopath = srctree.Paths(lock, srctree.DefaultBuildDir(repoRoot, lock)).GOPATH
	}
	if gopath, err = filepath.Abs(gopath); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(gopath, "src", filepath.FromSlash(lock.Source.ImportPath))
	testenv.RequireFile(t, "assembled kubelet tree (go tool mage kubelet:tree v1.12.4)", filepath.Join(root, "pkg", "kubelet", "cm"))
	goBin, err := toolchain.Go(context.Background(), &modfetch.Fetcher{}, lock.Toolchain)
	if err != nil {
		t.Fatal(err)
	}
	return lock, gopath, root, goBin
}

// TestKubeletSubset runs the kubelet subset, with the compatibility probe,
// on the assembled tree with the pinned toolchain: all green.
func TestKubeletSubset(t *testing.T) {
	lock, gopath, root, goBin := kubeletTree(t)
	pkgs, err := Run(context.Background(), Spec{Go: goBin, GOPATH: gopath, Root: root, Packages: KubeletSubset,
		Probes: KubeletProbes, CGO: lock.Build.CGO, Tags: []string{"netgo", "osusergo"}})
	for _, p := range pkgs {
		t.Logf("%-4s %s: %d passed, %d failed, %d skipped", p.Action, p.ImportPath, p.Passed, len(p.Failed), p.Skipped)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != len(KubeletSubset) {
		t.Errorf("ran %d packages, want %d", len(pkgs), len(KubeletSubset))
	}
}

// oldReflect2 is the reflect2 revision upstream's Godeps.json pins, which
// the lock overrides with v1.0.2.
var oldReflect2 = pins.Module{
	Path:    "github.com/modern-go/reflect2",
	Version: "v0.0.0-20180320133207-05fbef0ca5da",
	H1:      "h1:ZQGIPjr1iTtUPXZFk8WShqb5G+Qg65VHFLtSvmHh+Mw=",
}

// TestKubeletSubsetCatchesOldReflect2 shows that the subset turns red on a
// toolchain incompatibility: with upstream's own reflect2 pin put back (by
// overlay), the probe's map encoding crashes under the pinned Go.
func TestKubeletSubsetCatchesOldReflect2(t *testing.T) {
	lock, gopath, root, goBin := kubeletTree(t)
	got, err := (&modfetch.Fetcher{}).Fetch(context.Background(), []pins.Module{oldReflect2})
	if err != nil {
		t.Fatal(err)
	}
	vendored := filepath.Join(root, "vendor", "github.com", "modern-go", "reflect2")
	replace := map[string]string{}
	for dir, use := range map[string]bool{vendored: false, got[0].Dir: true} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || !(strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), ".s")) {
				continue
			}
			if use {
				replace[filepath.Join(vendored, e.Name())] = filepath.Join(dir, e.Name())
			} else if _, ok := replace[filepath.Join(vendored, e.Name())]; !ok {
				replace[filepath.Join(vendored, e.Name())] = ""
			}
		}
	}
	_, err = Run(context.Background(), Spec{Go: goBin, GOPATH: gopath, Root: root,
		Packages: []string{"./vendor/k8s.io/apimachinery/pkg/runtime/serializer/json"},
		Probes:   KubeletProbes, Replace: replace, CGO: lock.Build.CGO, Tags: []string{"netgo", "osusergo"}})
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "serializer/json") {
		t.Fatalf("Run with reflect2 %s = %v, want ErrFailed naming the JSON serializer", oldReflect2.Version, err)
	}
	t.Logf("red as expected: %v", err)
}

// VersionsEnv lists go.mod-era kubelet versions (space-separated) whose
// assembled trees (go tool mage kubelet:tree <version>) get the
// upstream subset.
const VersionsEnv = "NOKMEM_UPSTREAMTEST_VERSIONS"

// goModTree returns a go.mod-era kubelet's lock, tree and pinned go, or
// skips when VersionsEnv does not name versions.
func goModTree(t *testing.T, v string) (*pins.Lock, srctree.Tree, string) {
	t.Helper()
	const repoRoot = "../.."
	lock, err := pins.Load(filepath.Join(repoRoot, "vendor-pins"), "kubernetes", v)
	if err != nil {
		t.Fatal(err)
	}
	if lock.Source.Kind != pins.SourceGoMod {
		t.Fatalf("kubernetes %s is not a go.mod-era lock", v)
	}
	tree := srctree.Paths(lock, srctree.DefaultBuildDir(repoRoot, lock))
	if tree.GOPATH, err = filepath.Abs(tree.GOPATH); err != nil {
		t.Fatal(err)
	}
	tree.Root = filepath.Join(tree.GOPATH, "src", filepath.FromSlash(lock.Source.ImportPath))
	testenv.RequireFile(t, "assembled kubelet "+v+" tree (go tool mage kubelet:tree "+v+")", filepath.Join(tree.Root, "go.sum"))
	goBin, err := toolchain.Go(context.Background(), &modfetch.Fetcher{}, lock.Toolchain)
	if err != nil {
		t.Fatal(err)
	}
	return lock, tree, goBin
}

// goModSpec is the subset's spec on a go.mod tree: the JSON serializer's
// module (apimachinery) is a writable copy of its verified zip, so that
// the probe can be placed into it (go refuses overlays in the module
// cache); modFile is the go.mod that points at the copy.
func goModSpec(t *testing.T, lock *pins.Lock, tree srctree.Tree, goBin string) (Spec, string) {
	t.Helper()
	const jsonPkg = "k8s.io/apimachinery/pkg/runtime/serializer/json"
	pkgDir, modFile, err := srctree.WritableModule(lock, tree, jsonPkg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	probes := []Probe{{Dir: pkgDir, Name: KubeletProbes[0].Name, Source: KubeletProbes[0].Source}}
	return Spec{Go: goBin, GOPATH: tree.GOPATH, Root: tree.Root, Packages: GoModSubset, Probes: probes,
		CGO: lock.Build.CGO, Tags: []string{"netgo", "osusergo"}, Env: srctree.ModEnv(lock, tree), Args: append([]string{"-modfile=" + modFile}, GoModSkip...)}, modFile
}

// TestGoModSubset runs the subset with the probe on each go.mod-era tree
// named in VersionsEnv (all green), then puts upstream's reflect2 v1.0.1
// back in place of the lock's override and checks that it turns red.
func TestGoModSubset(t *testing.T) {
	versions := strings.Fields(os.Getenv(VersionsEnv))
	if len(versions) == 0 {
		t.Skip(VersionsEnv + " is not set (e.g. v1.20.15): no go.mod-era tree to test")
	}
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			lock, tree, goBin := goModTree(t, v)
			spec, modFile := goModSpec(t, lock, tree, goBin)
			pkgs, err := Run(context.Background(), spec)
			for _, p := range pkgs {
				t.Logf("%-4s %s: %d passed, %d failed, %d skipped", p.Action, p.ImportPath, p.Passed, len(p.Failed), p.Skipped)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pkgs) != len(GoModSubset) {
				t.Errorf("ran %d packages, want %d", len(pkgs), len(GoModSubset))
			}

			// Without the override: reflect2 v1.0.1 (upstream's pin),
			// fetched and checked against its go.sum h1.
			old := pins.Module{Path: "github.com/modern-go/reflect2", Version: "v1.0.1", H1: "h1:9f412s+6RmYXLWZSEzVVgPGK7C2PphHj5RJrvfx9AWI="}
			if _, err := (&modfetch.Fetcher{}).Fetch(context.Background(), []pins.Module{old}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(modFile)
			if err != nil {
				t.Fatal(err)
			}
			edited := strings.Replace(string(data), "github.com/modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.2", "github.com/modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.1", 1)
			if edited == string(data) {
				t.Fatalf("%s has no reflect2 v1.0.2 replace to undo", modFile)
			}
			if err := os.WriteFile(modFile, []byte(edited), 0o644); err != nil {
				t.Fatal(err)
			}
			sumFile := strings.TrimSuffix(modFile, ".mod") + ".sum"
			f, err := os.OpenFile(sumFile, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteString(old.Path + " " + old.Version + " " + old.H1 + "\n" + old.Path + " " + old.Version + "/go.mod h1:bx2lNnkwVCuqBIxFjflWJWanXIb3RllmbCylyMrvgv0=\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			spec.Packages = []string{"k8s.io/apimachinery/pkg/runtime/serializer/json"}
			_, err = Run(context.Background(), spec)
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "serializer/json") {
				t.Fatalf("Run with reflect2 %s = %v, want ErrFailed naming the JSON serializer", old.Version, err)
			}
			t.Logf("red as expected without the override: %v", err)
		})
	}
}
