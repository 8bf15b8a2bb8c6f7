// Package layout names the folders and files of a repository checkout
// that the build reads (vendor-pins/, patches/) and writes (_build/ for
// work trees and step records, _output/ for what it publishes), so that
// each path is spelled in one place.
package layout

import "path/filepath"

// Layout is a repository checkout at Root ("." for the working directory:
// the paths then stay relative, as the magefiles print them).
type Layout struct {
	Root string
}

// New returns the layout of the checkout at root.
func New(root string) Layout { return Layout{Root: root} }

func (l Layout) join(elem ...string) string {
	return filepath.Join(append([]string{l.Root}, elem...)...)
}

// Pins is the lock folder, vendor-pins/.
func (l Layout) Pins() string { return l.join("vendor-pins") }

// Patches is project@version's patch folder, patches/<project>/<version>.
func (l Layout) Patches(project, version string) string {
	return l.join("patches", project, version)
}

// BuildRoot is _build/, the work folder of every build.
func (l Layout) BuildRoot() string { return l.join("_build") }

// OutputRoot is _output/, where published artifacts go.
func (l Layout) OutputRoot() string { return l.join("_output") }

// Build is project@version's build folder, _build/<project>/<version>:
// its fixed source tree, bin/ and rebuild/.
func (l Layout) Build(project, version string) string {
	return l.join("_build", project, version)
}

// Unpatched is the build folder of project@version without its patches,
// _build/<project>/<version>-unpatched (the proof that a check can fail).
func (l Layout) Unpatched(project, version string) string {
	return l.Build(project, version+"-unpatched")
}

// Stock is the build folder of project@version with its kmem patch left
// out, _build/<project>/<version>-stock.
func (l Layout) Stock(project, version string) string {
	return l.Build(project, version+"-stock")
}

// Output is where project@version's binaries and release set are
// published, _output/<project>/<version>.
func (l Layout) Output(project, version string) string {
	return l.join("_output", project, version)
}

// Stamps is _build/stamps, the records by which unchanged steps are skipped.
func (l Layout) Stamps() string { return l.join("_build", "stamps") }

// Record is the record file of one step, _build/stamps/<name>.
func (l Layout) Record(name string) string { return filepath.Join(l.Stamps(), name) }

// Verify is where the verify node program is published, _output/verify.
func (l Layout) Verify() string { return l.join("_output", "verify") }

// Bundle receives the default pair's node bundle and its tarball, _output/bundle.
func (l Layout) Bundle() string { return l.join("_output", "bundle") }

// Bundles receives the bundles of the matrix's other pairs, _output/bundles.
func (l Layout) Bundles() string { return l.join("_output", "bundles") }

// Yum is the published yum repository, _output/yum.
func (l Layout) Yum() string { return l.join("_output", "yum") }

// ReleasePub is the published copy of the signing public key,
// _output/nokmem-release.pub.
func (l Layout) ReleasePub() string { return l.join("_output", "nokmem-release.pub") }

// DevKey and DevPub are the development signing key pair made on first
// use, under _build/release-key.
func (l Layout) DevKey() string { return l.join("_build", "release-key", "nokmem-dev.key") }

// DevPub is the development key pair's public key (see DevKey).
func (l Layout) DevPub() string { return l.join("_build", "release-key", "nokmem-dev.pub") }
