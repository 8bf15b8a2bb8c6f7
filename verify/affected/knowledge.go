package affected

// Version knowledge that vendor-pins/matrix.yaml does not hold: which
// ranges of kubelet and runc releases activate kmem, and which runc commits
// Docker CE ships. Each fact names its upstream source.
//
// runc's libcontainer activates kernel-memory accounting on every memory
// cgroup it creates through the cgroupfs driver (MemoryGroup.Apply calls
// EnableKernelMemoryAccounting) since commit fe898e7862f9 ("Fix kmem
// accouting when use with cgroupsPath", opencontainers/runc#1350, 2017-02,
// first released in v1.0.0-rc3); v1.0.0-rc2 already set a kmem limit when
// none was configured (opencontainers/runc#1083, fixed by #1095 after rc2).
// Commit 6a2c1559 ("libcontainer: ability to compile without kmem",
// opencontainers/runc#1921, 2018-11, first released in v1.0.0-rc6) added
// kmem_disabled.go: from then on `-tags nokmem` is the fix, before it a
// source patch. opencontainers/runc#2840 ("Ignore kernel memory settings",
// 2021-03, after v1.0.0-rc93) removed the activation: v1.0.0-rc94 and
// later are unaffected. kubernetes/kubernetes#61937 is the kubelet report
// (kubelet 1.9 on CentOS 7).

// kubeletLine is a range of kubelet releases [From, Below) and the runc
// their Godeps/Godeps.json (up to 1.14) or go.mod (from 1.15) pins.
type kubeletLine struct {
	From, Below string // Below "" = no upper bound
	Runc        string // the vendored runc, as shown to the user
	Fix         string // FixPatch, FixBuildTag, or "" when unaffected
}

// kubeletLines cover every kubelet from v1.9.0 on, in order. Sources: the
// github.com/opencontainers/runc pin of kubernetes/kubernetes
// Godeps/Godeps.json (v1.12.4, v1.12.8, v1.12.10, v1.13.0-v1.13.12,
// v1.14.0, v1.14.10) and go.mod (v1.15.12, v1.16.15, v1.17.17, v1.18.19,
// v1.19.0-v1.19.16, v1.20.0-v1.20.15, v1.21.0-v1.21.14, v1.22.0).
var kubeletLines = []kubeletLine{
	{"v1.9.0", "v1.12.4", "a runc with fe898e78 and without 6a2c1559", FixPatch},
	{"v1.12.4", "v1.14.0", "runc 871ba2e5", FixPatch},
	{"v1.14.0", "v1.16.0", "runc f000fe11", FixBuildTag},
	{"v1.16.0", "v1.17.0", "runc 6cc51588", FixBuildTag},
	{"v1.17.0", "v1.18.0", "runc v1.0.0-rc9", FixBuildTag},
	{"v1.18.0", "v1.19.0", "runc v1.0.0-rc10", FixBuildTag},
	{"v1.19.0", "v1.20.0", "runc 819fcc68 (v1.0.0-rc91)", FixBuildTag},
	{"v1.20.0", "v1.21.0", "runc v1.0.0-rc92", FixBuildTag},
	{"v1.21.0", "v1.21.2", "runc v1.0.0-rc93", FixBuildTag},
	{"v1.21.2", "v1.21.5", "runc v1.0.0-rc95", ""},
	{"v1.21.5", "v1.22.0", "runc v1.0.2", ""},
	{"v1.22.0", "", "runc v1.0.1 or later", ""},
}

// runcLine is a range of runc releases [From, Below).
type runcLine struct {
	From, Below string
	Fix         string // "" when unaffected
	Why         string
}

// runcLines cover every runc from v1.0.0-rc2 on, in order (see the
// package comment for the commits).
var runcLines = []runcLine{
	{"v1.0.0-rc2", "v1.0.0-rc6", FixPatch, "MemoryGroup.Apply activates kmem; no kmem_disabled.go (runc 6a2c1559 came after rc5)"},
	{"v1.0.0-rc6", "v1.0.0-rc94", FixBuildTag, "MemoryGroup.Apply activates kmem unless built with -tags nokmem (kmem_disabled.go, runc 6a2c1559)"},
	{"v1.0.0-rc94", "", "", "runc ignores kernel memory settings since opencontainers/runc#2840 (rc94)"},
}

// lastAffectedRunc is the last affected release: its +dev builds may or
// may not have opencontainers/runc#2840.
const lastAffectedRunc = "v1.0.0-rc93"

// dockerCommit is a runc commit that Docker CE releases ship as
// docker-runc, from RUNC_COMMIT in docker/docker-ce's
// components/engine/hack/dockerfile/install/runc.installer at each
// release tag. The two 18.06 commits are in vendor-pins/matrix.yaml
// (ships:); these are the 18.09 ones. Docker CE 18.09's RPM and DEB
// packages take runc from the containerd.io package instead, which prints
// its own commit.
type dockerCommit struct {
	Commit string
	// Base is the runc release the commit follows (for the range and the fix kind).
	Base  string
	Ships []string
}

var dockerCommits = []dockerCommit{
	{"96ec2177ae841256168fcf76954f7177af9446eb", "v1.0.0-rc6", []string{"Docker CE 18.09.1", "Docker CE 18.09.2"}},
	{"6635b4f0c6af3810594d2770f662f34ddc15b40d", "v1.0.0-rc6", []string{"Docker CE 18.09.3"}},
	{"2b18fe1d885ee5083ef9f0838fee39b62d653e30", "v1.0.0-rc6", []string{"Docker CE 18.09.4", "Docker CE 18.09.5", "Docker CE 18.09.6"}},
	{"425e105d5a03fabd737a126ad93d62a9eeede87f", "v1.0.0-rc8", []string{"Docker CE 18.09.7", "Docker CE 18.09.8", "Docker CE 18.09.9"}},
}
