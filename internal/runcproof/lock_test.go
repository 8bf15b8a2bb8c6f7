package runcproof

import (
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/patchset"
	"github.com/nokmem/nokmem/internal/patchset/guard"
	"github.com/nokmem/nokmem/internal/pins"
)

// TestLockAndPatches checks the inputs the two binaries are built from: the
// runc lock file (17 vendor.conf roots, the three non-semver tags as
// pseudo-versions, upstream's build settings) and the patch series, whose
// headers the patchset package must accept and whose hunk must guard the
// kmem activation with the kernel memory limit.
func TestLockAndPatches(t *testing.T) {
	l, err := pins.Load("../../vendor-pins", "runc", "v1.0.0-rc5")
	if err != nil {
		t.Fatal(err)
	}
	byRoot := map[string]pins.VendorEntry{}
	for _, v := range l.Vendor {
		byRoot[v.Root] = v
		if v.UpstreamRev == "" || v.Found == "" {
			t.Errorf("vendor %s: upstreamRev and found are required", v.Root)
		}
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"17 vendor.conf roots", len(l.Vendor) == 17},
		{"source", l.Source.String() == "github.com/opencontainers/runc@v1.0.0-rc5" && l.Source.H1 == "h1:rYjdzMDXVly2Av0RLs3nf/iVkaWh2UrDhuTdTT2KggQ="},
		{"commit", l.Source.Commit == "4fc53a81fb7c994640722ac585fa9ca548971871"},
		{"toolchain", l.Toolchain.String() == "golang.org/toolchain@v0.0.1-go1.26.11.linux-amd64"},
		{"go-systemd v14 as pseudo-version", byRoot["github.com/coreos/go-systemd"].Module.Version == "v0.0.0-20161114122254-48702e0da86b"},
		{"coreos/pkg v3 as pseudo-version", byRoot["github.com/coreos/pkg"].Module.Version == "v0.0.0-20160727233714-3ac0863d7acf"},
		{"godbus v3 as pseudo-version", byRoot["github.com/godbus/dbus"].Module.Version == "v0.0.0-20151105175453-c7fdd8b5cd55"},
		{"tags", slices.Equal(l.Build.Tags, []string{"seccomp", "apparmor", "selinux", "static_build"})},
		{"cgo static", l.Build.CGO && l.Build.Static},
		{"version stamp with marker", slices.Contains(l.Build.LDFlagsX, "main.version=1.0.0-rc5+{{.Marker}}")},
		{"commit stamp", slices.Contains(l.Build.LDFlagsX, "main.gitCommit={{.Commit}}")},
		{"one package, runc", len(l.Build.Packages) == 1 && l.Build.Packages[0].Output == "runc"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not as expected", c.name)
		}
	}

	set, err := patchset.Load("../../patches/runc/v1.0.0-rc5")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Patches) != 1 || !strings.Contains(set.Patches[0].Header.Upstream, "11222ee1") {
		t.Fatalf("patch series: %d patches, want the one kmem patch citing 11222ee1", len(set.Patches))
	}
	if f := set.Patches[0].Files; len(f) != 1 || f[0].NewName != "libcontainer/cgroups/fs/memory.go" {
		t.Errorf("kmem patch must change libcontainer/cgroups/fs/memory.go only")
	}
	// The patch's point, read from its hunks: the unconditional activation
	// becomes one guarded by a kernel memory limit.
	calls, err := guard.Calls(set.Patches[0].Files, "EnableKernelMemoryAccounting")
	if err != nil {
		t.Fatal(err)
	}
	const file = "libcontainer/cgroups/fs/memory.go"
	want := []guard.Call{
		{File: file, Hunk: 1, New: false, Cond: ""},
		{File: file, Hunk: 1, New: true, Cond: "d.config.Resources.KernelMemory != 0"},
	}
	if !slices.Equal(calls, want) {
		t.Errorf("%s: EnableKernelMemoryAccounting calls %v, want %v (unguarded before, guarded by a kernel memory limit after)", set.Patches[0].Name, calls, want)
	}
}

// TestMaintainedLock checks the default runc's lock: runc v1.4.4 from the
// module proxy, fix none naming the cgroupfs driver of
// github.com/opencontainers/cgroups (runc 1.3+ keeps its drivers there),
// upstream's static build tags, the marker in main.extraVersion, and no
// patch series.
func TestMaintainedLock(t *testing.T) {
	l, err := pins.Load("../../vendor-pins", "runc", maintainedVersion)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pins.LoadMatrix("../../vendor-pins")
	if err != nil {
		t.Fatal(err)
	}
	cgroups := l.GoMod.Module("github.com/opencontainers/cgroups", "v0.1.0")
	checks := []struct {
		name string
		ok   bool
	}{
		{"the matrix default", m.Default("runc") == maintainedVersion && !m.Entry("runc", maintainedVersion).Vulnerable},
		{"source", l.Source.String() == "github.com/opencontainers/runc@v1.4.4" && l.Source.H1 == "h1:mvhKTP28W0+S2JQ6RCZXRJzwvaipR4pQl81n5xBnGbA=" && l.Source.Kind == pins.SourceGoMod},
		{"fix none on the cgroups module's driver", l.Fix == pins.Fix{Kind: pins.FixNone, Requires: "vendor/github.com/opencontainers/cgroups/fs/memory.go"}},
		{"cgroups v0.1.0 in the graph with its zip", cgroups != nil && cgroups.H1 == "h1:6W05KiDvgj1yi/6D13SJCvYx8TAESz67szvHPxhfcrs="},
		{"upstream's tags, no nokmem", slices.Equal(l.Build.Tags, []string{"seccomp", "urfave_cli_no_docs"})},
		{"cgo static", l.Build.CGO && l.Build.Static},
		{"marker in extraVersion", slices.Contains(l.Build.LDFlagsX, "main.extraVersion=+{{.Marker}}")},
		{"toolchain", l.Toolchain.String() == "golang.org/toolchain@v0.0.1-go1.26.11.linux-amd64"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not as expected", c.name)
		}
	}
	if _, err := patchset.Load("../../patches/runc/" + maintainedVersion); err == nil {
		t.Errorf("patches/runc/%s exists: fix none takes no patch", maintainedVersion)
	}
	// Every runc before rc95 is marked vulnerable.
	for _, e := range m.Versions {
		if e.Project == "runc" && e.Version != maintainedVersion && !e.Vulnerable {
			t.Errorf("runc %s is not marked vulnerable", e.Version)
		}
	}
}
