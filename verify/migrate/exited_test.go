package migrate_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// TestExitedContainerRemovedDuringCriticalPart: with the kubelet stopped,
// the runtime still removes the cgroup of a container that exits (found
// with a real kubelet, internal/kubeletnode). The critical part accepts a
// planned cgroup that is gone when none of its processes is alive, and
// still refuses one whose process lives on elsewhere.
func TestExitedContainerRemovedDuringCriticalPart(t *testing.T) {
	const rel = "burstable/podA/ctr2"
	for _, tt := range []struct {
		name    string
		exit    bool // the container's process exits (else it is moved out)
		wantErr bool
	}{
		{"exited", true, false},
		{"moved out, alive", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newSimNode(t, memcgsim.RHEL78, "qos", true)
			var pids []int
			for p, r := range n.pids {
				if r == rel {
					pids = append(pids, p)
				}
			}
			if len(pids) == 0 {
				t.Fatalf("no process in %s", rel)
			}
			fresh := migrate.TempName("kubepods") + "/" + rel
			hooks := migrate.Hooks{AfterPhase: func(p migrate.Phase) error {
				if p != migrate.PhaseMoved {
					return nil
				}
				for _, pid := range pids {
					if tt.exit {
						n.must(t, n.sim.Exit(pid))
					} else {
						n.must(t, n.h.Write("", memcg.Procs, strconv.Itoa(pid)))
					}
				}
				n.must(t, n.sim.Rmdir(fresh))
				return nil
			}}
			rep, err := n.engine(t, hooks).Critical()
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), rel) {
					t.Fatalf("Critical: %v, want the missing cgroup %s named", err, rel)
				}
				return
			}
			if err != nil {
				t.Fatalf("Critical: %v", err)
			}
			if len(rep.Gone) != 1 || !strings.HasSuffix(rep.Gone[0], rel) {
				t.Errorf("gone %v, want %s", rep.Gone, rel)
			}
			for p, r := range n.pids {
				if r == rel {
					continue
				}
				if got, err := n.sim.TaskCgroup(p); err != nil || got != kp(r) {
					t.Errorf("pid %d in %s (%v), want %s", p, got, err, kp(r))
				}
			}
		})
	}
}
