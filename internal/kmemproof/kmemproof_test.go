package kmemproof

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// TreeEnv overrides where the tests look for the assembled kubelet tree
// (its GOPATH); the default is the pipeline's _build/kubernetes/v1.12.4/gopath.
const TreeEnv = "NOKMEM_KUBE_GOPATH"

const repoRoot = "../.."

// kubeletSpec returns the proof spec for the assembled kubelet v1.12.4 tree,
// or skips (fails under NOKMEM_STRICT=1) when the tree has not been assembled.
func kubeletSpec(t *testing.T) Spec {
	t.Helper()
	lock, err := pins.Load(filepath.Join(repoRoot, "vendor-pins"), "kubernetes", "v1.12.4")
	if err != nil {
		t.Fatal(err)
	}
	gopath := os.Getenv(TreeEnv)
	if gopath == "" {
		gopath = srctree.Paths(lock, srctree.DefaultBuildDir(repoRoot, lock)).GOPATH
	}
	gopath, err = filepath.Abs(gopath)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(gopath, "src", filepath.FromSlash(lock.Source.ImportPath))
	testenv.RequireFile(t, "assembled kubelet tree (go tool mage kubelet:tree v1.12.4, or "+TreeEnv+")", filepath.Join(root, FSPackage, "memory.go"))
	set, err := patchset.Load(filepath.Join(repoRoot, "patches", "kubernetes", "v1.12.4"))
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := toolchain.Go(context.Background(), &modfetch.Fetcher{}, lock.Toolchain)
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Go: goBin, GOPATH: gopath, Root: root, Patches: set}
}

// TestKmemProof is the behavioural proof: libcontainer's own Apply path from
// the assembled tree, run against a simulated 3.10 memory hierarchy, writes
// memory.kmem.limit_in_bytes for a kubelet-style cgroup (memory limit only)
// when the tree is unpatched, and never when it is patched. An explicit
// kernel memory limit still activates kmem in both.
func TestKmemProof(t *testing.T) {
	testenv.RequireCgroupV1Memory(t) // libcontainer looks up the host's memory mount
	spec := kubeletSpec(t)
	const (
		limitOnly   = "nokmem-proof/limit-only"
		reservation = "nokmem-proof/reservation"
		explicit    = "nokmem-proof/explicit-kmem"
	)
	tests := []struct {
		name       string
		patched    bool
		wantPass   bool
		wantFailed []string
		wantKmem   []string // cgroups whose memory.kmem.limit_in_bytes gets written
	}{
		{
			name:       "unpatched tree activates kmem on every new cgroup",
			patched:    false,
			wantPass:   false,
			wantFailed: []string{"memory_limit_only", "memory_reservation_and_swap"},
			wantKmem:   []string{explicit, limitOnly, reservation},
		},
		{
			name:     "patched tree never writes the kmem limit unless asked",
			patched:  true,
			wantPass: true,
			wantKmem: []string{explicit},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
			var mu sync.Mutex
			written := map[string][]string{}
			sim.SetHook(func(op memcgsim.Op) error {
				if op.Kind == memcgsim.OpWrite && op.File == "memory.kmem.limit_in_bytes" {
					mu.Lock()
					written[op.Cgroup] = append(written[op.Cgroup], strings.TrimSpace(op.Data))
					mu.Unlock()
				}
				return nil
			})
			res, err := Run(context.Background(), spec, tt.patched, filepath.Dir(m.Memory))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("proof output (%s tree):\n%s", map[bool]string{true: "patched", false: "unpatched"}[tt.patched], res.Output)
			if res.Passed != tt.wantPass {
				t.Errorf("proof passed = %v, want %v", res.Passed, tt.wantPass)
			}
			if got := res.Failed(); !slices.Equal(got, tt.wantFailed) {
				t.Errorf("failed subtests = %v, want %v", got, tt.wantFailed)
			}
			mu.Lock()
			defer mu.Unlock()
			var got []string
			for cg := range written {
				got = append(got, cg)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.wantKmem) {
				t.Errorf("memory.kmem.limit_in_bytes written in %v (values %v), want only in %v", got, written, tt.wantKmem)
			}
			for _, cg := range []string{limitOnly, reservation} {
				active, err := sim.KmemActive(cg)
				if err != nil {
					t.Fatal(err)
				}
				if active == tt.patched {
					t.Errorf("%s: kmem active = %v on the %v tree", cg, active, map[bool]string{true: "patched", false: "unpatched"}[tt.patched])
				}
			}
		})
	}
}

// TestOverlay checks the overlay on a small tree: the proof file is always
// added, and the patched files are replaced only when the tree is in the
// other state.
func TestOverlay(t *testing.T) {
	root := t.TempDir()
	fsDir := filepath.Join(root, FSPackage)
	if err := os.MkdirAll(fsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fsDir, "memory.go"), []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	patches := t.TempDir()
	patch := `Subject: s
Why: w
Upstream: u
Upstream-Difference: d
Drop-When: never

diff --git a/` + FSPackage + `/memory.go b/` + FSPackage + `/memory.go
--- a/` + FSPackage + `/memory.go
+++ b/` + FSPackage + `/memory.go
@@ -1,3 +1,3 @@
 a
-b
+B
 c
`
	if err := os.WriteFile(filepath.Join(patches, "0001-x.patch"), []byte(patch), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := patchset.Load(patches)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		patched bool
		want    string // content the overlay gives memory.go; "" if not replaced
	}{
		{"unpatched tree shown unpatched", false, ""},
		{"unpatched tree shown patched", true, "a\nB\nc\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Overlay(root, set, tt.patched, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var ov struct{ Replace map[string]string }
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &ov); err != nil {
				t.Fatal(err)
			}
			if src, ok := ov.Replace[filepath.Join(fsDir, proofFile)]; !ok || src == "" {
				t.Errorf("overlay does not add the proof file: %v", ov.Replace)
			}
			src, ok := ov.Replace[filepath.Join(fsDir, "memory.go")]
			if tt.want == "" {
				if ok {
					t.Errorf("memory.go replaced by %s, want the tree's own", src)
				}
				return
			}
			got, err := os.ReadFile(src)
			if err != nil || string(got) != tt.want {
				t.Errorf("memory.go overlay = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	in := `{"Action":"run","Test":"TestNokmemProof"}
{"Action":"output","Test":"TestNokmemProof/memory_limit_only","Output":"    kmem active = true\n"}
{"Action":"fail","Test":"TestNokmemProof/memory_limit_only"}
{"Action":"pass","Test":"TestNokmemProof/explicit_kernel_memory_limit"}
{"Action":"fail","Test":"TestNokmemProof"}
# github.com/x [build failed]
`
	res, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"memory_limit_only": "fail", "explicit_kernel_memory_limit": "pass"}
	if len(res.Subtests) != len(want) {
		t.Fatalf("subtests = %v, want %v", res.Subtests, want)
	}
	for k, v := range want {
		if res.Subtests[k] != v {
			t.Errorf("subtest %s = %q, want %q", k, res.Subtests[k], v)
		}
	}
	if !strings.Contains(res.Output, "kmem active = true") || !strings.Contains(res.Output, "build failed") {
		t.Errorf("plain output lost lines: %q", res.Output)
	}
}

// runcOwnFS is libcontainer's cgroupfs package in runc's own tree.
const runcOwnFS = "libcontainer/cgroups/fs"

// runcFSImport is the import path of libcontainer's cgroupfs package.
const runcFSImport = "github.com/opencontainers/runc/libcontainer/cgroups/fs"

// VersionsEnv lists further kubelet versions (space- or comma-separated;
// runc@<version> for a runc tree, e.g. runc@v1.0.0-rc92) whose
// assembled trees (go tool mage kubelet:tree <version>) get the
// proof, each by its lock's fix kind: red without the fix, green with it.
const VersionsEnv = "NOKMEM_KMEMPROOF_VERSIONS"

func TestKmemProofVersions(t *testing.T) {
	// Space- or comma-separated (mage test joins them with commas).
	versions := strings.FieldsFunc(os.Getenv(VersionsEnv), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(versions) == 0 {
		t.Skip(VersionsEnv + " is not set (e.g. v1.14.10): no further versions to prove")
	}
	testenv.RequireCgroupV1Memory(t)
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			project := "kubernetes"
			if rv, ok := strings.CutPrefix(v, "runc@"); ok {
				project, v = "runc", rv
			}
			lock, err := pins.Load(filepath.Join(repoRoot, "vendor-pins"), project, v)
			if err != nil {
				t.Fatal(err)
			}
			tree := srctree.Paths(lock, srctree.DefaultBuildDir(repoRoot, lock))
			gopath, err := filepath.Abs(tree.GOPATH)
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(gopath, "src", filepath.FromSlash(lock.Source.ImportPath))
			fsPackage := FSPackage
			if project == "runc" {
				fsPackage = runcOwnFS // runc's own libcontainer
			}
			memoryGo, err := srctree.File(lock, srctree.Tree{GOPATH: gopath, Root: root}, fsPackage+"/memory.go")
			if err != nil {
				t.Fatal(err)
			}
			testenv.RequireFile(t, "assembled "+project+" "+v+" tree (go tool mage kubelet:tree "+v+", runc:build "+v+")", memoryGo)
			set := &patchset.Set{} // a buildtag version may have no patches
			if dir := filepath.Join(repoRoot, "patches", project, v); lock.Fix.Kind == pins.FixPatch || exists(dir) {
				if set, err = patchset.Load(dir); err != nil {
					t.Fatal(err)
				}
			}
			goBin, err := toolchain.Go(context.Background(), &modfetch.Fetcher{}, lock.Toolchain)
			if err != nil {
				t.Fatal(err)
			}
			spec := Spec{Go: goBin, GOPATH: gopath, Root: root, Patches: set}
			if lock.Fix.Kind == pins.FixBuildTag {
				spec.FixTag = lock.Fix.Tag
			}
			switch {
			case project == "runc":
				spec.PkgDir, spec.Package = filepath.Join(root, filepath.FromSlash(runcOwnFS)), "./"+runcOwnFS
				spec.Env = srctree.ModEnv(lock, srctree.Tree{GOPATH: gopath, Root: root})
			case lock.Source.Kind == pins.SourceGoMod:
				// The vendored runc is a module of the graph: the proof runs on
				// a writable copy of its verified zip (go refuses overlays in
				// the module cache), in module mode, offline.
				tree := srctree.Tree{GOPATH: gopath, Root: root}
				spec.Env = srctree.ModEnv(lock, tree)
				pkgDir, modFile, err := srctree.WritableModule(lock, tree, runcFSImport, t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				spec.PkgDir, spec.Package, spec.Args = pkgDir, runcFSImport, []string{"-modfile=" + modFile}
			}
			for _, fixed := range []bool{false, true} {
				sim, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
				var mu sync.Mutex
				written := map[string]bool{}
				sim.SetHook(func(op memcgsim.Op) error {
					if op.Kind == memcgsim.OpWrite && op.File == "memory.kmem.limit_in_bytes" {
						mu.Lock()
						written[op.Cgroup] = true
						mu.Unlock()
					}
					return nil
				})
				res, err := Run(context.Background(), spec, fixed, filepath.Dir(m.Memory))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s, fixed=%v (fix %s):\n%s", v, fixed, lock.Fix.Kind, res.Output)
				wantFailed := []string{"memory_limit_only", "memory_reservation_and_swap"}
				if fixed {
					wantFailed = nil
				}
				if res.Passed != fixed || !slices.Equal(res.Failed(), wantFailed) {
					t.Errorf("fixed=%v: passed %v, failed %v; want passed %v, failed %v", fixed, res.Passed, res.Failed(), fixed, wantFailed)
				}
				mu.Lock()
				for _, cg := range []string{"nokmem-proof/limit-only", "nokmem-proof/reservation"} {
					if written[cg] == fixed {
						t.Errorf("fixed=%v: memory.kmem.limit_in_bytes written in %s = %v", fixed, cg, written[cg])
					}
				}
				mu.Unlock()
			}
		})
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// The adapter follows the tree's libcontainer API: Apply(d) or
// Apply(path, d), FindCgroupMountpoint with or without the cgroup path.
func TestAdapter(t *testing.T) {
	tests := []struct {
		name, memory, utils string
		want                []string
	}{
		{"rc5 era", "func (s *MemoryGroup) Apply(d *cgroupData) (err error) {", "func FindCgroupMountpoint(subsystem string) (string, error) {",
			[]string{"return m.Apply(d)", `cgroups.FindCgroupMountpoint("memory")`}},
		{"rc10", "func (s *MemoryGroup) Apply(d *cgroupData) (err error) {", "func FindCgroupMountpoint(cgroupPath, subsystem string) (string, error) {",
			[]string{"return m.Apply(d)", `cgroups.FindCgroupMountpoint("", "memory")`}},
		{"rc92", "func (s *MemoryGroup) Apply(path string, d *cgroupData) (err error) {", "func FindCgroupMountpoint(cgroupPath, subsystem string) (string, error) {",
			[]string{"return m.Apply(path, d)", `cgroups.FindCgroupMountpoint("", "memory")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cg := t.TempDir()
			fsDir := filepath.Join(cg, "fs")
			if err := os.MkdirAll(fsDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fsDir, "memory.go"), []byte("package fs\n\n"+tt.memory+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cg, "utils.go"), []byte("package cgroups\n\n"+tt.utils+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			src, err := Adapter(fsDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(src), w) {
					t.Errorf("adapter lacks %q:\n%s", w, src)
				}
			}
		})
	}
}
