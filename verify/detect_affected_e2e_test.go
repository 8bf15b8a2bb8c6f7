package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/affected"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/report"
)

// versionScript is a stand-in binary that prints out for --version.
func versionScript(out string) string {
	return "#!/bin/sh\ncat <<'EOF'\n" + out + "\nEOF\n"
}

// TestDetectStockVersions: on a 3.10 node whose kubepods tree is clean,
// stock binaries are a problem only when their version activates kmem (or
// cannot be classified), and detect names the version's reason and the
// bundle or build that fixes it, in text, JSON, the textfile and the NPD
// line. The same affected binaries on a modern kernel are no problem. A
// runc or docker-runc with known vulnerabilities is a problem on any
// kernel: detect lists its CVEs with their fixed versions and the fix, and
// counts them in nokmem_binary_vulnerabilities.
func TestDetectStockVersions(t *testing.T) {
	const (
		runc144  = "runc version 1.4.4\nspec: 1.2.1" // no known vulnerability in the pinned database
		kube122  = "Kubernetes v1.22.0"
		docker06 = "runc version 1.0.0-rc5+dev\ncommit: 69663f0bd4b60df09991c08812a60108003fa340\nspec: 1.0.0"
	)
	tests := []struct {
		name          string
		profile       memcgsim.Profile
		bins          map[string]string
		want          int
		text, npd     []string // substrings of the text output and the NPD line
		metric        string   // a line of the textfile
		jsonVerdicts  map[string]string
		jsonFixBundle string
		tagged        string // this binary also holds kmem_disabled.go's error string
	}{
		{"v1.12.4 + rc5", memcgsim.RHEL78, map[string]string{"kubelet": "Kubernetes v1.12.4", "runc": "runc version 1.0.0-rc5\ncommit: 4fc53a81fb7c994640722ac585fa9ca548971871\nspec: 1.0.0"}, 1,
			[]string{"  upstream:        affected: kubelet v1.12.4 vendors runc 871ba2e5: MemoryGroup.Apply activates kmem on the cgroupfs driver (nokmem's kmem proof of this version)",
				"  fix:             install bundle nokmem-v1.12.4-v1.4.4 (verify install --bundle)",
				"PROBLEM:           kubelet at ", "affected: kubelet v1.12.4 vendors runc 871ba2e5", "verdict:           problem found (exit 1)"},
			[]string{"kubelet stock, ", "runc stock, runc "},
			`nokmem_binary_affected{fix="nokmem-v1.12.4-v1.4.4",name="kubelet",verdict="affected",version="v1.12.4"} 1`,
			map[string]string{"kubelet": "affected", "runc": "affected"}, "nokmem-v1.12.4-v1.4.4", ""},
		{"v1.22 + runc 1.4.4", memcgsim.RHEL78, map[string]string{"kubelet": kube122, "runc": runc144}, 0,
			[]string{"  upstream:        unaffected: kubelet v1.22.0 vendors runc v1.0.1 or later", "  upstream:        unaffected: runc v1.4.4", "verdict:           healthy (exit 0)"},
			[]string{"OK: ", "no affected builds"},
			`nokmem_binary_affected{fix="",name="runc",verdict="unaffected",version="v1.4.4"} 0`,
			map[string]string{"kubelet": "unaffected", "runc": "unaffected"}, "", ""},
		{"kubelet v1.21.1", memcgsim.RHEL78, map[string]string{"kubelet": "Kubernetes v1.21.1", "runc": runc144}, 1,
			[]string{"affected: kubelet v1.21.1 vendors runc v1.0.0-rc93", "fix:             no nokmem version of kubelet v1.21 in the matrix yet"},
			[]string{"kubelet stock"}, `nokmem_binary_affected{fix="",name="kubelet",verdict="affected",version="v1.21.1"} 1`,
			map[string]string{"kubelet": "affected", "runc": "unaffected"}, "", ""},
		{"kubelet v1.21.2", memcgsim.RHEL78, map[string]string{"kubelet": "Kubernetes v1.21.2", "runc": runc144}, 0,
			[]string{"unaffected: kubelet v1.21.2: vendors runc rc95"}, []string{"no affected builds"},
			`nokmem_binary_affected{fix="",name="kubelet",verdict="unaffected",version="v1.21.2"} 0`,
			map[string]string{"kubelet": "unaffected", "runc": "unaffected"}, "", ""},
		{"runc rc93", memcgsim.RHEL78, map[string]string{"kubelet": kube122, "runc": "runc version 1.0.0-rc93\ncommit: 12644e614e25b05da6fd08a38ffa0cfe1903fdec"}, 1,
			[]string{"affected: runc v1.0.0-rc93 (commit 12644e61)", "fix:             install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
			[]string{"runc stock"}, `nokmem_binary_affected{fix="nokmem-v1.12.4-v1.4.4",name="runc",verdict="affected",version="v1.0.0-rc93"} 1`,
			map[string]string{"kubelet": "unaffected", "runc": "affected"}, "nokmem-v1.12.4-v1.4.4", ""},
		{"runc rc95: unaffected by the leak; known CVEs", memcgsim.RHEL78, map[string]string{"kubelet": kube122, "runc": "runc version 1.0.0-rc95\ncommit: b9ee9c6314599f1b4a7f497e1f1f856fe433d3b7"}, 1,
			[]string{"unaffected: runc v1.0.0-rc95", "  vulnerability:   GO-2024-2491 CVE-2024-21626 fixed in v1.1.12: Container breakout", "PROBLEM:           runc at "}, []string{"runc ", " CVEs"},
			`nokmem_binary_affected{fix="",name="runc",verdict="unaffected",version="v1.0.0-rc95"} 0`,
			map[string]string{"kubelet": "unaffected", "runc": "unaffected"}, "", ""},
		{"docker-runc of Docker CE 18.06", memcgsim.RHEL78, map[string]string{"kubelet": kube122, "docker-runc": docker06}, 1,
			[]string{"affected: runc v1.0.0-rc5+dev (commit 69663f0b) as in Docker CE 18.06.0, Docker CE 18.06.1, Docker CE 18.06.2, Docker CE 18.09.0",
				"fix:             install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
			[]string{"docker-runc stock"}, `nokmem_binary_affected{fix="nokmem-v1.12.4-v1.4.4",name="docker-runc",verdict="affected",version="v1.0.0-rc5"} 1`,
			map[string]string{"kubelet": "unaffected", "docker-runc": "affected"}, "nokmem-v1.12.4-v1.4.4", ""},
		{"unrecognised kubelet", memcgsim.RHEL78, map[string]string{"kubelet": "my kubelet", "runc": runc144}, 1,
			[]string{`unknown (unrecognised version output "my kubelet")`}, []string{"kubelet unknown"},
			`nokmem_binary_affected{fix="",name="kubelet",verdict="unknown",version=""} 1`,
			map[string]string{"kubelet": "unknown", "runc": "unaffected"}, "", ""},
		{"runc rc93 built with -tags nokmem", memcgsim.RHEL78, map[string]string{"kubelet": kube122, "runc": "runc version 1.0.0-rc93\ncommit: 12644e614e25b05da6fd08a38ffa0cfe1903fdec"}, 1,
			[]string{"unaffected: built with -tags nokmem (the binary holds kmem_disabled.go's error"}, []string{" CVEs"},
			`nokmem_binary_affected{fix="",name="runc",verdict="unaffected",version="v1.0.0-rc93"} 0`,
			map[string]string{"kubelet": "unaffected", "runc": "unaffected"}, "", "runc"},
		{"v1.13.5 + Docker CE 18.06's docker-runc", memcgsim.RHEL78, map[string]string{"kubelet": "Kubernetes v1.13.5", "docker-runc": docker06}, 1,
			[]string{"  fix:             install bundle nokmem-v1.13.12-v1.4.4 (verify install --bundle)"},
			[]string{"kubelet stock", "docker-runc stock"},
			`nokmem_binary_affected{fix="nokmem-v1.13.12-v1.4.4",name="docker-runc",verdict="affected",version="v1.0.0-rc5"} 1`,
			map[string]string{"kubelet": "affected", "docker-runc": "affected"}, "nokmem-v1.13.12-v1.4.4", ""},
		{"affected on a modern kernel", memcgsim.Modern, map[string]string{"kubelet": "Kubernetes v1.12.4", "runc": runc144}, 0,
			[]string{"affected: kubelet v1.12.4", "verdict:           healthy (exit 0)"}, []string{"OK: kernel 6.18.44"},
			`nokmem_binary_affected{fix="nokmem-v1.12.4-v1.4.4",name="kubelet",verdict="affected",version="v1.12.4"} 1`,
			map[string]string{"kubelet": "affected", "runc": "unaffected"}, "nokmem-v1.12.4-v1.4.4", ""},
		{"stock rc5 on a modern kernel: its CVEs", memcgsim.Modern, map[string]string{"kubelet": kube122, "runc": "runc version 1.0.0-rc5\ncommit: 4fc53a81fb7c994640722ac585fa9ca548971871\nspec: 1.0.0"}, 1,
			[]string{"  vulnerability:   NOKMEM-2019-0001 CVE-2019-5736 fixed in v1.0.0-rc7: Container breakout by overwriting the host runc binary",
				"  vulnerability:   fix: replace it with the maintained runc of a nokmem bundle (verify install --bundle), or any runc v1.3.7+",
				"PROBLEM:           runc at ", "CVE-2019-5736", "verdict:           problem found (exit 1)"},
			[]string{"runc 14 CVEs"},
			`nokmem_binary_vulnerabilities{name="runc",path="RUNC",version="v1.0.0-rc5"} 14`,
			map[string]string{"kubelet": "unaffected", "runc": "affected"}, "nokmem-v1.12.4-v1.4.4", ""},
		{"Docker CE 18.06.3's docker-runc carries the CVE-2019-5736 fix", memcgsim.Modern, map[string]string{"kubelet": kube122, "docker-runc": "runc version 1.0.0-rc5+dev\ncommit: a592beb5bc4c4092b1b1bac971afed27687340c5\nspec: 1.0.0"}, 1,
			[]string{"PROBLEM:           docker-runc at "}, []string{"docker-runc 13 CVEs"},
			`nokmem_binary_vulnerabilities{name="docker-runc",path="DOCKER-RUNC",version="v1.0.0-rc5"} 13`,
			map[string]string{"kubelet": "unaffected", "docker-runc": "affected"}, "nokmem-v1.12.4-v1.4.4", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.profile)
			if err := n.H.Mkdir("kubepods"); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"bin/kubelet", "bin/runc"} {
				if err := os.Remove(n.path(f)); err != nil {
					t.Fatal(err)
				}
			}
			for name, out := range tt.bins {
				script := versionScript(out)
				if name == tt.tagged {
					script += "# " + affected.KmemDisabledError + "\n"
				}
				n.write("bin/"+name, script, 0o755)
			}
			prom := n.path("detect.prom")
			stdout, stderr, code := n.verify(append([]string{"detect", "--textfile", prom}, n.detectArgs()...)...)
			if code != tt.want || strings.Contains(stdout, "PROBLEM") != (tt.want == 1) {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.want, stdout, stderr)
			}
			for _, w := range tt.text {
				if !strings.Contains(stdout, w) {
					t.Errorf("text output lacks %q:\n%s", w, stdout)
				}
			}
			pb, err := os.ReadFile(prom)
			if err != nil {
				t.Fatal(err)
			}
			metric := strings.NewReplacer("RUNC", n.path("bin/runc"), "DOCKER-RUNC", n.path("bin/docker-runc")).Replace(tt.metric)
			if !strings.Contains(string(pb), "\n"+metric+"\n") {
				t.Errorf("textfile lacks %s:\n%s", metric, pb)
			}
			out, stderr, code := n.verify(append([]string{"detect", "-o", "json"}, n.detectArgs()...)...)
			var r detect.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil || code != tt.want {
				t.Fatalf("json: exit %d, %v\n%s", code, err, stderr)
			}
			got := map[string]string{}
			for _, b := range r.Binaries {
				got[b.Name] = b.Verdict()
				if b.Upstream != nil && b.Upstream.Verdict == "affected" && b.Upstream.Bundle != tt.jsonFixBundle {
					t.Errorf("%s: bundle %q, want %q", b.Name, b.Upstream.Bundle, tt.jsonFixBundle)
				}
			}
			if len(got) != len(tt.jsonVerdicts) {
				t.Errorf("verdicts %v, want %v", got, tt.jsonVerdicts)
			}
			for name, v := range tt.jsonVerdicts {
				if got[name] != v {
					t.Errorf("%s: verdict %q, want %q", name, got[name], v)
				}
			}
			line, _, npdCode := n.verify(append([]string{"detect", "--npd"}, n.detectArgs()...)...)
			line = strings.TrimSuffix(line, "\n")
			if npdCode != tt.want || utf8.RuneCountInString(line) > report.NPDMaxMessage {
				t.Errorf("npd: exit %d, want %d: %q", npdCode, tt.want, line)
			}
			for _, w := range tt.npd {
				if !strings.Contains(line, w) {
					t.Errorf("npd line %q lacks %q", line, w)
				}
			}
		})
	}
}
