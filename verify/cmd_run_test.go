package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/report"
)

// TestRunReportsTimings: the kubelet downtime and the cleanup time are in
// the text output and in the JUnit suite properties.
func TestRunReportsTimings(t *testing.T) {
	res := &acceptance.Result{Start: time.Unix(0, 0), Outcome: acceptance.OutcomePassed,
		Steps:    []report.Step{{Name: acceptance.StepStart, Status: report.Passed}},
		Downtime: 1500 * time.Millisecond, DowntimeSeconds: 1.5, Cleanup: 250 * time.Millisecond, CleanupSeconds: 0.25}
	var buf bytes.Buffer
	printRun(&globalOptions{Stdout: &buf, StateDir: "/var/lib/nokmem"}, res)
	if !strings.Contains(buf.String(), "kubelet downtime: 1.5s") || !strings.Contains(buf.String(), "cleanup: 250ms") {
		t.Errorf("text output lacks the timings:\n%s", buf.String())
	}
	p := filepath.Join(t.TempDir(), "junit.xml")
	if err := writeRunJUnit(p, res); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc junit.Testsuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	props := map[string]string{}
	if len(doc.Suites) == 1 && doc.Suites[0].Properties != nil {
		for _, p := range *doc.Suites[0].Properties {
			props[p.Name] = p.Value
		}
	}
	if props["kubelet_downtime_seconds"] != "1.500" || props["cleanup_seconds"] != "0.250" {
		t.Errorf("junit properties %v:\n%s", props, data)
	}
}
