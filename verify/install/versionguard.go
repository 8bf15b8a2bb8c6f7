package install

import (
	"fmt"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/verify/affected"
)

// checkVersionChange refuses to replace a stock binary when the bundle's
// build is not a fix of the same thing: a stock version that never
// activates kmem (the bundle would only change its version), a kubelet of
// another minor release (installing it would up- or downgrade the node's
// Kubernetes, a cluster operation), or a runc newer than the bundle's
// (a downgrade under the container engine). cur is what detect found in
// the node's binary (nil when it is a nokmem build or not recognised).
func checkVersionChange(name, path string, cur *affected.Finding, b *bundle.Binary) error {
	if cur == nil || cur.NokmemTag {
		return nil
	}
	want, _, _ := strings.Cut(b.Version, "+") // v1.12.4+nokmem.… → v1.12.4
	switch {
	case cur.Verdict == affected.Unaffected:
		return fmt.Errorf("install %s: %s is %s %s, which does not activate kmem accounting (%s); replacing it with the bundle's %s would only change its version (--allow-version-change does it anyway)",
			name, path, name, cur.Version.Version, cur.Reason, b.Version)
	case cur.Project == affected.Kubernetes && semver.MajorMinor(cur.Version.Version) != semver.MajorMinor(want):
		fix := "a bundle built for " + semver.MajorMinor(cur.Version.Version)
		if cur.Bundle != "" {
			fix = "bundle " + cur.Bundle
		} else if cur.FixVersion != "" {
			fix = "a bundle with kubelet " + cur.FixVersion + " (go tool mage kubelet:build " + cur.FixVersion + ")"
		}
		return fmt.Errorf("install %s: %s is kubelet %s, the bundle's is %s: installing it would change the node's Kubernetes minor version; use %s (--allow-version-change installs anyway)",
			name, path, cur.Version.Version, b.Version, fix)
	case cur.Project == affected.Runc && affected.Compare(affected.Runc, cur.Version.Version, want) > 0:
		return fmt.Errorf("install %s: %s is runc %s, newer than the bundle's %s: installing it would downgrade the runtime under the container engine; use a bundle with runc %s or later (--allow-version-change installs anyway)",
			name, path, cur.Version.Version, b.Version, cur.Version.Version)
	}
	return nil
}
