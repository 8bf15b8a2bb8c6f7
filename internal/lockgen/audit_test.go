package lockgen

import (
	"context"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
)

const (
	applyKmem   = "package fs\n\ntype MemoryGroup struct{}\n\nfunc (s *MemoryGroup) Apply(path string) error {\n\tif err := EnableKernelMemoryAccounting(path); err != nil {\n\t\treturn err\n\t}\n\treturn nil\n}\n"
	applyNoKmem = "package fs\n\ntype MemoryGroup struct{}\n\nfunc (s *MemoryGroup) Apply(path string) error {\n\treturn nil\n}\n\n// EnableKernelMemoryAccounting is still defined, but Apply does not call it.\nfunc EnableKernelMemoryAccounting(string) error { return nil }\n"
)

func TestAuditVersion(t *testing.T) {
	runcDir := func(memory string, kmemOff bool) string {
		files := map[string]string{"libcontainer/cgroups/fs/memory.go": memory}
		if kmemOff {
			files["libcontainer/cgroups/fs/kmem_disabled.go"] = "package fs\n"
		}
		return writeTree(t, files)
	}
	kube := func(files map[string]string) Download {
		return Download{Module: pins.Module{Path: "k8s.io/kubernetes", Version: "v1.0.0"}, Dir: writeTree(t, files)}
	}
	runcAt := func(v string, dir string) Download {
		return Download{Module: pins.Module{Path: runcModule, Version: v, H1: "h1:r="}, Dir: dir}
	}
	tmpl := &pins.Lock{Source: pins.Source{Module: pins.Module{Path: "k8s.io/kubernetes"}}}
	tests := []struct {
		name     string
		src      Download
		runc     Download
		wantRunc string
		wantKmem bool
		wantFix  string
	}{
		{"godeps, no kmem_disabled.go", kube(map[string]string{"Godeps/Godeps.json": `{"Deps": [{"ImportPath": "github.com/opencontainers/runc/libcontainer/cgroups/fs", "Rev": "` + revA + `", "Comment": "v1.0.0-rc5"}]}`}),
			runcAt("v1.0.0-rc5", runcDir(applyKmem, false)), "github.com/opencontainers/runc@v1.0.0-rc5", true, pins.FixPatch},
		{"godeps, kmem_disabled.go", kube(map[string]string{"Godeps/Godeps.json": `{"Deps": [{"ImportPath": "github.com/opencontainers/runc/libcontainer", "Rev": "` + revA + `", "Comment": "v1.0.0-rc5"}]}`}),
			runcAt("v1.0.0-rc5", runcDir(applyKmem, true)), "github.com/opencontainers/runc@v1.0.0-rc5", true, pins.FixBuildTag},
		{"go.mod, Apply without kmem", kube(map[string]string{"go.mod": "module k8s.io/kubernetes\n\nrequire github.com/opencontainers/runc v1.0.2\n"}),
			runcAt("v1.0.2", runcDir(applyNoKmem, false)), "github.com/opencontainers/runc@v1.0.2", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeResolver{served: map[string]Download{"k8s.io/kubernetes@v1.0.0": tc.src, runcModule + "@" + tc.runc.Version: tc.runc}}
			a, err := AuditVersion(context.Background(), r, AuditRequest{Project: "kubernetes", Version: "v1.0.0", Template: tmpl, PinsDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if a.Runc != tc.wantRunc || a.ActivatesKmem != tc.wantKmem || a.Fix != tc.wantFix || a.Lock {
				t.Errorf("audit %+v, want runc %s, kmem %v, fix %q, no lock", a, tc.wantRunc, tc.wantKmem, tc.wantFix)
			}
		})
	}
}
