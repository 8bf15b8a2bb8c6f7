package install

import (
	"slices"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/verify/affected"
)

// The version and security guard of a plan: a replacement must change no
// more than the kmem fix, and must not add known vulnerabilities.

// bundleVersion is what the bundle's binary is, for comparing it with the
// node's: its version without build metadata, and a pseudo-version's commit.
func bundleVersion(b *bundle.Binary) affected.Version {
	v, _, _ := strings.Cut(b.Version, "+") // v1.12.4+nokmem.… → v1.12.4
	out := affected.Version{Project: b.Project, Version: v}
	if module.IsPseudoVersion(v) {
		out.Commit, _ = module.PseudoVersionRev(v)
	}
	return out
}

// checkVersionChange refuses a replacement that changes more than the kmem
// fix: a kubelet of another minor release (installing it would up- or
// downgrade the node's Kubernetes, a cluster operation) or a runc newer
// than the bundle's (a downgrade under the container engine). cur is the
// node's binary's version, up what verify/affected knows of it (nil for a
// nokmem build or an unknown binary).
func checkVersionChange(name, path string, cur affected.Version, up *affected.Finding, b *bundle.Binary) *Refusal {
	want := bundleVersion(b)
	switch {
	case cur.Project == affected.Kubernetes && semver.MajorMinor(cur.Version) != semver.MajorMinor(want.Version):
		fix := "a bundle built for " + semver.MajorMinor(cur.Version)
		if up != nil && up.Bundle != "" {
			fix = "bundle " + up.Bundle
		} else if up != nil && up.FixVersion != "" {
			fix = "a bundle with kubelet " + up.FixVersion + " (go tool mage kubelet:build " + up.FixVersion + ")"
		}
		return refuse(path, OverrideVersionChange, "install %s: %s is kubelet %s, the bundle's is %s: installing it would change the node's Kubernetes minor version; use %s: %w",
			name, path, cur.Version, b.Version, fix, ErrRefused)
	case cur.Project == affected.Runc && affected.Compare(affected.Runc, cur.Version, want.Version) > 0:
		return refuse(path, OverrideVersionChange, "install %s: %s is runc %s, newer than the bundle's %s: installing it would downgrade the runtime under the container engine; use a bundle with runc %s or later: %w",
			name, path, cur.Version, b.Version, cur.Version, ErrRefused)
	}
	return nil
}

// checkSecurity refuses to put in place a binary that carries more known
// vulnerabilities (verify/affected) than the one it replaces, such as the
// rc5 of the default bundle over Docker CE 18.06.3's runc a592beb5 (which
// carries the CVE-2019-5736 fix) or over a runc ≥ rc95.
func checkSecurity(name, path string, cur affected.Version, b *bundle.Binary) *Refusal {
	want := bundleVersion(b)
	if want.Project != cur.Project {
		return nil
	}
	nv, cv := affected.Vulnerabilities(want), affected.Vulnerabilities(cur)
	if len(nv) <= len(cv) {
		return nil
	}
	var added []string
	for _, v := range nv {
		if !slices.ContainsFunc(cv, func(c affected.Vulnerability) bool { return c.ID == v.ID }) {
			added = append(added, strings.Join(append(slices.Clone(v.Aliases), v.ID), "/"))
		}
	}
	what := cur.Version
	if cur.Commit != "" {
		what += " (commit " + cur.Commit + ")"
	}
	return refuse(path, OverrideSecurityDowngrade, "install %s: %s is %s %s with %d known vulnerabilities; the bundle's %s %s has %d: installing it would add %s; use a bundle whose %s has no more known vulnerabilities: %w",
		name, path, name, what, len(cv), name, b.Version, len(nv), strings.Join(added, ", "), name, ErrRefused)
}
