package rpmrepo

import (
	"crypto/sha256"
	"fmt"
	"path"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// The Kubernetes el7 repository's kubelet package (kubernetes/release,
// rpm/kubelet.spec, as built for v1.11 to v1.14) owns exactly these paths:
//
//	%{_bindir}/kubelet
//	%{_unitdir}/kubelet.service
//	%{_sysconfdir}/kubernetes/manifests/
//	%config(noreplace) %{_sysconfdir}/sysconfig/kubelet
//
// The drop-in kubelet.service.d/10-kubeadm.conf belongs to the kubeadm
// package of that repository, not to kubelet, so the nokmem kubelet leaves
// it alone (owning it too would be a file conflict with kubeadm).
const (
	KubeletBinaryPath = "/usr/bin/kubelet"
	KubeletUnitPath   = "/usr/lib/systemd/system/kubelet.service"
	KubeletManifests  = "/etc/kubernetes/manifests"
	KubeletSysconfig  = "/etc/sysconfig/kubelet"
)

// KubeletUnit is the unit file of that package (kubernetes/release,
// rpm/kubelet.service): the kubeadm drop-in adds the flags.
const KubeletUnit = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

// KubeletSysconfigBody is that package's /etc/sysconfig/kubelet (kubelet.env).
const KubeletSysconfigBody = "KUBELET_EXTRA_ARGS=\n"

// KubeletRequires are the dependencies the el7 kubelet package of v1.12
// declares (rpm/kubelet.spec: CNI 0.6.0 for 1.9 to 1.13); a node that has
// that package installed has them all.
var KubeletRequires = []string{
	"iptables >= 1.4.21",
	"kubernetes-cni >= 0.6.0",
	"socat",
	"util-linux",
	"ethtool",
	"iproute",
	"ebtables",
}

// Kubelet is the kubelet package.
type Kubelet struct {
	// Version is the Kubernetes version, e.g. "v1.12.4".
	Version string
	// Release is the RPM release, e.g. "1.nokmem"; it must sort above the
	// el7 repository's "0" (and "00") for the upgrade to happen.
	Release string
	// Binary is the kubelet binary.
	Binary []byte
	// PatchMarker names the nokmem patch set the binary carries ("" for a
	// stock build).
	PatchMarker string
	BuildTime   time.Time
}

// Package returns the kubelet RPM: same name, paths, modes and requires
// as the el7 repository's package of the same version. It has no
// scriptlets: installing it replaces the binary on disk and restarts
// nothing (`verify run` restarts the kubelet inside its maintenance
// window).
func (k Kubelet) Package() *Package {
	desc := "The node agent of Kubernetes, the container cluster manager."
	var provides []string
	if k.PatchMarker != "" {
		desc += "\n\nnokmem build: kmem accounting stays off for pod cgroups on RHEL/CentOS 7 kernels (patch set " + k.PatchMarker + ")."
		provides = append(provides, "nokmem-kubelet = "+rpmVersion(k.Version)+"-"+k.Release)
	}
	return &Package{
		Name: "kubelet", Version: rpmVersion(k.Version), Release: k.Release, Arch: "x86_64",
		Summary:     "Container cluster management",
		Description: desc,
		License:     "ASL 2.0",
		URL:         "https://kubernetes.io",
		Requires:    KubeletRequires,
		Provides:    provides,
		BuildTime:   k.BuildTime,
		Files: []File{
			{Path: KubeletManifests, Dir: true, Mode: 0o755},
			{Path: KubeletSysconfig, Body: []byte(KubeletSysconfigBody), Mode: 0o644, Config: true},
			{Path: KubeletBinaryPath, Body: k.Binary, Mode: 0o755},
			{Path: KubeletUnitPath, Body: []byte(KubeletUnit), Mode: 0o644},
		},
	}
}

// KubeletRelease is the nokmem kubelet RPM's release for a build from
// sources dated sourceDate with this binary: "1.nokmem.<UTC date and
// time>.<first 8 hex digits of the binary's sha256>". rpm compares it
// segment by segment: it sorts above the Kubernetes el7 repository's "0"
// and "00" (1 > 0) and above the hand-set "1.nokmem" of earlier builds (a
// longer release with the same leading segments is newer), and every
// rebuild from a later commit sorts above the one before (the date), so
// `yum upgrade` delivers it; the digest names the binary.
func KubeletRelease(sourceDate time.Time, binary []byte) string {
	return fmt.Sprintf("1.nokmem.%s.%x", sourceDate.UTC().Format("20060102150405"), sha256.Sum256(binary))[:len("1.nokmem.20060102150405.")+8]
}

// The nokmem-release-key package: the OpenPGP public key that signs the
// RPMs and the repository metadata, where yum's gpgkey=file:// and
// `rpm --import` look for it.
const ReleaseKeyPath = "/etc/pki/rpm-gpg/RPM-GPG-KEY-nokmem"

// ReleaseKey is the nokmem-release-key package.
type ReleaseKey struct {
	// Version and Release are nokmem-node's (NodeVersion).
	Version, Release string
	// GPGPublic is the armored OpenPGP public key.
	GPGPublic []byte
	BuildTime time.Time
}

// Package returns nokmem-release-key: the key as %config(noreplace), so an
// operator's edited key file (a second key during a rotation, say) survives
// upgrades; the new one is written beside it as .rpmnew.
func (r ReleaseKey) Package() *Package {
	return &Package{
		Name: "nokmem-release-key", Version: r.Version, Release: r.Release, Arch: "noarch",
		Summary:     "nokmem: the OpenPGP key that signs the nokmem RPMs and yum repository",
		Description: "The public key yum and rpm check the nokmem packages and repodata/repomd.xml with (" + ReleaseKeyPath + "; import it with `rpm --import " + ReleaseKeyPath + "`).",
		License:     "Apache-2.0",
		URL:         "https://github.com/nokmem/nokmem",
		Vendor:      "nokmem",
		BuildTime:   r.BuildTime,
		Files:       []File{{Path: ReleaseKeyPath, Body: r.GPGPublic, Mode: 0o644, Config: true}},
	}
}

// Paths of the nokmem-node package.
const (
	NodeDir        = "/opt/nokmem"
	NodeVerify     = "/opt/nokmem/bin/verify"
	NodeBundleDir  = "/opt/nokmem/bundle"
	NodeBundleLink = "/opt/nokmem/bundle/current.tar.gz"
	NodeConfigDir  = "/etc/nokmem"
	NodePubKey     = "/etc/nokmem/release.pub"
)

// Node is the nokmem-node package.
type Node struct {
	// VerifyVersion is verify's Go module version (a tag or a pseudo-version).
	VerifyVersion string
	Verify        []byte
	// BundleFile is the bundle tarball's file name, Bundle its bytes.
	BundleFile string
	Bundle     []byte
	// PubKey is the minisign public key the bundle is signed with.
	PubKey    []byte
	BuildTime time.Time
}

// Package returns the nokmem-node RPM: verify under /opt/nokmem/bin, the
// bundle under /opt/nokmem/bundle (current.tar.gz points at it) and the
// public key as /etc/nokmem/release.pub, the default --pubkey of verify
// install and run. It has no scriptlets: installing it migrates, installs
// and restarts nothing; `verify run --bundle /opt/nokmem/bundle/current.tar.gz`
// does, when the operator runs it.
func (n Node) Package() (*Package, error) {
	version, release, err := NodeVersion(n.VerifyVersion)
	if err != nil {
		return nil, err
	}
	if n.BundleFile == "" || path.Base(n.BundleFile) != n.BundleFile || n.BundleFile == path.Base(NodeBundleLink) {
		return nil, fmt.Errorf("%w nokmem-node: bundle file name %q", ErrInvalid, n.BundleFile)
	}
	return &Package{
		Name: "nokmem-node", Version: version, Release: release, Arch: "x86_64",
		Summary: "nokmem: verify, the signed node bundle and its public key",
		Description: "verify detects, installs, migrates and asserts the nokmem state of a Kubernetes node " +
			"(kmem accounting off for pod cgroups on RHEL/CentOS 7). This package only puts files in place; " +
			"run `/opt/nokmem/bin/verify run --bundle " + NodeBundleLink + "` to repair the node. Bundle: " + n.BundleFile,
		License:   "Apache-2.0",
		URL:       "https://github.com/nokmem/nokmem",
		Vendor:    "nokmem",
		BuildTime: n.BuildTime,
		Files: []File{
			{Path: NodeConfigDir, Dir: true, Mode: 0o755},
			{Path: NodePubKey, Body: n.PubKey, Mode: 0o644, Config: true},
			{Path: NodeDir, Dir: true, Mode: 0o755},
			{Path: path.Dir(NodeVerify), Dir: true, Mode: 0o755},
			{Path: NodeVerify, Body: n.Verify, Mode: 0o755},
			{Path: NodeBundleDir, Dir: true, Mode: 0o755},
			{Path: path.Join(NodeBundleDir, n.BundleFile), Body: n.Bundle, Mode: 0o644},
			{Path: NodeBundleLink, Link: n.BundleFile, Mode: 0o777},
		},
	}, nil
}

// NodeVersion maps verify's Go module version to an RPM version and
// release that sort the same way: a tag v1.2.3 is 1.2.3-1; a
// pseudo-version v0.0.0-20261204121706-9df5b1bb5e71 (no tag yet) is
// 0.0.0-0.20261204121706.git9df5b1bb5e71, below the tag that follows it;
// v1.2.4-0.20261204121706-9df5b1bb5e71 (commits after v1.2.3) is
// 1.2.3-1.20261204121706.git9df5b1bb5e71, above 1.2.3-1.
//
// A build from a tree with uncommitted changes (suffix -dirty) gets
// ".dirty" at the end of its release.
func NodeVersion(v string) (version, release string, err error) {
	if base, ok := strings.CutSuffix(v, "-dirty"); ok {
		version, release, err = NodeVersion(base)
		return version, release + ".dirty", err
	}
	if !semver.IsValid(v) || semver.Canonical(v) != v {
		return "", "", fmt.Errorf("%w nokmem-node: verify version %q is not a Go module version", ErrInvalid, v)
	}
	if !module.IsPseudoVersion(v) {
		if semver.Prerelease(v) != "" {
			// v1.2.3-rc.1 sorts below v1.2.3: RPM's ~ does that.
			return rpmVersion(strings.Replace(v, "-", "~", 1)), "1", nil
		}
		return rpmVersion(v), "1", nil
	}
	base, err := module.PseudoVersionBase(v)
	if err != nil {
		return "", "", fmt.Errorf("nokmem-node: verify version %q: %w", v, err)
	}
	ts, err := module.PseudoVersionTime(v)
	if err != nil {
		return "", "", fmt.Errorf("nokmem-node: verify version %q: %w", v, err)
	}
	rev, err := module.PseudoVersionRev(v)
	if err != nil {
		return "", "", fmt.Errorf("nokmem-node: verify version %q: %w", v, err)
	}
	stamp := ts.UTC().Format("20060102150405") + ".git" + rev
	if base == "" {
		return "0.0.0", "0." + stamp, nil
	}
	return rpmVersion(semver.Canonical(base)), "1." + stamp, nil
}
