package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
)

// TestSemanticsOneVerdict: detect, migrate, assert and run take the
// kernel's kmem semantics from one decision (memcg.ReadNodeSemantics). The
// case where they used to disagree is a kmem-active 3.10-like tree under a
// 4.x release whose root memcg's memory.kmem.slabinfo reads EIO (only 3.x
// kernels fail that read): detect said unknown while migrate, which only
// checked the root's EIO, went ahead. Now every command gives the same
// verdict and the node is left as it was; the 3.10 release (everything
// goes ahead) is the control that shows the refusals come from the release.
func TestSemanticsOneVerdict(t *testing.T) {
	for _, tt := range []struct {
		name, release             string
		kind                      memcg.Kind
		detect, migrate, assert   int
		run                       int
		migrateSays, runStoppedAt string
	}{
		{"4.x release, root slabinfo EIO", "4.19.0-1.el7.x86_64", memcg.KindUnknown, int(detect.Unknown), exitProblem, exitProblem,
			acceptance.ExitCodes[acceptance.StepDetect], "the kernel's kmem semantics are unknown", acceptance.StepDetect},
		{"3.10 release", "3.10.0-1127.el7.x86_64", memcg.Kind310, int(detect.ProblemFound), 0, exitProblem,
			-1, "dry run: nothing was changed", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newMigratableNode(t, 2, 1)
			n.write("osrelease", tt.release+"\n", 0o644)
			before := n.state()

			out, stderr, code := n.verify(append([]string{"detect", "-o", "json"}, n.detectArgs()...)...)
			var d detect.Report
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("detect: %v\n%s%s", err, out, stderr)
			}
			if code != tt.detect || d.Semantics.Kind != tt.kind {
				t.Errorf("detect: exit %d, semantics %+v; want exit %d, %s", code, d.Semantics, tt.detect, tt.kind)
			}

			for _, dry := range []bool{true, false} {
				if !dry && tt.kind == memcg.Kind310 {
					continue // the control migrates in other tests
				}
				args := append([]string{"migrate", "--proc", n.path("proc")}, n.nokmemKubeletArgs()...)
				if dry {
					args = append(args, "--dry-run")
				}
				out, stderr, code := n.verify(args...)
				if code != tt.migrate || !strings.Contains(out+stderr, tt.migrateSays) {
					t.Errorf("%v: exit %d, want %d saying %q:\n%s%s", args, code, tt.migrate, tt.migrateSays, out, stderr)
				}
				if code != 0 && (!strings.Contains(stderr, d.Semantics.Reason) || !strings.Contains(stderr, "--force")) {
					t.Errorf("the refusal names neither detect's reason %q nor --force: %s", d.Semantics.Reason, stderr)
				}
			}
			if _, err := os.Stat(n.path("state/" + migrate.JournalFile)); err == nil {
				t.Error("a refused migration left a journal")
			}

			out, stderr, code = n.verify(append([]string{"assert", "-o", "json"}, "--os-release", n.path("osrelease"))...)
			if code != tt.assert || (tt.kind == memcg.KindUnknown) != strings.Contains(out, "cannot assert: the kernel's kmem semantics are unknown: "+d.Semantics.Reason) {
				t.Errorf("assert: exit %d, want %d:\n%s%s", code, tt.assert, out, stderr)
			}

			if tt.run >= 0 {
				out, stderr, code = n.verify(n.runArgs()...)
				var res acceptance.Result
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					t.Fatalf("run: %v\n%s%s", err, out, stderr)
				}
				if code != tt.run || res.StoppedAt != tt.runStoppedAt || !strings.Contains(res.Steps[0].Message, d.Semantics.Reason) || len(res.Changed) != 0 || n.serviceLog() != "" {
					t.Errorf("run: exit %d, stopped at %q, changed %v; want exit %d at %q, nothing changed:\n%s", code, res.StoppedAt, res.Changed, tt.run, tt.runStoppedAt, out)
				}
			}
			if after := n.state(); after != before {
				t.Errorf("the node changed:\nbefore %s\nafter %s", before, after)
			}
		})
	}
}
