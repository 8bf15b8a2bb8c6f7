package lockgen

import (
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/pins"
)

// TestCrossCheckZipAndGoMod: the loaded graph's hashes are compared with
// upstream's go.sum line by line, the zip hash ("<path> <version> h1:")
// as well as the go.mod hash ("<path> <version>/go.mod h1:"). A module
// upstream does not list, or whose zip the graph does not need, is not
// compared.
func TestCrossCheckZipAndGoMod(t *testing.T) {
	graph := []pins.GoModule{
		{Path: "k8s.io/api", Version: "v0.20.15", H1: "h1:api=", GoModH1: "h1:apimod="},
		{Path: "github.com/o/o", Version: "v1.0.1", GoModH1: "h1:o1mod="},
	}
	tests := []struct {
		name     string
		upstream string
		want     []string // substrings of the error; none: no error
	}{
		{"same", "k8s.io/api v0.20.15 h1:api=\nk8s.io/api v0.20.15/go.mod h1:apimod=\ngithub.com/o/o v1.0.1/go.mod h1:o1mod=\n", nil},
		{"zip differs", "k8s.io/api v0.20.15 h1:evil=\nk8s.io/api v0.20.15/go.mod h1:apimod=\n",
			[]string{"k8s.io/api@v0.20.15 zip h1:api=, upstream's go.sum h1:evil="}},
		{"go.mod differs", "k8s.io/api v0.20.15 h1:api=\nk8s.io/api v0.20.15/go.mod h1:evil=\n",
			[]string{"k8s.io/api@v0.20.15 go.mod h1:apimod=, upstream's go.sum h1:evil="}},
		{"both differ", "k8s.io/api v0.20.15 h1:evil=\nk8s.io/api v0.20.15/go.mod h1:evilmod=\n",
			[]string{"zip h1:api=, upstream's go.sum h1:evil=", "go.mod h1:apimod=, upstream's go.sum h1:evilmod="}},
		{"zip the graph does not need", "github.com/o/o v1.0.1 h1:whatever=\ngithub.com/o/o v1.0.1/go.mod h1:o1mod=\n", nil},
		{"other version", "k8s.io/api v0.20.14 h1:old=\nk8s.io/api v0.20.14/go.mod h1:oldmod=\n", nil},
		{"not upstream", "example.com/x v1.0.0 h1:x=\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := crossCheck(graph, []byte(tt.upstream))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("crossCheck: %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("crossCheck: no error, want one naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("crossCheck: %v, want %q", err, w)
				}
			}
		})
	}
}
