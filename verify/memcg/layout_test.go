package memcg_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/memcg"
)

func TestDriver(t *testing.T) {
	tests := []struct {
		dirs                   []string
		wantDriver, wantKubepo string
		wantErr                bool
	}{
		{[]string{"kubepods/burstable"}, memcg.DriverCgroupfs, "kubepods", false},
		{[]string{"kubepods.slice/kubepods-burstable.slice"}, memcg.DriverSystemd, "kubepods.slice", false},
		{[]string{"system.slice"}, memcg.DriverNone, "", false},
		{[]string{"kubepods", "kubepods.slice"}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.dirs, ","), func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			d, k, err := memcg.Hierarchy{Root: root}.Driver()
			if (err != nil) != tt.wantErr || d != tt.wantDriver || k != tt.wantKubepo {
				t.Fatalf("Driver = %q, %q, %v; want %q, %q, err %v", d, k, err, tt.wantDriver, tt.wantKubepo, tt.wantErr)
			}
		})
	}
}

// TestKmemActive: on the 3.10 simulator a cgroup is kmem-active unless its
// slabinfo reads EIO; a cgroup removed meanwhile is skipped, one without a
// slabinfo file counts as active (it cannot be told apart), and max stops
// the scan.
func TestKmemActive(t *testing.T) {
	_, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
	h := memcg.Hierarchy{Root: m.Memory}
	for _, rel := range []string{"kubepods", "kubepods/a", "kubepods/b", "off"} {
		if err := h.Mkdir(rel); err != nil {
			t.Fatal(err)
		}
	}
	// Activate kmem on kubepods/a only (a limit write, as runc does).
	if err := h.Write("kubepods/a", memcg.KmemLimit, "1"); err != nil {
		t.Fatal(err)
	}
	rels := []string{"kubepods", "kubepods/a", "kubepods/gone", "kubepods/b", "off"}
	got, err := memcg.KmemActive(h, rels, 0)
	if err != nil || !slices.Equal(got, []string{"kubepods/a"}) {
		t.Fatalf("KmemActive = %v, %v; want [kubepods/a]", got, err)
	}
	// A plain directory without slabinfo: exists, cannot be told apart.
	plain := t.TempDir()
	if err := os.Mkdir(filepath.Join(plain, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = memcg.KmemActive(memcg.Hierarchy{Root: plain}, []string{"x", "gone"}, 0)
	if err != nil || !slices.Equal(got, []string{"x"}) {
		t.Fatalf("without slabinfo: %v, %v; want [x]", got, err)
	}
	got, err = memcg.KmemActive(memcg.Hierarchy{Root: plain}, []string{"x", "x"}, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("max 1: %v, %v", got, err)
	}
}
