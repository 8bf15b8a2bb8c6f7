// Package toolchain provides the pinned Go toolchain of a lock file: the
// module golang.org/toolchain@v0.0.1-<goversion>.<goos>-<goarch>, fetched and
// h1-checked through modfetch (so GOPROXY and friends apply), prepared to run
// the way the go command prepares a toolchain it switches to (execute bits,
// src/_go.mod copied to go.mod), and checked with `go version`.
//
// The build runs the returned bin/go directly: GOTOOLCHAIN is ignored in
// GOPATH mode, so switching by environment would silently use the host Go.
//
//	goBin, err := toolchain.Go(ctx, &modfetch.Fetcher{Progress: os.Stderr}, lock.Toolchain)
package toolchain

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
)

// ModulePath is the module that holds Go toolchains.
const ModulePath = "golang.org/toolchain"

// Version is what a toolchain module version says about the toolchain.
type Version struct {
	Go     string // e.g. "go1.26.11"
	GOOS   string // e.g. "linux"
	GOARCH string // e.g. "amd64"
}

// ParseVersion splits a golang.org/toolchain module version such as
// v0.0.1-go1.26.11.linux-amd64.
func ParseVersion(m pins.Module) (Version, error) {
	if m.Path != ModulePath {
		return Version{}, fmt.Errorf("toolchain %s: module must be %s", m, ModulePath)
	}
	rest, ok := strings.CutPrefix(m.Version, "v0.0.1-")
	dot := strings.LastIndex(rest, ".")
	goos, goarch, okPlat := strings.Cut(rest[dot+1:], "-")
	if !ok || dot < 0 || !okPlat || !strings.HasPrefix(rest, "go") {
		return Version{}, fmt.Errorf("toolchain %s: version is not v0.0.1-go<version>.<goos>-<goarch>", m)
	}
	return Version{Go: rest[:dot], GOOS: goos, GOARCH: goarch}, nil
}

// Go fetches the toolchain m, checks its h1 and its `go version`, and returns
// the path of its bin/go.
func Go(ctx context.Context, f *modfetch.Fetcher, m pins.Module) (string, error) {
	v, err := ParseVersion(m)
	if err != nil {
		return "", err
	}
	got, err := f.Fetch(ctx, []pins.Module{m})
	if err != nil {
		return "", fmt.Errorf("fetch toolchain %s: %w", m, err)
	}
	dir := got[0].Dir
	if err := prepare(dir); err != nil {
		return "", fmt.Errorf("prepare toolchain %s in %s: %w", m, dir, err)
	}
	goBin := filepath.Join(dir, "bin", "go")
	if err := checkVersion(ctx, goBin, v); err != nil {
		return "", fmt.Errorf("toolchain %s: %w", m, err)
	}
	return goBin, nil
}

// checkVersion runs `go version` and compares it with v.
func checkVersion(ctx context.Context, goBin string, v Version) error {
	cmd := exec.CommandContext(ctx, goBin, "version")
	cmd.Env = append(withoutGOROOT(os.Environ()), "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s version: %w: %s", goBin, err, strings.TrimSpace(string(out)))
	}
	want := fmt.Sprintf("go version %s %s/%s", v.Go, v.GOOS, v.GOARCH)
	if got := strings.TrimSpace(string(out)); got != want {
		return fmt.Errorf("%s version says %q, want %q", goBin, got, want)
	}
	return nil
}

// withoutGOROOT drops GOROOT so that bin/go finds its own root.
func withoutGOROOT(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GOROOT=") {
			out = append(out, kv)
		}
	}
	return out
}

// prepare does what the go command does on first use of a downloaded
// toolchain: module zips keep no file modes, so the commands get their
// execute bits (pkg/tool and lib before bin, so that bin/go being executable
// means the rest is too), and the src/**/_go.mod files (renamed so the zip
// holds one module) are copied back to go.mod.
func prepare(dir string) error {
	fi, err := os.Stat(filepath.Join(dir, "bin", "go"))
	if err != nil {
		return err
	}
	if fi.Mode()&0o111 == 0 {
		for _, sub := range []struct{ dir, pattern string }{
			{"pkg/tool", ""},
			{"lib", "go_?*_?*_exec"},
			{"bin", ""},
		} {
			if err := allowExec(filepath.Join(dir, sub.dir), sub.pattern); err != nil {
				return err
			}
		}
	}
	return filepath.WalkDir(filepath.Join(dir, "src"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "_go.mod" {
			return err
		}
		return copyGoMod(path, filepath.Join(filepath.Dir(path), "go.mod"))
	})
}

// allowExec adds execute bits to the files under dir whose name matches
// pattern (all files when pattern is empty). A missing dir is fine.
func allowExec(dir, pattern string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if pattern != "" {
			if ok, _ := filepath.Match(pattern, d.Name()); !ok {
				return nil
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(path, fi.Mode().Perm()|0o111)
	})
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// copyGoMod writes src's content to dst unless dst already has it. Module
// cache directories are read-only, so the parent is made writable for the
// copy and restored afterwards.
func copyGoMod(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(dst); err == nil && string(old) == string(data) {
		return nil
	}
	parent := filepath.Dir(dst)
	fi, err := os.Stat(parent)
	if err != nil {
		return err
	}
	if err := os.Chmod(parent, fi.Mode().Perm()|0o200); err != nil {
		return err
	}
	werr := os.Remove(dst)
	if werr == nil || os.IsNotExist(werr) {
		werr = os.WriteFile(dst, data, 0o444)
	}
	if err := os.Chmod(parent, fi.Mode().Perm()); err != nil && werr == nil {
		werr = err
	}
	return werr
}
