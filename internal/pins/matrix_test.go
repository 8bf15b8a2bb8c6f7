package pins

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommittedMatrix(t *testing.T) {
	m, err := LoadMatrix(repoPins)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Default("kubernetes"); got != "v1.12.4" {
		t.Errorf("default kubelet %q, want v1.12.4", got)
	}
	if got := m.Default("runc"); got != "v1.4.4" {
		t.Errorf("default runc %q, want the maintained v1.4.4", got)
	}
	// Every runc before rc95 has known container escapes (CVE-2021-30465,
	// CVE-2024-21626, ...): marked vulnerable, unlike the default.
	for _, e := range m.Versions {
		if e.Project == "runc" && e.Vulnerable != (e.Version != "v1.4.4") {
			t.Errorf("runc %s: vulnerable=%v", e.Version, e.Vulnerable)
		}
	}
	// Every lock file is in the matrix as buildable or locked, with the
	// lock's fix kind; a buildable version has committed checksums, a
	// locked one none yet.
	for _, project := range []string{"kubernetes", "runc"} {
		for _, v := range Known(repoPins, project) {
			e := m.Entry(project, v)
			if e == nil || (e.Status != StatusBuildable && e.Status != StatusLocked) {
				t.Errorf("%s %s has a lock file but is not buildable or locked in %s", project, v, MatrixFile)
				continue
			}
			_, err := os.Stat(filepath.Join(repoPins, project, v+".CHECKSUMS"))
			if (e.Status == StatusBuildable) != (err == nil) {
				t.Errorf("%s %s is %s, and its .CHECKSUMS: %v (buildable needs one, locked has none)", project, v, e.Status, err)
			}
		}
	}
}

// v1.12.10 is refused with the reason and the nearest buildable version,
// whether or not someone writes a lock file for it.
func TestLoadRefusesUnbuildable(t *testing.T) {
	_, err := Load(repoPins, "kubernetes", "v1.12.10")
	if !errors.Is(err, ErrUnbuildable) {
		t.Fatalf("got %v, want ErrUnbuildable", err)
	}
	for _, want := range []string{"kubernetes v1.12.10", "azure-sdk-for-go v19.2.0", "the nearest buildable version is v1.12.8"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	_, err = Load(repoPins, "kubernetes", "v1.21.2")
	if !errors.Is(err, ErrUnbuildable) || !strings.Contains(err.Error(), "unaffected, nothing to fix") {
		t.Errorf("unaffected v1.21.2: got %v", err)
	}
}

const goodMatrix = `versions:
  - {project: demo, version: v1.0.0, status: buildable, source: godeps, fix: patch, default: true}
  - {project: demo, version: v1.0.1, status: unbuildable, source: godeps, reason: "dep gone", nearest: v1.0.0}
  - {project: demo, version: v1.1.0, status: planned, source: gomod, fix: buildtag, reason: "no lock yet"}
  - {project: demo, version: v2.0.0, status: unaffected, source: gomod, reason: "no kmem"}
`

func TestMatrixBadInput(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		lock    func(string) string // edits the demo v1.0.0 lock
		wantErr string              // empty: loads fine
	}{
		{"good", nil, nil, ""},
		{"unbuildable without nearest", func(s string) string { return strings.Replace(s, ", nearest: v1.0.0", "", 1) }, nil, "demo v1.0.1: an unbuildable version needs a reason and the nearest"},
		{"nearest not in the matrix", func(s string) string { return strings.Replace(s, "nearest: v1.0.0", "nearest: v0.9.0", 1) }, nil, "demo v1.0.1: nearest v0.9.0 is not a buildable, locked or planned version"},
		{"nearest unaffected", func(s string) string { return strings.Replace(s, "nearest: v1.0.0", "nearest: v2.0.0", 1) }, nil, "nearest v2.0.0 is not a buildable"},
		{"unknown status", func(s string) string { return strings.Replace(s, "status: planned", "status: maybe", 1) }, nil, `demo v1.1.0: status "maybe"`},
		{"unknown source", func(s string) string { return strings.Replace(s, "source: gomod, fix", "source: glide, fix", 1) }, nil, `demo v1.1.0: source "glide"`},
		{"buildable without fix", func(s string) string { return strings.Replace(s, ", fix: patch", "", 1) }, nil, `demo v1.0.0: fix "" is not one of [patch buildtag none]`},
		{"listed twice", func(s string) string {
			return s + "  - {project: demo, version: v2.0.0, status: unaffected, source: gomod, reason: x}\n"
		}, nil, "demo v2.0.0: listed twice"},
		{"planned default", func(s string) string {
			return strings.Replace(s, "source: gomod, fix: buildtag,", "source: gomod, fix: buildtag, default: true,", 1)
		}, nil, "demo v1.1.0: the default version must be buildable"},
		{"buildable without a lock", func(s string) string { return strings.Replace(s, "status: planned", "status: buildable", 1) }, nil, "demo v1.1.0 is buildable: demo v1.1.0: unknown version"},
		{"fix kind differs from the lock", func(s string) string { return strings.Replace(s, "fix: patch", "fix: buildtag", 1) }, nil, "demo v1.0.0: matrix says fix buildtag, the lock says patch"},
		{"invalid lock", nil, func(s string) string { return strings.Replace(s, "fix:\n  kind: patch\n", "", 1) }, "demo v1.0.0 is buildable: "},
		{"locked without a lock", func(s string) string { return strings.Replace(s, "status: planned", "status: locked", 1) }, nil, "demo v1.1.0 is locked: demo v1.1.0: unknown version"},
		{"locked without a reason", func(s string) string {
			return strings.Replace(s, "status: buildable, source: godeps, fix: patch, default: true", "status: locked, source: godeps, fix: patch", 1)
		}, nil, "demo v1.0.0: a locked version needs a reason"},
		{"bundle of a locked version", func(s string) string {
			return strings.Replace(s, "status: buildable, source: godeps, fix: patch, default: true", "status: locked, source: godeps, fix: patch, reason: r", 1) +
				"bundles:\n  - {kubelet: v1.0.0, runc: v1.0.0}\n"
		}, nil, "kubernetes v1.0.0 is not a buildable version"},
		{"bundle of a planned version", func(s string) string { return s + "bundles:\n  - {kubelet: v1.0.0, runc: v1.0.0}\n" }, nil, "bundle kubelet v1.0.0 + runc v1.0.0: kubernetes v1.0.0 is not a buildable version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "demo"), 0o755); err != nil {
				t.Fatal(err)
			}
			m, l := goodMatrix, goodLock
			if tc.edit != nil {
				m = tc.edit(m)
			}
			if tc.lock != nil {
				l = tc.lock(l)
			}
			if err := os.WriteFile(filepath.Join(dir, MatrixFile), []byte(m), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(Path(dir, "demo", "v1.0.0"), []byte(l), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadMatrix(dir)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantErr == "" {
				if _, err := Load(dir, "demo", "v1.0.1"); !errors.Is(err, ErrUnbuildable) || !strings.Contains(err.Error(), "dep gone; the nearest buildable version is v1.0.0") {
					t.Errorf("Load(v1.0.1) = %v, want it refused with the reason and v1.0.0", err)
				}
				if _, err := Load(dir, "demo", "v1.0.0"); err != nil {
					t.Errorf("Load(v1.0.0): %v", err)
				}
			}
		})
	}
}

// A vulnerable version is never the default, and a bundle pairs a
// vulnerable runc only when an engine ships it (users who must match that
// engine exactly); every other pair takes the maintained runc.
func TestMatrixVulnerable(t *testing.T) {
	base := func() *Matrix {
		return &Matrix{
			Versions: []MatrixEntry{
				{Project: "kubernetes", Version: "v1.12.4", Status: StatusBuildable, Source: SourceGodeps, Fix: FixPatch, Default: true},
				{Project: "runc", Version: "v1.4.4", Status: StatusBuildable, Source: SourceGoMod, Fix: FixNone, Default: true},
				{Project: "runc", Version: "v1.0.0-rc5", Status: StatusBuildable, Source: SourceVendorConf, Fix: FixPatch, Vulnerable: true},
				{Project: "runc", Version: "v1.0.0-rc5.0.20180309195151-69663f0bd4b6", Status: StatusBuildable, Source: SourceVendorConf, Fix: FixPatch, Vulnerable: true, Ships: []string{"Docker CE 18.06.0"}},
			},
			Bundles: []Bundle{{Kubelet: "v1.12.4", Runc: "v1.4.4"}, {Kubelet: "v1.12.4", Runc: "v1.0.0-rc5.0.20180309195151-69663f0bd4b6"}},
		}
	}
	if err := base().validate(); err != nil {
		t.Fatalf("good matrix: %v", err)
	}
	m := base()
	if m.Vulnerable(m.Bundles[0]) || !m.Vulnerable(m.Bundles[1]) {
		t.Errorf("Vulnerable: %v %v, want false true", m.Vulnerable(m.Bundles[0]), m.Vulnerable(m.Bundles[1]))
	}
	tests := []struct {
		name    string
		edit    func(*Matrix)
		wantErr string
	}{
		{"vulnerable default", func(m *Matrix) { m.Versions[1].Vulnerable = true }, "runc v1.4.4: the default version must not be vulnerable"},
		{"vulnerable runc no engine ships", func(m *Matrix) { m.Bundles = append(m.Bundles, Bundle{Kubelet: "v1.12.4", Runc: "v1.0.0-rc5"}) },
			"bundle kubelet v1.12.4 + runc v1.0.0-rc5: runc v1.0.0-rc5 is vulnerable and no engine ships it (ships:), so the pair must use the default runc v1.4.4"},
		{"fix none", func(m *Matrix) { m.Versions[1].Fix = "nothing" }, `runc v1.4.4: fix "nothing" is not one of`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.edit(m)
			if err := m.validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// Loading the matrix again parses a lock only when its file changed: a
// lock broken after a successful load is still caught, whether it was
// rewritten in place or replaced by a new file.
func TestMatrixRechecksChangedLock(t *testing.T) {
	for _, how := range []string{"in place", "by rename"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "demo"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, MatrixFile), []byte(goodMatrix), 0o644); err != nil {
				t.Fatal(err)
			}
			lock := Path(dir, "demo", "v1.0.0")
			if err := os.WriteFile(lock, []byte(goodLock), 0o644); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if _, err := LoadMatrix(dir); err != nil {
					t.Fatalf("load %d: %v", i, err)
				}
			}
			broken := []byte(strings.Replace(goodLock, "fix:\n  kind: patch\n", "", 1))
			if how == "in place" {
				err := os.WriteFile(lock, broken, 0o644)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.WriteFile(lock+".new", broken, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(lock+".new", lock); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadMatrix(dir)
			if err == nil || !strings.Contains(err.Error(), "demo v1.0.0 is buildable: ") {
				t.Fatalf("after the lock changed: %v, want the broken lock named", err)
			}
		})
	}
}
