package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nokmem/nokmem/internal/elfcheck"
	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/stepstamp"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// ModInputs fetches inputs through the Go module proxy (modfetch, toolchain, srctree).
type ModInputs struct {
	Fetcher *modfetch.Fetcher
	// Log receives a line per assembled source tree (nothing when nil).
	Log *slog.Logger
}

// Toolchain implements Inputs.
func (m ModInputs) Toolchain(ctx context.Context, mod pins.Module) (string, error) {
	return toolchain.Go(ctx, m.Fetcher, mod)
}

// Assemble implements Inputs.
func (m ModInputs) Assemble(ctx context.Context, l *pins.Lock, buildDir string) (srctree.Tree, error) {
	return srctree.Assemble(ctx, m.Fetcher, l, buildDir, m.Log)
}

// GoBuilder builds with gobuild and checks with elfcheck and the binary's own version output.
type GoBuilder struct {
	// CacheDir, when set, keeps the answers of dpkg-query (see SystemPackages).
	CacheDir string
}

// dpkgStatus is dpkg's database of installed packages; dpkg replaces it
// (write and rename) whenever a package is installed, removed or upgraded.
var dpkgStatus = "/var/lib/dpkg/status"

// SystemPackages implements Builder: the Debian packages whose code or
// tools go into a cgo build of l (C toolchain and glibc, and libseccomp
// for the seccomp tag). With CacheDir set, the answer is kept there under
// the identity of dpkg's status file, so that reruns do not wait for
// dpkg-query while no package changed.
func (g GoBuilder) SystemPackages(ctx context.Context, l *pins.Lock) ([]inputs.SystemPackage, error) {
	if !l.Build.CGO {
		return nil, nil
	}
	var extra []string
	if slices.Contains(l.Build.Tags, "seccomp") {
		extra = append(extra, "libseccomp-dev")
	}
	if g.CacheDir == "" {
		return inputs.CgoToolchain(ctx, extra...)
	}
	fi, err := os.Stat(dpkgStatus)
	if err != nil {
		return inputs.CgoToolchain(ctx, extra...)
	}
	key := sha256.Sum256([]byte(stepstamp.Identity(fi) + "\n" + strings.Join(extra, " ")))
	file := filepath.Join(g.CacheDir, "dpkg-"+hex.EncodeToString(key[:8]))
	var pkgs []inputs.SystemPackage
	if b, err := os.ReadFile(file); err == nil && json.Unmarshal(b, &pkgs) == nil && len(pkgs) > 0 {
		return pkgs, nil
	}
	if pkgs, err = inputs.CgoToolchain(ctx, extra...); err != nil {
		return nil, err
	}
	if b, err := json.Marshal(pkgs); err == nil && os.MkdirAll(g.CacheDir, 0o755) == nil {
		tmp := file + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, file) // a cache: failing to keep it costs a dpkg-query next time
		}
	}
	return pkgs, nil
}

// Build implements Builder.
func (GoBuilder) Build(ctx context.Context, s gobuild.Spec) error { return gobuild.Build(ctx, s) }

// Check implements Builder: built by the pinned Go, static or
// old-glibc-only ELF (CentOS 7), and the version output as wanted.
func (GoBuilder) Check(ctx context.Context, c Check) error {
	if err := gobuild.CheckGoVersion(ctx, c.GoBin, c.Binary, c.GoVersion); err != nil {
		return err
	}
	r, err := elfcheck.Check(c.Binary, elfcheck.CentOS7GLIBC)
	if err != nil {
		return err
	}
	if c.Static && !r.Static() {
		return fmt.Errorf("%s: lock asks for a static build, but it has interpreter %q and needs %v", c.Binary, r.Interp, r.Needed)
	}
	if len(c.VersionArgs) == 0 {
		return nil
	}
	out, err := exec.CommandContext(ctx, c.Binary, c.VersionArgs...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", c.Binary, strings.Join(c.VersionArgs, " "), err, out)
	}
	return CheckVersionOutput(c, string(out))
}

// CheckVersionOutput checks that out has every wanted substring.
func CheckVersionOutput(c Check, out string) error {
	for _, w := range c.VersionWant {
		if !strings.Contains(out, w) {
			return fmt.Errorf("%s %s printed %q, want it to show %q", c.Binary, strings.Join(c.VersionArgs, " "), strings.TrimSpace(out), strings.TrimSpace(w))
		}
	}
	return nil
}

// goVersion is the Go version of a toolchain module, e.g. go1.26.11.
func goVersion(m pins.Module) (string, error) {
	v, err := toolchain.ParseVersion(m)
	return v.Go, err
}

// Kubelet is the kubernetes project: `kubelet --version` shows version+marker.
var Kubelet = Project{
	Name:        "kubernetes",
	VersionArgs: []string{"--version"},
	VersionWant: func(l *pins.Lock, marker string) []string { return []string{l.Version + "+" + marker} },
}

// Runc is the runc project: `runc --version` shows the version without
// its leading v plus the marker, and the commit, as upstream's Makefile
// stamps them (no commit line when the lock's commit is not known: runc
// prints none for an empty main.gitCommit).
var Runc = Project{
	Name:        "runc",
	VersionArgs: []string{"--version"},
	VersionWant: func(l *pins.Lock, marker string) []string {
		want := []string{"runc version " + strings.TrimPrefix(l.Version, "v") + "+" + marker + "\n"}
		if l.Source.Commit != "" {
			want = append(want, "commit: "+l.Source.Commit+"\n")
		}
		return want
	},
}
