package binary_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/binary"
)

// TestIdentifyVulns: Identify attaches the known vulnerabilities of a
// binary's version and commit: a stock rc5 has CVE-2019-5736 (the
// supplement) and names the fix, Docker CE 18.06.3's a592beb5 carries that
// fix, a nokmem rc5 build carries rc5's list, runc 1.4.4 has none, an
// unrecognised binary has no count; the JSON report carries them.
func TestIdentifyVulns(t *testing.T) {
	testenv.RequireCommand(t, "sh")
	for _, tt := range []struct {
		name, out     string
		version       string
		has, hasNot   string
		zero, unknown bool
	}{
		{"runc", "runc version 1.0.0-rc5\ncommit: 4fc53a81fb7c994640722ac585fa9ca548971871", "v1.0.0-rc5", "CVE-2019-5736", "", false, false},
		{"docker-runc", "runc version 1.0.0-rc5+dev\ncommit: a592beb5bc4c4092b1b1bac971afed27687340c5\nspec: 1.0.0", "v1.0.0-rc5", "CVE-2021-30465", "CVE-2019-5736", false, false},
		{"runc", "runc version 1.0.0-rc5+nokmem.1bb862bb7552\ncommit: 4fc53a81", "v1.0.0-rc5", "CVE-2019-5736", "", false, false},
		{"runc", "runc version 1.4.4", "v1.4.4", "", "", true, false},
		{"kubelet", "Kubernetes v1.12.4", "v1.12.4", "CVE-2024-10220", "", false, false},
		{"runc", "not a runc", "", "", "", true, true},
	} {
		t.Run(tt.name+"/"+tt.version, func(t *testing.T) {
			b, err := binary.Identify(tt.name, fakeBinary(t, t.TempDir(), tt.name, tt.out, 0), binary.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if (b.Vulnerabilities == nil) != tt.unknown || b.VulnVersion() != tt.version || (b.VulnCount() == 0) != tt.zero {
				t.Fatalf("vulnerabilities %+v", b.Vulnerabilities)
			}
			text := strings.Join(b.VulnLines(), "\n")
			if tt.has != "" && !strings.Contains(text, tt.has) || tt.hasNot != "" && strings.Contains(text, tt.hasNot) {
				t.Errorf("lines lack %q or have %q:\n%s", tt.has, tt.hasNot, text)
			}
			if tt.name != "kubelet" && !tt.zero && !strings.Contains(text, "fix: replace it with the maintained runc of a nokmem bundle") {
				t.Errorf("no fix line:\n%s", text)
			}
			data, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.unknown && !strings.Contains(string(data), `"vulnerabilities":{"database":"v0.0.0-`) {
				t.Errorf("JSON: %s", data)
			}
		})
	}
}
