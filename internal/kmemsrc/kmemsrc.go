// Package kmemsrc reads the Go source of libcontainer's cgroupfs driver
// (libcontainer/cgroups/fs in runc up to 1.2; the fs package of
// github.com/opencontainers/cgroups from runc 1.3 on) and says whether it can
// activate kernel-memory accounting: whether MemoryGroup.Apply calls
// EnableKernelMemoryAccounting, and whether the package still has that
// function at all (runc rc94, #2840, removed it with every other kmem writer).
package kmemsrc

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
)

// Enabler is the libcontainer function that writes 1 and then -1 to
// memory.kmem.limit_in_bytes, which turns kmem accounting on for the cgroup
// on 3.x kernels.
const Enabler = "EnableKernelMemoryAccounting"

// Report is what the fs package's source says.
type Report struct {
	// Dir is the package directory read.
	Dir string
	// ApplyCalls: MemoryGroup.Apply (in memory.go) calls Enabler.
	ApplyCalls bool
	// Declared lists the non-test files that declare Enabler.
	Declared []string
}

// Activates reports whether the driver can activate kmem on its own:
// Apply calls Enabler or the package declares it.
func (r Report) Activates() bool { return r.ApplyCalls || len(r.Declared) > 0 }

// Read parses the non-test Go files of the fs package in dir.
func Read(dir string) (Report, error) {
	r := Report{Dir: dir}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return r, err
	}
	foundApply := false
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			return r, err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if fn.Recv == nil && fn.Name.Name == Enabler {
				r.Declared = append(r.Declared, filepath.Base(file))
			}
			if fn.Recv != nil && fn.Name.Name == "Apply" && recvName(fn) == "MemoryGroup" && fn.Body != nil {
				foundApply = true
				r.ApplyCalls = r.ApplyCalls || calls(fn.Body, Enabler)
			}
		}
	}
	if !foundApply {
		if _, err := os.Stat(dir); err != nil {
			return r, err
		}
		return r, fmt.Errorf("%s: no MemoryGroup.Apply in the package", dir)
	}
	return r, nil
}

// recvName is the receiver's type name, without a pointer.
func recvName(fn *ast.FuncDecl) string {
	t := fn.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// calls reports whether body calls name, directly or as pkg.name.
func calls(body ast.Node, name string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			switch f := c.Fun.(type) {
			case *ast.Ident:
				found = found || f.Name == name
			case *ast.SelectorExpr:
				found = found || f.Sel.Name == name
			}
		}
		return !found
	})
	return found
}
