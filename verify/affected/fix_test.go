package affected

import (
	"strings"
	"testing"
)

// TestFixChoice runs the choice of the fixing version on a matrix where
// more is buildable than today (what the other branches add): the lowest
// buildable version of the same line not older than the node's, else the
// newest; a planned one only when nothing is buildable; an unbuildable
// version says so and names the choice.
func TestFixChoice(t *testing.T) {
	m := &Matrix{
		Versions: []Entry{
			{Project: Kubernetes, Version: "v1.12.4", Status: StatusBuildable, Fix: FixPatch, RuncRev: "871ba2e58e24314d1fab4517a80410191ba5ad01"},
			{Project: Kubernetes, Version: "v1.12.8", Status: StatusBuildable, Fix: FixPatch, RuncRev: "871ba2e58e24314d1fab4517a80410191ba5ad01"},
			{Project: Kubernetes, Version: "v1.12.10", Status: StatusUnbuildable, Reason: "Azure SDK not served", Nearest: "v1.12.8"},
			{Project: Kubernetes, Version: "v1.15.12", Status: StatusPlanned, Fix: FixBuildTag, Reason: "no lock yet"},
			{Project: Runc, Version: "v1.0.0-rc5", Status: StatusBuildable, Fix: FixPatch},
			{Project: Runc, Version: "v1.0.0-rc10", Status: StatusBuildable, Fix: FixBuildTag},
			{Project: Runc, Version: "v1.0.0-rc92", Status: StatusBuildable, Fix: FixBuildTag},
		},
		Bundles: []Bundle{{Kubelet: "v1.12.8", Runc: "v1.0.0-rc5"}},
	}
	tests := []struct {
		v              Version
		fixVer, bundle string
		remedy         string
	}{
		{Version{Project: Kubernetes, Version: "v1.12.2"}, "v1.12.4", "", "kubelet:build v1.12.4"},
		{Version{Project: Kubernetes, Version: "v1.12.6"}, "v1.12.8", "nokmem-v1.12.8-v1.0.0-rc5", "install bundle nokmem-v1.12.8-v1.0.0-rc5"},
		{Version{Project: Kubernetes, Version: "v1.12.10"}, "v1.12.8", "nokmem-v1.12.8-v1.0.0-rc5", "v1.12.10 is not buildable (Azure SDK not served); install bundle"},
		{Version{Project: Kubernetes, Version: "v1.15.3"}, "v1.15.12", "", "no nokmem build yet: kubernetes v1.15.12 is planned (no lock yet)"},
		{Version{Project: Kubernetes, Version: "v1.16.1"}, "", "", "no nokmem version of kubelet v1.16 in the matrix yet"},
		{Version{Project: Runc, Version: "v1.0.0-rc3"}, "v1.0.0-rc5", "nokmem-v1.12.8-v1.0.0-rc5", "install bundle"},
		{Version{Project: Runc, Version: "v1.0.0-rc10", Dev: true}, "v1.0.0-rc92", "", "runc:build v1.0.0-rc92"},
		{Version{Project: Runc, Version: "v1.0.0-rc93"}, "v1.0.0-rc92", "", "runc:build v1.0.0-rc92"},
	}
	for _, tt := range tests {
		t.Run(tt.v.Project+"/"+tt.v.Version, func(t *testing.T) {
			f := classify(m, tt.v)
			if f.Verdict != Affected || f.FixVersion != tt.fixVer || f.Bundle != tt.bundle || !strings.Contains(f.Remedy, tt.remedy) {
				t.Errorf("got %s fix %q bundle %q remedy %q; want %q %q %q", f.Verdict, f.FixVersion, f.Bundle, f.Remedy, tt.fixVer, tt.bundle, tt.remedy)
			}
		})
	}
}

// TestMatrixVerdictFirst: a version the matrix lists as unaffected takes
// the matrix's reason (the ranges of knowledge.go only fill the gaps).
func TestMatrixVerdictFirst(t *testing.T) {
	m := &Matrix{Versions: []Entry{
		{Project: Kubernetes, Version: "v1.21.2", Status: StatusUnaffected, Reason: "matrix says so"},
		{Project: Runc, Version: "v1.0.0-rc95", Status: StatusUnaffected, Reason: "matrix says so too"},
	}}
	for _, v := range []Version{{Project: Kubernetes, Version: "v1.21.2"}, {Project: Runc, Version: "v1.0.0-rc95"}} {
		if f := classify(m, v); f.Verdict != Unaffected || !strings.Contains(f.Reason, "matrix says so") {
			t.Errorf("%s: %s %q", v.Version, f.Verdict, f.Reason)
		}
	}
}
