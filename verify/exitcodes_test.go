package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/detect"
)

// TestExitCodeMarkdown pins the format docs/exit-codes.md is generated
// from: a header row, a separator row and one row per code.
func TestExitCodeMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := writeExitCodeTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(exitCodeTable())+2 || lines[0] != "| exit | name | commands | meaning |" || lines[1] != "|---|---|---|---|" {
		t.Fatalf("header:\n%s", b.String())
	}
	row := regexp.MustCompile(`^\| [0-9]+ \| [a-z-]+ \| [a-z]+ \| [^|]+ \|$`)
	for _, l := range lines[2:] {
		if !row.MatchString(l) {
			t.Errorf("row %q", l)
		}
	}
}

// TestDetectStatusExit: detect's verdicts exit with the table's ok, problem
// and unknown, and each command's help lists the table's codes for it.
func TestDetectStatusExit(t *testing.T) {
	for st, want := range map[detect.Status]string{detect.Healthy: "ok", detect.ProblemFound: "problem", detect.Unknown: "unknown"} {
		if got := exitName(statusExit(st)); got != want {
			t.Errorf("detect status %d exits %d (%q), want %q", st, statusExit(st), got, want)
		}
	}
	help := strings.Join(strings.Fields(exitHelp("run")), " ")
	for _, c := range exitCodeTable() {
		want := c.Commands == "all" || c.Commands == "run"
		if got := strings.Contains(help, " "+c.Name+",") || strings.Contains(help, " "+c.Name+"."); got != want {
			t.Errorf("run help lists %s: %v, want %v\n%s", c.Name, got, want, help)
		}
	}
}
