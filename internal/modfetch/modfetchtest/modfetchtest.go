// Package modfetchtest builds a file:// Go module proxy in a test's temp dir,
// so tests of modfetch and its callers (toolchain, srctree) run without
// network and without touching the machine's module cache.
package modfetchtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/nokmem/nokmem/internal/pins"
)

// Module is a fake module: its files by slash path relative to the module root.
type Module struct {
	Path, Version string
	Files         map[string]string
}

// Proxy is a file:// module proxy in a temp dir.
type Proxy struct {
	Dir string
}

// New returns an empty proxy.
func New(t testing.TB) *Proxy {
	t.Helper()
	return &Proxy{Dir: t.TempDir()}
}

// Add publishes m (its .info, .mod and .zip) and returns it pinned with the
// h1 of its zip.
func (p *Proxy) Add(t testing.TB, m Module) pins.Module {
	t.Helper()
	zip := p.ZipPath(t, m.Path, m.Version)
	if err := os.MkdirAll(filepath.Dir(zip), 0o755); err != nil {
		t.Fatal(err)
	}
	info := fmt.Sprintf(`{"Version":%q,"Time":"2020-01-01T00:00:00Z"}`, m.Version)
	mod := "module " + m.Path + "\n"
	if gm, ok := m.Files["go.mod"]; ok {
		mod = gm
	}
	base := strings.TrimSuffix(zip, ".zip")
	for name, data := range map[string]string{".info": info, ".mod": mod} {
		if err := os.WriteFile(base+name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.WriteZip(t, m)
	h1, err := dirhash.HashZip(zip, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	return pins.Module{Path: m.Path, Version: m.Version, H1: h1}
}

// WriteZip (re)writes m's zip in the proxy, e.g. to tamper with a published module.
func (p *Proxy) WriteZip(t testing.TB, m Module) {
	t.Helper()
	src := t.TempDir()
	for name, data := range m.Files {
		f := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := modzip.CreateFromDir(&buf, module.Version{Path: m.Path, Version: m.Version}, src); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.ZipPath(t, m.Path, m.Version), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ZipPath is where the proxy serves path@version's zip.
func (p *Proxy) ZipPath(t testing.TB, path, version string) string {
	t.Helper()
	ep, err := module.EscapePath(path)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(p.Dir, filepath.FromSlash(ep), "@v", ev+".zip")
}

// Env is the environment that points the go command at this proxy only, with
// a fresh module cache that the test can remove (-modcacherw) and no checksum
// database (the fake modules are not in sum.golang.org).
func (p *Proxy) Env(t testing.TB) []string {
	t.Helper()
	return []string{
		"GOPROXY=file://" + filepath.ToSlash(p.Dir),
		"GOMODCACHE=" + t.TempDir(),
		"GOFLAGS=-modcacherw",
		"GOSUMDB=off",
		"GONOSUMDB=",
		"GOPRIVATE=",
		"GOTOOLCHAIN=local",
	}
}

// GoModH1 is the go.sum "/go.mod" h1 of the go.mod file Add publishes for m.
func GoModH1(t testing.TB, m Module) string {
	t.Helper()
	mod := "module " + m.Path + "\n"
	if gm, ok := m.Files["go.mod"]; ok {
		mod = gm
	}
	h, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(mod)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// WriteGoMod (re)writes the .mod file the proxy serves for path@version.
func (p *Proxy) WriteGoMod(t testing.TB, path, version, content string) {
	t.Helper()
	f := strings.TrimSuffix(p.ZipPath(t, path, version), ".zip") + ".mod"
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
