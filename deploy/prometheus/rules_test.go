// Package prometheus holds the tests of the alert rules for the metrics of
// `verify detect --textfile` (nokmem-alerts.yml).
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nokmem/nokmem/internal/testenv"
)

// ruleFiles are the rule files; each <name>.yml has its unit tests in
// <name>.test.yml.
var ruleFiles = []string{"nokmem-alerts.yml", "nokmem-security-alerts.yml"}

// promtool validates the rule files and runs their unit tests: each alert
// fires on a bad node and stays quiet on a healthy and a modern one.
func TestPromtool(t *testing.T) {
	testenv.RequireCommand(t, "promtool")
	for _, f := range ruleFiles {
		for _, args := range [][]string{{"check", "rules", f}, {"test", "rules", strings.TrimSuffix(f, ".yml") + ".test.yml"}} {
			if out, err := exec.Command("promtool", args...).CombinedOutput(); err != nil {
				t.Errorf("promtool %v: %v\n%s", args, err, out)
			}
		}
	}
}

// nodeExporter are the metrics of node_exporter itself that the rules use.
var nodeExporter = map[string]bool{"node_textfile_mtime_seconds": true}

// awaited are metrics a rule may use before verify detect writes them
// (none today). Once detect writes one, the test below says so and the
// entry must go.
var awaited = map[string]bool{}

var (
	metricName = regexp.MustCompile(`\b(nokmem_[a-z0-9_]+|node_[a-z0-9_]+)\b`)
	written    = regexp.MustCompile(`Name: "(nokmem_[a-z0-9_]+)"`)
)

// Every metric an expression names is one verify detect writes (read from
// verify/report/detectmetrics.go), so a renamed
// metric cannot leave an alert that never fires; every alert has a
// severity, a summary and a description.
func TestRulesNameWrittenMetrics(t *testing.T) {
	known := map[string]bool{}
	for _, f := range []string{filepath.Join("report", "detectmetrics.go")} {
		src, err := os.ReadFile(filepath.Join("..", "..", "verify", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range written.FindAllStringSubmatch(string(src), -1) {
			known[m[1]] = true
		}
	}
	if len(known) < 5 {
		t.Fatalf("found only %v in verify's detect metrics", known)
	}
	used := map[string]bool{}
	alerts := 0
	for _, file := range ruleFiles {
		alerts += checkRules(t, file, known, used)
	}
	for _, want := range []string{"nokmem_kmem_active_cgroups", "nokmem_leaked_ids_estimate", "nokmem_binary_affected", "nokmem_memory_num_cgroups", "nokmem_binary_vulnerabilities",
		"nokmem_leftover_temp_trees", "nokmem_migrate_journal_unfinished", "nokmem_install_unfinished", "node_textfile_mtime_seconds"} {
		if !used[want] {
			t.Errorf("no alert on %s", want)
		}
	}
	t.Logf("%d alerts over %d metrics", alerts, len(used))
}

// checkRules checks the rules of file against the known metrics, marks the
// metrics they use, and returns how many alerts it has.
func checkRules(t *testing.T, file string, known, used map[string]bool) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	alerts := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			alerts++
			names := metricName.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: expression %q names no metric", r.Alert, r.Expr)
			}
			for _, n := range names {
				if known[n] && awaited[n] {
					t.Errorf("%s: verify detect writes %s now: drop it from awaited", r.Alert, n)
				}
				if !known[n] && !nodeExporter[n] && !awaited[n] {
					t.Errorf("%s: %s is not a metric verify detect writes (%v)", r.Alert, n, known)
				}
				used[n] = true
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: severity, summary and description are required", r.Alert)
			}
		}
	}
	return alerts
}
