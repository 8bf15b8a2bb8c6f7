package sealedjson

import (
	"encoding/json"
	"strings"
	"testing"
)

type doc struct {
	Name     string `json:"name"`
	Note     string `json:"note"`
	Checksum string `json:"checksum"`
}

// TestEncodeSum: the checksum Encode writes is the one Sum computes from
// the decoded file, a changed value changes it, and a string that holds
// the empty field's text does not confuse the encoding.
func TestEncodeSum(t *testing.T) {
	d := doc{Name: "kubelet", Note: `"checksum":""`}
	b, err := Encode(&d, &d.Checksum)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "}\n") || !strings.Contains(string(b), "\n  \"name\"") {
		t.Errorf("not indented with a final newline: %q", b)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != d || !strings.HasPrefix(d.Checksum, "sha256:") {
		t.Fatalf("read back %+v, wrote %+v", back, d)
	}
	sum, err := Sum(&back, &back.Checksum)
	if err != nil || sum != d.Checksum || back.Checksum != d.Checksum {
		t.Fatalf("Sum = %q, %v (field %q); Encode wrote %q", sum, err, back.Checksum, d.Checksum)
	}
	back.Name = "runc"
	if sum, _ := Sum(&back, &back.Checksum); sum == d.Checksum {
		t.Error("an edited value keeps its checksum")
	}
}

// TestEncodeNeedsTheField: a value without a "checksum" field is refused.
func TestEncodeNeedsTheField(t *testing.T) {
	v := struct {
		Sum string `json:"sum"`
	}{}
	if _, err := Encode(&v, &v.Sum); err == nil {
		t.Error("encoded a value without a checksum field")
	}
}
