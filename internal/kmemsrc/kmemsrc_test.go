package kmemsrc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writePkg(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The shapes of runc's history: rc2-rc5 call the enabler from Apply and
// declare it in memory.go, rc6-rc93 declare it in kmem.go, rc94+ has neither
// (a test file's declaration does not count).
func TestRead(t *testing.T) {
	const memGroup = "package fs\n\ntype MemoryGroup struct{}\n\n"
	tests := []struct {
		name      string
		files     map[string]string
		wantCalls bool
		wantDecl  []string
	}{
		{"rc5: Apply calls it", map[string]string{
			"memory.go": memGroup + "func (s *MemoryGroup) Apply(path string) error {\n\tif err := EnableKernelMemoryAccounting(path); err != nil {\n\t\treturn err\n\t}\n\treturn nil\n}\n\nfunc EnableKernelMemoryAccounting(string) error { return nil }\n",
		}, true, []string{"memory.go"}},
		{"rc6: declared in kmem.go, called as fs.", map[string]string{
			"memory.go": memGroup + "func (s MemoryGroup) Apply(path string) error { return fs.EnableKernelMemoryAccounting(path) }\n",
			"kmem.go":   "package fs\n\nfunc EnableKernelMemoryAccounting(string) error { return nil }\n",
		}, true, []string{"kmem.go"}},
		{"rc94+: Apply only joins", map[string]string{
			"memory.go":      memGroup + "func (s *MemoryGroup) Apply(path string, pid int) error { return apply(path, pid) }\n",
			"memory_test.go": "package fs\n\nfunc EnableKernelMemoryAccounting(string) error { return nil }\n",
		}, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Read(writePkg(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if r.ApplyCalls != tc.wantCalls || !slices.Equal(r.Declared, tc.wantDecl) {
				t.Errorf("got %+v, want calls %v, declared %v", r, tc.wantCalls, tc.wantDecl)
			}
			if r.Activates() != (tc.wantCalls || len(tc.wantDecl) > 0) {
				t.Errorf("Activates() = %v", r.Activates())
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	if _, err := Read(writePkg(t, map[string]string{"cpu.go": "package fs\n"})); err == nil {
		t.Error("a package without MemoryGroup.Apply: no error")
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing directory: no error")
	}
	if _, err := Read(writePkg(t, map[string]string{"memory.go": "package fs\nfunc ("})); err == nil {
		t.Error("a syntax error: no error")
	}
}
