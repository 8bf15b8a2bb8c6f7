package install

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/bundle/bundletest"
	"github.com/nokmem/nokmem/verify/affected"
	"github.com/nokmem/nokmem/verify/binary"
)

// Stand-ins of node binaries for the guard's cases.
const (
	// A kubelet that prints a nokmem version of another minor release.
	nokmemKubelet12015 = "Kubernetes v1.20.15+nokmem.5f2e1c1"
	// runc rc93 built with -tags nokmem: a stock version, but the binary
	// holds kmem_disabled.go's error (detect: unaffected).
	runc93 = "runc version 1.0.0-rc93\ncommit: 12644e614e25b05da6fd08a38ffa0cfe1903fdec"
	// Docker CE 18.06.3's docker-runc: rc5 plus the CVE-2019-5736 fix.
	dockerRunc18063 = "runc version 1.0.0-rc5+dev\ncommit: a592beb5bc4c4092b1b1bac971afed27687340c5\nspec: 1.0.0"
	runc95          = "runc version 1.0.0-rc95\ncommit: b9ee9c6314599f1b4a7f497e1f1f856fe433d3b7"
	runc114         = "runc version 1.1.4\ncommit: v1.1.4-0-g5fd4c4d1"
)

func taggedScript(version string) []byte {
	return append(script(version), []byte("# "+affected.KmemDisabledError+"\n")...)
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// refusedUnless reports whether err is a plan's refusal that override lifts.
func refusedUnless(err error, override Override) bool {
	var pe *PlanError
	return errors.As(err, &pe) && slices.ContainsFunc(pe.Refusals, func(r *Refusal) bool { return r.Override == override })
}

// keptPaths lists the paths a record kept.
func keptPaths(rec *Record) []string {
	var out []string
	for _, d := range rec.Kept {
		out = append(out, d.Path)
	}
	slices.Sort(out)
	return out
}

// TestNoSilentDowngrade is issue 21's "silent downgrades": each way the
// default bundle (kubelet v1.12.4, runc rc5) replaced a binary it does not
// fix, or changed the kubelet's minor version, exit 0. Each is now kept or
// refused, naming the flag that overrides, and a refusal changes nothing.
func TestNoSilentDowngrade(t *testing.T) {
	t.Run("nokmem kubelet v1.20.15 stand-in", func(t *testing.T) {
		n := newNode(t)
		n.put(t, "kubelet", script(nokmemKubelet12015), 0o755)
		o := n.open(t, bundletest.Make(t, bundleName, "", ""))
		before := n.snapshot(t)
		// Its sha256 is no published build: unknown (claims nokmem), refused.
		_, err := Install(o)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), binary.ClaimsNokmem) || !refusedUnless(err, OverrideUnknown) {
			t.Fatalf("Install: %v; want a refusal of the unknown (claims nokmem) kubelet", err)
		}
		sameSnapshot(t, "refused", before, n.snapshot(t))
		// --allow-unknown does not open the way to a minor version change.
		o.AllowUnknown = true
		if _, err = Install(o); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "would change the node's Kubernetes minor version") || !refusedUnless(err, OverrideVersionChange) {
			t.Fatalf("Install --allow-unknown: %v; want the minor-version refusal", err)
		}
		sameSnapshot(t, "refused", before, n.snapshot(t))
		// Known by its checksum (--known-sums): a nokmem build, kept.
		sum, _ := binary.FileSHA256(filepath.Join(n.bin, "kubelet"))
		o.AllowUnknown = false
		o.Binaries.KnownSums = map[string]string{sum: "kubelet"}
		rec, err := Install(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(n.bin, "kubelet")); got != string(script(nokmemKubelet12015)) {
			t.Errorf("the nokmem kubelet was replaced: %q", got)
		}
		if !slices.Contains(keptPaths(rec), filepath.Join(n.bin, "kubelet")) || !strings.Contains(rec.Kept[0].Reason, "already a nokmem build") {
			t.Errorf("kept %+v", rec.Kept)
		}
	})
	t.Run("nokmem-tagged runc rc93", func(t *testing.T) {
		n := newNode(t)
		n.put(t, "runc", taggedScript(runc93), 0o755)
		n.put(t, "docker-runc", taggedScript(runc93), 0o755)
		f := bundletest.Make(t, bundleName, "", "")
		rec, err := Install(n.open(t, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"runc", "docker-runc"} {
			if got := read(t, filepath.Join(n.bin, name)); got != string(taggedScript(runc93)) {
				t.Errorf("%s replaced by the bundle's rc5: %q", name, got)
			}
		}
		if want := []string{filepath.Join(n.bin, "docker-runc"), filepath.Join(n.bin, "runc")}; !slices.Equal(keptPaths(rec), want) || !strings.Contains(rec.Kept[0].Reason, "does not activate kmem") {
			t.Errorf("kept %+v, want runc and docker-runc with the reason", rec.Kept)
		}
		if want := []string{filepath.Join(n.bin, "kubelet")}; !slices.Equal(rec.Replaced, want) {
			t.Errorf("replaced %v, want %v", rec.Replaced, want)
		}
	})
	t.Run("upgrade over an earlier install", func(t *testing.T) {
		n := newNode(t)
		n.put(t, "kubelet", script("Kubernetes v1.20.15"), 0o755)
		n.put(t, "runc", script("runc version 1.0.0-rc92"), 0o755)
		must(t, os.Remove(filepath.Join(n.bin, "docker-runc")))
		a := bundletest.MakeVersions(t, "nokmem-v1.20.15-v1.0.0-rc92+nokmem.test", "#!/bin/sh\necho 'Kubernetes v1.20.15+nokmem.test'\n", "v1.20.15+nokmem.test",
			"#!/bin/sh\necho 'runc version 1.0.0-rc92+nokmem.test'\n", "v1.0.0-rc92+nokmem.test")
		if _, err := Install(n.open(t, a)); err != nil {
			t.Fatal(err)
		}
		before := n.snapshot(t)
		_, err := Install(n.open(t, bundletest.Make(t, bundleName, "", "")))
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "kubelet v1.20.15, the bundle's is v1.12.4+nokmem.test") || !strings.Contains(err.Error(), "runc v1.0.0-rc92, newer than the bundle's") {
			t.Fatalf("upgrade to the v1.12.4 bundle: %v; want the kubelet and runc refused", err)
		}
		sameSnapshot(t, "refused upgrade", before, n.snapshot(t))
	})
}

// TestOneBinaryInstall is issue 21's "layouts it cannot serve": kubelet
// v1.12.4 (affected) with runc 1.1.4 (unaffected) refused the whole
// transaction. Now the kubelet is installed alone and runc kept, said why;
// and the reverse. When every target is kept nothing is written.
func TestOneBinaryInstall(t *testing.T) {
	for _, tt := range []struct {
		name      string
		put       map[string]string
		replaced  []string
		keptWhy   string
		nothingAt bool
	}{
		{"kubelet only", map[string]string{"runc": runc114, "docker-runc": runc114}, []string{"kubelet"}, "runc 1.1.4 does not activate", false},
		{"runc only", map[string]string{"kubelet": "Kubernetes v1.22.0"}, []string{"docker-runc", "runc"}, "kubelet v1.22.0, which does not activate kmem", false},
		{"nothing", map[string]string{"kubelet": "Kubernetes v1.22.0", "runc": runc114, "docker-runc": runc114}, nil, "does not activate kmem", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			for name, v := range tt.put {
				n.put(t, name, script(v), 0o755)
			}
			before := n.snapshot(t)
			rec, err := Install(n.open(t, bundletest.Make(t, bundleName, "", "")))
			if err != nil {
				t.Fatal(err)
			}
			var replaced []string
			for _, p := range rec.Replaced {
				replaced = append(replaced, filepath.Base(p))
			}
			slices.Sort(replaced)
			if !slices.Equal(replaced, tt.replaced) || len(rec.Kept) != len(tt.put) || !strings.Contains(rec.Kept[0].Reason, "does not activate kmem") || rec.Kept[0].Override != OverrideVersionChange {
				t.Fatalf("replaced %v kept %+v; want %v replaced and the rest kept with the reason and the flag", replaced, rec.Kept, tt.replaced)
			}
			for name := range tt.put {
				if got := read(t, filepath.Join(n.bin, name)); got != string(script(tt.put[name])) {
					t.Errorf("%s changed: %q", name, got)
				}
			}
			if tt.nothingAt {
				sameSnapshot(t, "nothing to do", before, n.snapshot(t))
				return
			}
			if _, err := Rollback(n.state, false); err != nil {
				t.Fatal(err)
			}
			after := n.snapshot(t)
			for p, v := range before {
				if after[p] != v {
					t.Errorf("after rollback %s is %q, want %q", p, after[p], v)
				}
			}
		})
	}
}

// TestSymlinkedDockerRunc: docker-runc → runc was refused, and with
// --allow-symlink failed with "two targets resolve to …". Now it is one
// target: runc is installed once, the link is kept, and rollback restores
// runc under the same link.
func TestSymlinkedDockerRunc(t *testing.T) {
	n := newNode(t)
	link := filepath.Join(n.bin, "docker-runc")
	must(t, os.Remove(link))
	must(t, os.Symlink("runc", link))
	before := n.snapshot(t)
	f := bundletest.Make(t, bundleName, "", "")
	rec, err := Install(n.open(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(link); err != nil || l != "runc" {
		t.Errorf("docker-runc is now %q (%v), want the link to runc", l, err)
	}
	if got := read(t, link); got != bundletest.Runc {
		t.Errorf("runc through the link: %q", got)
	}
	if len(rec.Entries) != 2 || rec.Entry(filepath.Join(n.bin, "runc")) == nil || len(rec.Kept) != 1 || rec.Kept[0].Path != link || !strings.Contains(rec.Kept[0].Reason, "installed once") {
		t.Errorf("entries %+v kept %+v; want kubelet and runc, the link kept", rec.Entries, rec.Kept)
	}
	if _, err := Rollback(n.state, false); err != nil {
		t.Fatal(err)
	}
	after := n.snapshot(t)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("after rollback %s is %q, want %q", p, after[p], v)
		}
	}
	// A link to a file that is no other target still needs --allow-symlink.
	must(t, os.Remove(link))
	must(t, os.Symlink("/bin/true", link))
	if _, err := Install(n.open(t, f)); !errors.Is(err, ErrRefused) || !refusedUnless(err, OverrideSymlink) {
		t.Errorf("link to another file: %v", err)
	}
}

// TestSecurityDowngrade is issue 20's "nodes never lose a security fix":
// install must not put in place a runc with more known vulnerabilities
// than the one it replaces, naming both and the CVEs, unless
// --allow-security-downgrade.
func TestSecurityDowngrade(t *testing.T) {
	for _, tt := range []struct {
		name, version string
		// versionChange: the runc is one the bundle does not fix (kept unless
		// --allow-version-change), so the security rule is met only with it.
		versionChange bool
		want          []string
	}{
		{"rc5 over Docker CE 18.06.3's a592beb5", dockerRunc18063, false, []string{"v1.0.0-rc5 (commit a592beb5bc4c4092b1b1bac971afed27687340c5) with 13 known vulnerabilities", "v1.0.0-rc5+nokmem.test has 14", "would add CVE-2019-5736/NOKMEM-2019-0001;"}},
		{"rc5 over rc95", runc95, true, []string{"v1.0.0-rc95", "CVE-2019-5736", "CVE-2021-30465"}},
		{"rc5 over 1.1.4", runc114, true, []string{"v1.1.4", "CVE-2019-5736", "CVE-2022-29162"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			n.put(t, "docker-runc", script(tt.version), 0o755)
			o := n.open(t, bundletest.Make(t, bundleName, "", ""))
			o.AllowVersionChange = tt.versionChange
			before := n.snapshot(t)
			_, err := Install(o)
			if !errors.Is(err, ErrRefused) || !refusedUnless(err, OverrideSecurityDowngrade) || !strings.Contains(err.Error(), filepath.Join(n.bin, "docker-runc")) {
				t.Fatalf("Install: %v; want the security refusal", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal lacks %q: %v", w, err)
				}
			}
			sameSnapshot(t, "refused", before, n.snapshot(t))
			o.AllowSecurityDowngrade = true
			if _, err := Install(o); err != nil {
				t.Fatalf("with --allow-security-downgrade: %v", err)
			}
			if got := read(t, filepath.Join(n.bin, "docker-runc")); got != bundletest.Runc {
				t.Errorf("docker-runc not replaced with the flag: %q", got)
			}
		})
	}
}

// TestRecordTrust: the install record is checked like the migration
// journal. Garbage, a hand edit and a record of another state directory
// are refused by install and rollback with the file named; --abandon sets
// it aside and changes nothing else; install then starts afresh.
func TestRecordTrust(t *testing.T) {
	for _, tt := range []struct {
		name   string
		spoil  func(t *testing.T, n node, p string)
		reason string
	}{
		{"garbage", func(t *testing.T, n node, p string) { must(t, os.WriteFile(p, []byte("{not json"), 0o644)) }, "invalid character"},
		{"hand-edited", func(t *testing.T, n node, p string) {
			b := read(t, p)
			must(t, os.WriteFile(p, []byte(strings.Replace(b, `"state": "installed"`, `"state": "installing"`, 1)), 0o644))
		}, "checksum"},
		{"foreign", func(t *testing.T, n node, p string) {
			rec, err := ReadRecord(n.state)
			must(t, err)
			other := filepath.Join(t.TempDir(), "other-state")
			for i := range rec.Entries {
				rec.Entries[i].Backup = filepath.Join(other, BackupDir, filepath.Base(rec.Entries[i].Backup))
			}
			must(t, writeRecord(n.state, rec))
		}, "belongs to another state directory"},
		{"old format", func(t *testing.T, n node, p string) {
			must(t, os.WriteFile(p, []byte(`{"state":"installed","entries":[]}`), 0o644))
		}, "format version 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			f := bundletest.Make(t, bundleName, "", "")
			if _, err := Install(n.open(t, f)); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(n.state, RecordFile)
			tt.spoil(t, n, p)
			before := n.snapshot(t)
			_, ierr := Install(n.open(t, f))
			_, rerr := Rollback(n.state, false)
			_, gerr := GC(n.state, nil, false)
			for what, err := range map[string]error{"install": ierr, "rollback": rerr, "gc": gerr} {
				if !errors.Is(err, ErrUntrustedRecord) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("%s: %v; want a refusal naming %s and why (%q)", what, err, p, tt.reason)
				}
			}
			sameSnapshot(t, "refused", before, n.snapshot(t))
			res, err := Abandon(n.state)
			if err != nil || res.Nothing || !strings.HasPrefix(filepath.Base(res.SetAside), AbandonedPrefix) {
				t.Fatalf("abandon: %+v, %v", res, err)
			}
			after := n.snapshot(t)
			if after[res.SetAside] != before[p] {
				t.Errorf("the record set aside differs from the record")
			}
			delete(before, p)
			delete(after, res.SetAside)
			sameSnapshot(t, "abandon", before, after) // nothing else changed
			if _, err := Install(n.open(t, f)); err != nil {
				t.Errorf("install after --abandon: %v", err)
			}
		})
	}
}

// TestRollbackCreatedForeign (issue 25, 5): a binary install created
// (--create) and someone then replaced is someone else's: rollback refuses
// and keeps it, and only --force removes it.
func TestRollbackCreatedForeign(t *testing.T) {
	n := newNode(t)
	create := filepath.Join(n.bin, "docker-runc")
	must(t, os.Remove(create))
	f := bundletest.Make(t, bundleName, "", "")
	b, err := Open(f.Dir, f.Pub, false, t.TempDir())
	must(t, err)
	o := b.Options()
	o.StateDir = n.state
	o.Targets, err = b.Targets(nil, []string{n.bin}, []string{create})
	must(t, err)
	if _, err := Install(o); err != nil {
		t.Fatal(err)
	}
	n.put(t, "docker-runc", script("runc version 1.1.14"), 0o755)
	before := n.snapshot(t)
	_, err = Rollback(n.state, false)
	if !errors.Is(err, ErrForeignChange) || !strings.Contains(err.Error(), create) {
		t.Fatalf("rollback: %v; want a refusal naming %s", err, create)
	}
	sameSnapshot(t, "refused rollback", before, n.snapshot(t))
	if _, err := Rollback(n.state, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(create); !os.IsNotExist(err) {
		t.Errorf("forced rollback kept the created file: %v", err)
	}
}
