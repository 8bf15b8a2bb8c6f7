package guard

import (
	"slices"
	"strings"
	"testing"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

func TestConditions(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"guarded", "\tif n != 0 {\n\t\tf(x)\n\t}\n", []string{"n != 0"}},
		{"guard with init", "if v := g(); v >= 0 {\n\tf()\n}\n", []string{"v := g(); v >= 0"}},
		{"call in the header of an inner if", "if k.M != 0 {\n\tif err := f(p); err != nil {\n\t\treturn err\n\t}\n}\n", []string{"k.M != 0"}},
		{"sibling block closed before the call", "if a {\n\tb()\n}\nf()\n", []string{""}},
		{"block opens before the fragment", "\t\tx := 1\n\t\tf(x)\n\t}\n", []string{""}},
		{"for block", "for _, c := range cs {\n\tf(c)\n}\n", []string{""}},
		{"else block", "if a {\n} else {\n\tf()\n}\n", []string{""}},
		{"else if", "if a {\n} else if b[0] == 1 {\n\tf()\n}\n", []string{"b[0] == 1"}},
		{"statement before the block is not its header", "if a {\n}\ng := func() {\n\tf()\n}\n", []string{""}},
		{"comment mentioning f( is not a call", "// f(x) here\nif a {\n\tf()\n}\n", []string{"a"}},
		{"f not called", "fn := f\n", nil},
		{"two calls", "f()\nif c {\n\tf()\n}\n", []string{"", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Conditions(tt.src, "f")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Conditions = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := Conditions("x := 'ab\n", "f"); err == nil {
		t.Error("a fragment that does not scan as Go gives no error")
	}
}

func TestCalls(t *testing.T) {
	const patch = `diff --git a/m.go b/m.go
--- a/m.go
+++ b/m.go
@@ -1,4 +1,6 @@
 	if err := mk(p); err != nil {
 		return err
 	}
-	enable(p)
+	if want {
+		enable(p)
+	}
 	return nil
`
	files, _, err := gitdiff.Parse(strings.NewReader(patch))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Calls(files, "enable")
	if err != nil {
		t.Fatal(err)
	}
	want := []Call{{File: "m.go", Hunk: 1, New: false, Cond: ""}, {File: "m.go", Hunk: 1, New: true, Cond: "want"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Calls = %v, want %v", got, want)
	}
}
