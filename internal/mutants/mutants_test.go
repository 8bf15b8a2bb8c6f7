package mutants

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/testenv"
)

// TestList keeps the committed list from rotting: every entry is complete
// and its old text occurs exactly once in this repository.
func TestList(t *testing.T) {
	if err := Validate(List); err != nil {
		t.Fatal(err)
	}
	if err := Locate(filepath.Join("..", ".."), List); err != nil {
		t.Fatal(err)
	}
}

func TestKillers(t *testing.T) {
	r := Result{Failed: []string{
		"github.com/x/y.TestRules/root_slabinfo_EIO_on_3.10",
		"github.com/x/y.TestRules",
		"github.com/x/y.TestOther",
		"github.com/x/v1.2/z (package)",
	}}
	want := []string{"TestRules", "TestOther", "github.com/x/v1.2/z (package)"}
	if got := r.Killers(); !slices.Equal(got, want) {
		t.Errorf("Killers = %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	ok := Mutation{Name: "a", File: "f.go", Old: "x", New: "y", Package: "./p", Run: "^TestX$"}
	tests := []struct {
		name string
		edit func(*Mutation)
		want string
	}{
		{"missing field", func(m *Mutation) { m.Run = "" }, "all required"},
		{"same text", func(m *Mutation) { m.New = m.Old }, "the same"},
		{"package not ./", func(m *Mutation) { m.Package = "example.com/p" }, "./ path"},
		{"bad regex", func(m *Mutation) { m.Run = "(" }, "-run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok
			tt.edit(&m)
			if err := Validate([]Mutation{m}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
	if err := Validate([]Mutation{ok, ok}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("Validate of a duplicate name = %v", err)
	}
	if err := Validate([]Mutation{ok}); err != nil {
		t.Errorf("Validate of a good entry: %v", err)
	}
}

// fakeRepo is a small module in a git work tree: Add is tested, Sub is not,
// TestLinked reads a linked _output, TestFails and TestSkips are broken
// selections. ignored.go (git-ignored, and not Go that builds) must not be
// copied.
func fakeRepo(t *testing.T) string {
	t.Helper()
	git := testenv.RequireCommand(t, "git")
	repo := t.TempDir()
	files := map[string]string{
		"go.mod":         "module example.com/m\n\ngo 1.22\n",
		".gitignore":     "/ignored.go\n/_output/\n",
		"ignored.go":     "this is not Go\n",
		"_output/marker": "built\n",
		"m.go":           "package m\n\nfunc Add(a, b int) int { return a + b }\n\nfunc Sub(a, b int) int { return a - b }\n",
		"m_test.go": `package m

import (
	"os"
	"testing"
)

func TestAdd(t *testing.T) {
	if Add(2, 3) != 5 {
		t.Fatal("Add(2, 3) != 5")
	}
}

func TestLinked(t *testing.T) {
	if b, err := os.ReadFile("_output/marker"); err != nil || string(b) != "built\n" {
		t.Fatal(string(b), err)
	}
}

func TestFails(t *testing.T) { t.Fatal("broken") }

func TestSkips(t *testing.T) { t.Skip("not here") }
`,
	}
	for name, body := range files {
		p := filepath.Join(repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(git, "-C", repo, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	return repo
}

func TestRun(t *testing.T) {
	repo := fakeRepo(t)
	cfg := Config{Repo: repo, Link: []string{"_output"}, Env: append(os.Environ(), "GOWORK=off", "GOFLAGS=")}
	mut := func(name, old, new, run string) Mutation {
		return Mutation{Name: name, File: "m.go", Old: old, New: new, Package: "./", Run: run}
	}
	killed := mut("add-subtracts", "return a + b", "return a - b", "^TestAdd$")

	results, err := Run(context.Background(), cfg, []Mutation{killed, mut("linked", "return a - b", "return a * b", "^TestLinked$")})
	if err == nil || !strings.Contains(err.Error(), "mutation linked survived") {
		t.Fatalf("Run = %v, want the untested mutation reported as survived", err)
	}
	if len(results) != 2 || results[0].Verdict != Killed || results[1].Verdict != Survived {
		t.Fatalf("results = %+v, want killed then survived", results)
	}
	if k := results[0].Killers(); len(k) != 1 || k[0] != "TestAdd" {
		t.Errorf("killed by %v, want TestAdd", k)
	}
	if b, err := os.ReadFile(filepath.Join(repo, "m.go")); err != nil || !strings.Contains(string(b), "return a + b") {
		t.Errorf("the repository itself was changed: %q, %v", b, err)
	}

	refused := []struct {
		name string
		m    Mutation
		want string
	}{
		{"mutated copy does not build", mut("nobuild", "return a + b", "return a +", "^TestAdd$"), "does not build"},
		{"old text missing", mut("missing", "return a * b", "return a", "^TestAdd$"), "0 times"},
		{"old text twice", mut("twice", "int", "uint", "^TestAdd$"), "times, want exactly once"},
		{"baseline fails", mut("fails", "return a + b", "return a - b", "^TestFails$"), "fails unmutated"},
		{"baseline skips", mut("skips", "return a + b", "return a - b", "^TestSkips$"), "a skipped test catches nothing"},
		{"selection runs no test", mut("none", "return a + b", "return a - b", "^TestNone$"), "runs no test"},
		{"ignored file is not copied", Mutation{Name: "ignored", File: "ignored.go", Old: "not", New: "still not", Package: "./", Run: "^TestAdd$"}, "no such file"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), cfg, []Mutation{tt.m}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
