package ciworkflow

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestVulnWorkflow: the weekly workflow re-checks the vulnerability
// account with the pinned and the newest database (mage targets that
// exist), on a schedule, with pinned actions and read-only permissions.
func TestVulnWorkflow(t *testing.T) {
	wf, text := workflow(t, root, "vuln.yml")
	if wf.On == nil || !strings.Contains(text, "schedule:") || !strings.Contains(text, "cron:") {
		t.Error("vuln.yml has no schedule")
	}
	j := wf.Jobs["vuln"]
	if j == nil {
		t.Fatal("vuln.yml has no vuln job")
	}
	got := runs(j)
	for _, want := range []string{"go tool mage vuln", "go tool mage vulnAt latest"} {
		if !slices.Contains(got, want) {
			t.Errorf("vuln job runs %q, not %q", got, want)
		}
	}
	src, err := os.ReadFile(filepath.Join(root, "magefiles", "vuln.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"func Vuln(ctx context.Context) error", "func VulnAt(ctx context.Context, version string) error"} {
		if !strings.Contains(string(src), target) {
			t.Errorf("magefiles/vuln.go lacks %q", target)
		}
	}
	for _, p := range pinProblems(text) {
		t.Errorf("vuln.yml: %s", p)
	}
	if wf.Permissions == nil || len(writes(wf.Permissions)) > 0 {
		t.Errorf("vuln.yml must set read-only permissions, writes %v", writes(wf.Permissions))
	}
}
