package assert_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/nokmem/nokmem/verify/assert"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/memcgsim"
)

func TestCheckOnSimulator(t *testing.T) {
	tests := []struct {
		name        string
		profile     memcgsim.Profile
		activate    string // cgroup whose kmem is activated after the tree is built
		strict      bool
		wantApplies bool
		wantPassed  bool
		wantOffend  []string
		wantProbe   bool
	}{
		{"clean tree", memcgsim.RHEL78, "", false, true, true, nil, false},
		{"active leaf", memcgsim.RHEL78, "kubepods/burstable/pod1", false, true, false, []string{"kubepods/burstable/pod1"}, false},
		{"active kubepods", memcgsim.RHELCSSID, "kubepods", false, true, false, []string{"kubepods"}, true},
		{"modern", memcgsim.Modern, "", false, false, true, nil, false},
		{"modern strict", memcgsim.Modern, "", true, false, false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, m := memcgsim.MountForTest(t, tt.profile)
			h := memcg.Hierarchy{Root: m.Memory}
			for _, d := range []string{"kubepods", "kubepods/burstable", "kubepods/burstable/pod1"} {
				if tt.activate == "kubepods" && d == "kubepods/burstable" {
					// Activate on kubepods before it has children (EBUSY otherwise).
					if err := h.Write("kubepods", memcg.KmemLimit, "1"); err != nil {
						t.Fatal(err)
					}
				}
				if err := h.Mkdir(d); err != nil {
					t.Fatal(err)
				}
			}
			if tt.activate != "" && tt.activate != "kubepods" {
				if err := h.Write(tt.activate, memcg.KmemLimit, "1"); err != nil {
					t.Fatal(err)
				}
			}
			r, err := assert.Check(h, assert.Options{Strict: tt.strict})
			if err != nil {
				t.Fatal(err)
			}
			if r.Applicable != tt.wantApplies || r.Passed != tt.wantPassed {
				t.Fatalf("result %+v", r)
			}
			var offenders []string
			probe := false
			for _, o := range r.Offenders {
				if o.Probe {
					probe = true
					continue
				}
				offenders = append(offenders, o.Cgroup)
			}
			if tt.activate == "kubepods" {
				tt.wantOffend = []string{"kubepods", "kubepods/burstable", "kubepods/burstable/pod1"}
			}
			if !slices.Equal(offenders, tt.wantOffend) || probe != tt.wantProbe {
				t.Errorf("offenders %v probe %v, want %v probe %v", offenders, probe, tt.wantOffend, tt.wantProbe)
			}
			if tt.wantApplies && r.Checked != 4 {
				t.Errorf("checked %d cgroups, want 3 and the probe child", r.Checked)
			}
			kids, err := h.Children("kubepods")
			if err != nil || len(kids) != 1 {
				t.Errorf("probe child left behind: %v, %v", kids, err)
			}
		})
	}
}

func TestCheckWithoutKubepods(t *testing.T) {
	_, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
	_, err := assert.Check(memcg.Hierarchy{Root: m.Memory}, assert.Options{})
	if !errors.Is(err, detect.ErrNoKubepods) {
		t.Fatalf("err = %v, want ErrNoKubepods", err)
	}
}
