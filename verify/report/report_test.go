package report_test

import (
	"bytes"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"
	"github.com/nokmem/nokmem/verify/report"
)

func TestTextfile(t *testing.T) {
	tests := []struct {
		name    string
		metrics []report.Metric
		want    string
		wantErr bool
	}{
		{"families and labels", []report.Metric{
			{Name: "nokmem_kmem_active_cgroups", Help: "Kmem-active cgroups under kubepods.", Value: 3},
			{Name: "nokmem_binary_nokmem", Help: "1 when the binary is a nokmem build.", Labels: map[string]string{"path": `/usr/bin/"x"`, "name": "kubelet"}, Value: 1},
			{Name: "nokmem_binary_nokmem", Labels: map[string]string{"name": "runc", "path": "/usr/bin/runc"}, Value: 0},
			{Name: "nokmem_inf", Help: "a\nb", Value: math.Inf(1)},
		}, `# HELP nokmem_kmem_active_cgroups Kmem-active cgroups under kubepods.
# TYPE nokmem_kmem_active_cgroups gauge
nokmem_kmem_active_cgroups 3
# HELP nokmem_binary_nokmem 1 when the binary is a nokmem build.
# TYPE nokmem_binary_nokmem gauge
nokmem_binary_nokmem{name="kubelet",path="/usr/bin/\"x\""} 1
nokmem_binary_nokmem{name="runc",path="/usr/bin/runc"} 0
# HELP nokmem_inf a\nb
# TYPE nokmem_inf gauge
nokmem_inf +Inf
`, false},
		{"bad name", []report.Metric{{Name: "1bad"}}, "", true},
		{"bad label", []report.Metric{{Name: "ok", Labels: map[string]string{"a-b": "x"}}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := report.Textfile(tt.metrics)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestWriteTextfileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nokmem.prom")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteTextfile(p, []report.Metric{{Name: "a", Help: "h", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !strings.HasSuffix(string(b), "a 1\n") {
		t.Fatalf("content %q, %v", b, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// A failing write leaves the old file and no temporary file.
	if err := report.WriteTextfile(p, []report.Metric{{Name: "bad name"}}); err == nil {
		t.Fatal("bad metric accepted")
	}
	if err := report.WriteTextfile(filepath.Join(dir, "missing", "x.prom"), nil); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if b2, _ := os.ReadFile(p); !bytes.Equal(b, b2) {
		t.Fatal("failed write changed the file")
	}
}

func TestJUnitParses(t *testing.T) {
	steps := []report.Step{
		{Name: "detect", Status: report.Passed, Duration: 1500 * time.Millisecond, Details: "3.10 semantics"},
		{Name: "install", Status: report.Skipped, Message: "no --artifacts"},
		{Name: "migrate", Status: report.Failed, Duration: time.Second, Message: "rmdir kubepods: device or resource busy", Details: "run: verify migrate --resume"},
	}
	p := filepath.Join(t.TempDir(), "junit.xml")
	if err := report.WriteJUnit(p, "nokmem-acceptance", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), steps); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc junit.Testsuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, b)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("suites: %+v", doc.Suites)
	}
	s := doc.Suites[0]
	if s.Name != "nokmem-acceptance" || s.Tests != 3 || s.Failures != 1 || s.Skipped != 1 || doc.Failures != 1 || len(s.Testcases) != 3 {
		t.Fatalf("suite %+v", s)
	}
	if s.Time != "2.500" || s.Timestamp != "2026-01-02T03:04:05Z" {
		t.Fatalf("time %q timestamp %q", s.Time, s.Timestamp)
	}
	f := s.Testcases[2].Failure
	if f == nil || f.Message != steps[2].Message || !strings.Contains(f.Data, "--resume") {
		t.Fatalf("failure %+v", f)
	}
	if s.Testcases[1].Skipped == nil || s.Testcases[0].Failure != nil {
		t.Fatalf("testcases %+v", s.Testcases)
	}
}

func TestWriteNPD(t *testing.T) {
	tests := []struct{ in, want string }{
		{"OK: kubepods kmem off", "OK: kubepods kmem off\n"},
		{"two\nlines  here", "two lines here\n"},
		{strings.Repeat("x", 100), strings.Repeat("x", 79) + "…\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := report.WriteNPD(&b, tt.in); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("WriteNPD(%q) = %q, want %q", tt.in, b.String(), tt.want)
		}
	}
}
