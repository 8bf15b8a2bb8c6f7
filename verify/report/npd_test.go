package report_test

import (
	"testing"
	"unicode/utf8"

	"github.com/nokmem/nokmem/verify/affected"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/report"
)

// TestNPDLine: the node-problem-detector line leads with the number that
// matters and fits in 80 characters however much is wrong (the issue: the
// message was cut before the leaked-ID count).
func TestNPDLine(t *testing.T) {
	worst := &detect.Report{
		Kernel:       "3.10.0-1160.119.1.el7.x86_64",
		Semantics:    memcg.Semantics{Kind: memcg.Kind310},
		Semantics310: true,
		Kubepods:     "kubepods",
		KmemActive:   make([]string, 12345),
		Leaked:       detect.LeakEstimate{Available: true, IDs: 65000},
		Binaries: []binary.Binary{
			{Name: "kubelet", Kind: binary.KindStock}, {Name: "runc", Kind: binary.KindUnknown}, {Name: "docker-runc", Kind: binary.KindStock},
		},
		Leftovers: detect.Leftovers{
			TempTrees: []string{"nokmem-migrate-kubepods", "nokmem-migrate-old"},
			Journal:   &detect.JournalState{Phase: "moved-out", Unfinished: true},
			Install:   &detect.InstallState{SignatureSkipped: true},
		},
	}
	healthy := &detect.Report{Kernel: "3.10.0-1127.el7.x86_64", Semantics: memcg.Semantics{Kind: memcg.Kind310}, Semantics310: true,
		KubepodsCgroups: 443, KmemActive: []string{}, Leaked: detect.LeakEstimate{Available: true, IDs: 300, Exact: true}}
	modern := &detect.Report{Kernel: "6.18.44", Semantics: memcg.Semantics{Kind: memcg.KindModern}}
	fix := &affected.Finding{Verdict: affected.Affected, Bundle: "nokmem-v1.12.4-v1.0.0-rc5"}
	stock := *healthy
	stock.Binaries = []binary.Binary{{Name: "kubelet", Kind: binary.KindStock, Upstream: fix}, {Name: "runc", Kind: binary.KindStock, Upstream: fix}}
	twoFixes := stock
	twoFixes.Binaries = []binary.Binary{stock.Binaries[0], {Name: "docker-runc", Kind: binary.KindStock, Upstream: &affected.Finding{Verdict: affected.Affected, FixVersion: "v1.0.0-rc10"}}}
	unaffected := *healthy
	unaffected.Binaries = []binary.Binary{{Name: "kubelet", Kind: binary.KindStock, Upstream: &affected.Finding{Verdict: affected.Unaffected}}}
	tests := []struct {
		name   string
		r      *detect.Report
		status detect.Status
		want   string
	}{
		{"worst", worst, detect.ProblemFound, "12345 kmem-active cgroups, >=65000 leaked IDs, kubelet stock, +5 more"},
		{"healthy", healthy, detect.Healthy, "OK: 0 kmem-active of 443 kubepods cgroups, nokmem builds, 300 leaked IDs"},
		{"modern", modern, detect.Healthy, "OK: kernel 6.18.44 frees memcg IDs at rmdir, no leak"},
		{"stock, one bundle fixes both", &stock, detect.ProblemFound, "kubelet stock, 300 leaked IDs, runc stock, fix nokmem-v1.12.4-v1.0.0-rc5"},
		{"stock, no single bundle", &twoFixes, detect.ProblemFound, "kubelet stock, 300 leaked IDs, docker-runc stock"},
		{"stock but unaffected", &unaffected, detect.Healthy, "OK: 0 kmem-active of 443 kubepods cgroups, no affected builds, 300 leaked IDs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, msg := report.NPD(tt.r, nil)
			if st != tt.status || msg != tt.want {
				t.Errorf("NPD = %d %q, want %d %q", st, msg, tt.status, tt.want)
			}
			if n := utf8.RuneCountInString(msg); n > report.NPDMaxMessage {
				t.Errorf("%d characters: %q", n, msg)
			}
		})
	}
}
