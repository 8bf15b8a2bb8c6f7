package acceptance

import (
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
)

// TestDetectSummaryOnlyFilledFields: without the slabinfo probe the detect
// step's line has no "slabinfo ," with an empty value.
func TestDetectSummaryOnlyFilledFields(t *testing.T) {
	d := &detect.Report{Kernel: "3.10.0-1127.el7.x86_64", Driver: memcg.DriverCgroupfs, Kubepods: "kubepods", KubepodsCgroups: 12,
		KmemActive: []string{"kubepods"}, Leaked: detect.LeakEstimate{Available: true, IDs: 3, Exact: true}}
	got := detectSummary(d)
	for _, bad := range []string{"slabinfo", ", ,", "  "} {
		if strings.Contains(got, bad) {
			t.Errorf("summary %q has %q", got, bad)
		}
	}
	if want := "kernel 3.10.0-1127.el7.x86_64, driver cgroupfs, 12 cgroups under \"kubepods\", 1 kmem-active, 3 leaked IDs (exact)"; got != want {
		t.Errorf("summary\n %q, want\n %q", got, want)
	}
	d.Slabinfo = memcg.SlabinfoEIO
	if got := detectSummary(d); !strings.Contains(got, "slabinfo "+string(memcg.SlabinfoEIO)) {
		t.Errorf("summary %q lacks the probed slabinfo", got)
	}
}
