package testrun

import (
	"bytes"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	stream := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"hello\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"fail","Package":"p","Test":"TestC"}`,
		`{"Action":"fail","Package":"p"}`,
		`# q`,
		`{"Action":"fail","Package":"q"}`,
		`{"Action":"pass","Package":"r"}`,
	}, "\n")
	var out bytes.Buffer
	got, err := Read(strings.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	want := Tally{Passed: 1, Failed: 2, Skipped: 1, FailedNames: []string{"p.TestC", "q (package)"}}
	if got.String() != want.String() || strings.Join(got.FailedNames, ",") != strings.Join(want.FailedNames, ",") {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if out.String() != "hello\n# q\n" {
		t.Errorf("relayed output %q", out.String())
	}
}
