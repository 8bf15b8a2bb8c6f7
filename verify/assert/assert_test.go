package assert_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/assert"
	"github.com/nokmem/nokmem/verify/memcg"
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
			r, err := assert.Check(h, assert.Options{Strict: tt.strict, Probe: true, OSRelease: osRelease(t, tt.profile)})
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
	_, err := assert.Check(memcg.Hierarchy{Root: m.Memory}, assert.Options{OSRelease: osRelease(t, memcgsim.RHEL78)})
	if !errors.Is(err, memcg.ErrNoKubepods) {
		t.Fatalf("err = %v, want ErrNoKubepods", err)
	}
}

// osRelease writes the kernel release of profile p to a file.
func osRelease(t *testing.T, p memcgsim.Profile) string {
	t.Helper()
	release := "3.10.0-1127.el7.x86_64"
	if p == memcgsim.Modern {
		release = "6.18.44"
	}
	f := filepath.Join(t.TempDir(), "osrelease")
	if err := os.WriteFile(f, []byte(release+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCheckReadOnly is the "read-only is not": assert made and
// removed a probe cgroup under the memory root on every run, even with
// --kubepods elsewhere. Without Probe it must change nothing, on either
// kind of kernel; with Probe its only changes are one mkdir and one rmdir
// under the kubepods it checks.
func TestCheckReadOnly(t *testing.T) {
	for _, p := range []memcgsim.Profile{memcgsim.RHEL78, memcgsim.Modern} {
		t.Run(p.String(), func(t *testing.T) {
			sim, m := memcgsim.MountForTest(t, p)
			h := memcg.Hierarchy{Root: m.Memory}
			for _, d := range []string{"other", "other/kp", "other/kp/pod1"} {
				if err := h.Mkdir(d); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			var ops []string
			sim.SetHook(func(op memcgsim.Op) error {
				if op.Kind != memcgsim.OpRead {
					mu.Lock()
					ops = append(ops, string(op.Kind)+" "+op.Cgroup)
					mu.Unlock()
				}
				return nil
			})
			o := assert.Options{Kubepods: "other/kp", OSRelease: osRelease(t, p)}
			r, err := assert.Check(h, o)
			if err != nil || !r.Passed || r.Probe != "" {
				t.Fatalf("read-only check: %+v, %v", r, err)
			}
			if len(ops) != 0 {
				t.Fatalf("a check without Probe changed the hierarchy: %v", ops)
			}
			if p == memcgsim.Modern {
				return // not applicable: nothing to probe
			}
			o.Probe = true
			r, err = assert.Check(h, o)
			if err != nil || !r.Passed || !strings.HasPrefix(r.Probe, "other/kp/nokmem-assert-") || r.Checked != 3 {
				t.Fatalf("probe check: %+v, %v", r, err)
			}
			if len(ops) != 2 || ops[0] != "mkdir "+r.Probe || ops[1] != "rmdir "+r.Probe {
				t.Fatalf("probe changes %v, want mkdir and rmdir of %s", ops, r.Probe)
			}
		})
	}
}
