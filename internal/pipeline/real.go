package pipeline

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/nokmem/nokmem/internal/elfcheck"
	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/srctree"
	"github.com/nokmem/nokmem/internal/toolchain"
)

// ModInputs fetches inputs through the Go module proxy (modfetch, toolchain, srctree).
type ModInputs struct {
	Fetcher *modfetch.Fetcher
}

// Toolchain implements Inputs.
func (m ModInputs) Toolchain(ctx context.Context, mod pins.Module) (string, error) {
	return toolchain.Go(ctx, m.Fetcher, mod)
}

// Assemble implements Inputs.
func (m ModInputs) Assemble(ctx context.Context, l *pins.Lock, buildDir string) (srctree.Tree, error) {
	return srctree.Assemble(ctx, m.Fetcher, l, buildDir)
}

// GoBuilder builds with gobuild and checks with elfcheck and the binary's own version output.
type GoBuilder struct{}

// SystemPackages implements Builder: the Debian packages whose code or
// tools go into a cgo build of l (C toolchain and glibc, and libseccomp
// for the seccomp tag).
func (GoBuilder) SystemPackages(ctx context.Context, l *pins.Lock) ([]inputs.SystemPackage, error) {
	if !l.Build.CGO {
		return nil, nil
	}
	var extra []string
	if slices.Contains(l.Build.Tags, "seccomp") {
		extra = append(extra, "libseccomp-dev")
	}
	return inputs.CgoToolchain(ctx, extra...)
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
