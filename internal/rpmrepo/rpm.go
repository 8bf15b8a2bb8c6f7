// Package rpmrepo builds the project's RPMs with github.com/google/rpmpack
// (no rpmbuild, no spec file) and publishes them as a yum repository:
// the nokmem kubelet, which upgrades the Kubernetes el7 repository's kubelet
// package of the same version, and nokmem-node, which carries verify, the
// signed node bundle and the release public key, and nokmem-release-key,
// the OpenPGP key every RPM and the repository metadata are signed with
// (internal/release/gpgsign). Packages are reproducible:
// the build time and every file's mtime are the source date, the payload is
// sorted by path (rpmpack writes it in name order), owners are root:root and
// nothing of the build machine (host name, paths) enters the header.
package rpmrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/rpmpack"

	"github.com/nokmem/nokmem/internal/atomicfile"
)

// File is one entry of a package's payload.
type File struct {
	// Path is the absolute, clean path on the node.
	Path string
	// Body is a regular file's content.
	Body []byte
	// Mode holds the permission bits (e.g. 0o755).
	Mode os.FileMode
	// Dir makes the entry a directory the package owns.
	Dir bool
	// Link makes the entry a symbolic link to this target.
	Link string
	// Config marks %config(noreplace): an edited file survives upgrades and
	// removal (the new one is written beside it as .rpmnew / .rpmsave).
	Config bool
}

// Package is an RPM's metadata and payload.
type Package struct {
	Name, Version, Release, Arch string
	Summary, Description         string
	License, URL, Vendor         string
	// Requires and Provides are relations such as "iptables >= 1.4.21".
	Requires, Provides []string
	Files              []File
	// BuildTime is the RPM build time and every file's mtime.
	BuildTime time.Time
	// Sign, when set, signs the header and the header plus payload (rpmpack's
	// PGP signer: the RSAHEADER and PGP signature tags), e.g.
	// gpgsign.Key.RPMSigner.
	Sign func([]byte) ([]byte, error)
}

// ErrInvalid is returned (wrapped) for a package that must not be built.
var ErrInvalid = errors.New("invalid package")

// nevraPart is what RPM allows in a name, version or release: no dash in
// version and release (it separates them in the file name), no blanks.
var (
	namePart = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)
	evrPart  = regexp.MustCompile(`^[A-Za-z0-9._+~^]+$`)
)

// FileName is name-version-release.arch.rpm.
func (p *Package) FileName() string {
	return fmt.Sprintf("%s-%s-%s.%s.rpm", p.Name, p.Version, p.Release, p.Arch)
}

// Validate checks the metadata and the payload: well-formed NEVRA,
// absolute clean unique paths, permission bits only, exactly one kind per
// entry, and a build time.
func (p *Package) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalid, p.Name, fmt.Sprintf(format, a...))
	}
	switch {
	case !namePart.MatchString(p.Name):
		return bad("name %q", p.Name)
	case !evrPart.MatchString(p.Version):
		return bad("version %q (no dash or blank)", p.Version)
	case !evrPart.MatchString(p.Release):
		return bad("release %q (no dash or blank)", p.Release)
	case p.Arch == "" || !namePart.MatchString(p.Arch):
		return bad("arch %q", p.Arch)
	case p.Summary == "" || p.License == "":
		return bad("summary and license are required")
	case p.BuildTime.IsZero():
		return bad("no build time (use the source date)")
	case len(p.Files) == 0:
		return bad("no files")
	}
	seen := map[string]bool{}
	for _, f := range p.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return bad("path %q is not an absolute clean path", f.Path)
		}
		if seen[f.Path] {
			return bad("%s listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&^os.ModePerm != 0 {
			return bad("%s: mode %v has more than permission bits", f.Path, f.Mode)
		}
		if f.Link == "" && f.Mode&0o002 != 0 {
			return bad("%s: world-writable mode %v", f.Path, f.Mode)
		}
		if f.Dir && (f.Link != "" || len(f.Body) > 0) || f.Link != "" && len(f.Body) > 0 {
			return bad("%s: a directory, a link or a file, not several", f.Path)
		}
		if f.Config && (f.Dir || f.Link != "") {
			return bad("%s: only regular files can be config files", f.Path)
		}
	}
	for _, rel := range append(append([]string(nil), p.Requires...), p.Provides...) {
		if _, err := rpmpack.NewRelation(rel); err != nil {
			return bad("relation %q: %v", rel, err)
		}
	}
	return nil
}

// Write writes the package as an RPM (gzip payload, which the rpm 4.11 of
// CentOS 7 reads) to w.
func (p *Package) Write(w io.Writer) error {
	if err := p.Validate(); err != nil {
		return err
	}
	md := rpmpack.RPMMetaData{
		Name: p.Name, Version: p.Version, Release: p.Release, Arch: p.Arch,
		Summary: p.Summary, Description: p.Description, Licence: p.License,
		URL: p.URL, Vendor: p.Vendor, Packager: p.Vendor,
		BuildHost:  "nokmem",
		Compressor: "gzip:6",
		Epoch:      rpmpack.NoEpoch,
		BuildTime:  p.BuildTime.UTC(),
	}
	for _, list := range []struct {
		in  []string
		out *rpmpack.Relations
	}{{p.Requires, &md.Requires}, {p.Provides, &md.Provides}} {
		for _, s := range list.in {
			if err := list.out.Set(s); err != nil {
				return fmt.Errorf("%s: relation %q: %w", p.Name, s, err)
			}
		}
	}
	r, err := rpmpack.NewRPM(md)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	if p.Sign != nil {
		r.SetPGPSigner(p.Sign)
	}
	mtime := uint32(p.BuildTime.Unix())
	for _, f := range p.Files {
		e := rpmpack.RPMFile{Name: f.Path, Mode: uint(f.Mode.Perm()), Owner: "root", Group: "root", MTime: mtime, Body: f.Body}
		switch {
		case f.Dir:
			e.Mode |= 0o40000
		case f.Link != "":
			e.Mode = 0o120777
			e.Body = []byte(f.Link)
		}
		if f.Config {
			e.Type = rpmpack.ConfigFile | rpmpack.NoReplaceFile
		}
		r.AddFile(e)
	}
	if err := r.Write(w); err != nil {
		return fmt.Errorf("write rpm %s: %w", p.FileName(), err)
	}
	return nil
}

// WriteFile writes the package into dir under FileName (atomically, mode
// 0644, mtime the build time) and returns its path.
func WriteFile(dir string, p *Package) (string, error) {
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return "", err
	}
	dest := filepath.Join(dir, p.FileName())
	if err := atomicfile.WriteFile(dest, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write rpm: %w", err)
	}
	if err := os.Chtimes(dest, p.BuildTime, p.BuildTime); err != nil {
		return "", fmt.Errorf("write rpm: %w", err)
	}
	return dest, nil
}

// rpmVersion turns a version such as "v1.12.4" into an RPM version
// ("1.12.4"): no leading v, and '-' (which separates version and release
// in RPM) as '.'.
func rpmVersion(v string) string {
	return strings.ReplaceAll(strings.TrimPrefix(v, "v"), "-", ".")
}
