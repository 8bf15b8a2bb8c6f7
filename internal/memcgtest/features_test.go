package memcgtest

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/memcg"
)

func TestProbeFeaturesReal(t *testing.T) {
	n := Real(t)
	// ProbeFeatures makes its scratch cgroup directly under the hierarchy's
	// root: the node's own cgroup.
	h, s := n.Scoped(), "probe"
	f, err := ProbeFeatures(h, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features: %+v", f)
	if !f.MovesCharge(0) {
		t.Errorf("move_charge_at_immigrate=0 rejected: %+v", f)
	}
	if ok, err := h.Exists(s); err != nil || ok {
		t.Errorf("probe cgroup left behind (exists=%v, %v)", ok, err)
	}
	if _, err := ProbeFeatures(h, "a/b"); err == nil {
		t.Error("ProbeFeatures accepted a nested scratch name")
	}
}

// TestProbeFeaturesSim runs the feature probe against the simulator profiles
// (docs/memcg-v1-semantics.md §1b, §1d, §1f).
func TestProbeFeaturesSim(t *testing.T) {
	tests := []struct {
		profile  memcgsim.Profile
		rootFlat bool // root use_hierarchy=0 (kernel default without systemd)
		want     Features
	}{
		{memcgsim.RHEL78, false, Features{MoveCharge: []int{0, 1, 2, 3}, Memsw: true, Slabinfo: memcg.SlabinfoEIO}},
		{memcgsim.RHEL78, true, Features{MoveCharge: []int{0, 1, 2, 3}, Memsw: true, Slabinfo: memcg.SlabinfoEIO, UseHierarchyZero: true}},
		{memcgsim.Modern, false, Features{MoveCharge: []int{0}, Memsw: true, Slabinfo: memcg.SlabinfoEmpty}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/root_flat=%v", tt.profile, tt.rootFlat), func(t *testing.T) {
			sim, m := memcgsim.MountForTest(t, tt.profile)
			h := memcg.Hierarchy{Root: m.Memory}
			if tt.rootFlat {
				if err := h.Write("", memcg.UseHierarchy, "0"); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ProbeFeatures(h, "probe")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ProbeFeatures = %+v, want %+v", got, tt.want)
			}
			if sim.Live() != 1 || len(sim.LeakedIDs()) != 0 {
				t.Errorf("probe left %d live cgroups, %d leaked IDs", sim.Live(), len(sim.LeakedIDs()))
			}
		})
	}
}
