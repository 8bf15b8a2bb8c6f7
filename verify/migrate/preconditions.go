package migrate

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/memcg"
)

// Preconditions are what a migration of one node needs before it changes
// anything: the kubelet stopped (it would create and delete pod cgroups
// under the tree being replaced), a kernel whose semantics memcg decides
// to be 3.10's, and a nokmem kubelet (a stock one re-activates kmem on
// every cgroup it creates).
type Preconditions struct {
	Hierarchy memcg.Hierarchy
	// Kubepods is the tree to migrate, relative to the memory root.
	Kubepods string
	// OSRelease is the file holding the kernel release.
	OSRelease string
	// Proc is the proc root the running kubelet is looked for in.
	Proc     string
	StateDir string
	// KubeletPath is the installed kubelet; "" searches
	// binary.DefaultSearchDirs.
	KubeletPath string
	// KnownSums are the sha256 of nokmem builds (a release's SHA256SUMS).
	KnownSums map[string]string
	// AllowKubelet lets the migration run with a kubelet running.
	AllowKubelet bool
	// Force skips the semantics and kubelet-build checks.
	Force  bool
	Logger *slog.Logger
}

// kubelet is the kubelet binary the checks look at.
func (p Preconditions) kubelet() string {
	if p.KubeletPath != "" {
		return p.KubeletPath
	}
	return binary.Search("kubelet", binary.DefaultSearchDirs)
}

// Semantics refuses, unless forced, a kernel that memcg does not decide to
// have 3.10 semantics: ErrNoIDLeak on a modern kernel, ErrUnknownSemantics
// when undecided.
func (p Preconditions) Semantics() error {
	if p.Force {
		return nil
	}
	s, err := p.Hierarchy.ReadNodeSemantics(p.OSRelease)
	if err != nil {
		return err
	}
	return CheckSemantics(s)
}

// Check runs every precondition of the critical part (the engine's
// Preflight hook). A rollback needs only the kubelet stopped.
func (p Preconditions) Check(rollback bool) error {
	if !p.AllowKubelet {
		if err := CheckKubeletStopped(p.Proc); err != nil {
			return err
		}
	}
	if p.Force || rollback {
		return nil
	}
	if err := p.Semantics(); err != nil {
		return err
	}
	how, err := CheckKubeletBuildFast(p.StateDir, p.kubelet(), p.KnownSums)
	if err == nil && p.Logger != nil {
		p.Logger.Info(how)
	}
	return err
}

// RecordPreflight runs every precondition that does not need the kubelet
// stopped and records the checked kubelet in the state dir (PreflightFile),
// so that the run inside the downtime window only confirms it cheaply. It
// returns what it recorded, in one sentence.
func (p Preconditions) RecordPreflight() (string, error) {
	if err := p.Semantics(); err != nil {
		return "", fmt.Errorf("preflight: %w", err)
	}
	if err := CheckLayout(p.Hierarchy, p.Kubepods); err != nil {
		return "", err
	}
	path := p.kubelet()
	if err := WritePreflight(p.StateDir, path, p.KnownSums); err != nil {
		return "", err
	}
	return fmt.Sprintf("kubelet %s is a nokmem build, recorded in %s for %s", path, filepath.Join(p.StateDir, PreflightFile), PreflightMaxAge), nil
}
