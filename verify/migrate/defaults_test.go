package migrate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// defaultValued are the settings of the "defaults" layout that equal the
// kernel default (swappiness 60, oom_kill_disable 0) under a parent that
// is not at it, with what they must read after the migration.
var defaultValued = []struct{ rel, file, want string }{
	{"besteffort/pod1", memcg.Swappiness, "60"},
	{"besteffort/pod1/ctr", memcg.Swappiness, "60"},
	{"besteffort/pod2", memcg.Swappiness, "30"},
	{"podG/ctr1", memcg.OOMControl, "oom_kill_disable 0"},
	{"podG/ctr2", memcg.OOMControl, "oom_kill_disable 1"},
}

// TestDefaultValuedSettings: a child set back to the kernel default under
// a parent that is not at it (swappiness 60 under 30, oom_kill_disable 0
// under 1) keeps that value through the migration: the fresh child
// inherits its parent's value at mkdir, so the default must be written.
func TestDefaultValuedSettings(t *testing.T) {
	for _, tt := range []struct {
		p             memcgsim.Profile
		rootHierarchy bool
	}{{memcgsim.RHEL78, true}, {memcgsim.RHEL78, false}, {memcgsim.Modern, true}} {
		t.Run(fmt.Sprintf("%s/root-use_hierarchy=%v", tt.p, tt.rootHierarchy), func(t *testing.T) {
			n := newSimNode(t, tt.p, "defaults", tt.rootHierarchy)
			before := n.settings(t)
			for _, d := range defaultValued {
				if got, err := n.h.ReadString(kp(d.rel), d.file); err != nil || !strings.HasPrefix(got, d.want) {
					t.Fatalf("setup: %s %s = %q (%v), want %q", kp(d.rel), d.file, got, err, d.want)
				}
			}
			rep, err := n.engine(t, migrate.Hooks{}).Migrate()
			if err != nil {
				t.Fatal(err)
			}
			checksOK(t, rep)
			n.checkEnd(t, before, tt.p != memcgsim.Modern)
			for _, d := range defaultValued {
				if got, err := n.h.ReadString(kp(d.rel), d.file); err != nil || !strings.HasPrefix(got, d.want) {
					t.Errorf("after the migration %s %s = %q (%v), want %q", kp(d.rel), d.file, got, err, d.want)
				}
			}
		})
	}
}

// TestDefaultValuedSettingsRealKernel is TestDefaultValuedSettings on this
// machine's cgroup v1 memory hierarchy, with a sleeping process in every
// container cgroup: the real kernel's inheritance at mkdir, not the
// simulator's.
func TestDefaultValuedSettingsRealKernel(t *testing.T) {
	tr := memcgtest.Real(t)
	n := newFixture(t, tr)
	// Parents get their value before their children exist, as kubelet
	// creates them, so the children inherit it and are then set back.
	for _, c := range layouts["defaults"] {
		tr.Mkdir(kp(c.rel))
		for _, kv := range c.settings {
			if err := tr.H.Write(tr.Rel(kp(c.rel)), kv[0], kv[1]); err != nil {
				t.Fatal(err)
			}
		}
		if c.tasks > 0 {
			n.pids[tr.Sleep(kp(c.rel)).Pid] = c.rel
		}
	}
	before := map[string]string{}
	for _, d := range defaultValued {
		got, err := n.h.ReadString(kp(d.rel), d.file)
		if err != nil || !strings.HasPrefix(got, d.want) {
			t.Fatalf("setup: %s %s = %q (%v), want %q", kp(d.rel), d.file, got, err, d.want)
		}
		before[d.rel+" "+d.file] = got
	}
	rep, err := n.engine(t, migrate.Hooks{}).Migrate()
	if err != nil {
		t.Fatal(err)
	}
	checksOK(t, rep)
	n.checkReal(t)
	for _, d := range defaultValued {
		if got, err := n.h.ReadString(kp(d.rel), d.file); err != nil || got != before[d.rel+" "+d.file] {
			t.Errorf("after the migration %s %s = %q (%v), want %q", kp(d.rel), d.file, got, err, before[d.rel+" "+d.file])
		}
	}
}
