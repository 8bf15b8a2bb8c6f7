package docgen

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/nokmem/nokmem/internal/ciworkflow"
	"github.com/nokmem/nokmem/internal/mutants"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/verify/migrate"
)

// Sources renders the tables of one repository checkout.
type Sources struct {
	Root string
	// exitCodes caches the output of `verify exit-codes`.
	exitCodes string
}

// NewSources reads the tables' sources under root.
func NewSources(root string) *Sources { return &Sources{Root: root} }

// Names are the tables a region may name, each with its source.
var Names = map[string]string{
	"exit-codes":       "`verify exit-codes` (verify/exitcodes.go)",
	"versions":         "vendor-pins/matrix.yaml and vendor-pins/<project>/<version>.CHECKSUMS",
	"bundles":          "vendor-pins/matrix.yaml (bundles:)",
	"ci-build-jobs":    "internal/ciworkflow (the release workflow's build matrix)",
	"mutations":        "internal/mutants/list.go",
	"migration-states": "migrate.States (verify/migrate/states.go)",
	"generated-list":   "docgen.Names",
}

// Table renders the table called name, ending in a newline.
func (s *Sources) Table(name string) (string, error) {
	switch name {
	case "exit-codes":
		return s.ExitCodes()
	case "versions":
		return s.Versions()
	case "bundles":
		return s.Bundles()
	case "ci-build-jobs":
		return s.CIBuildJobs()
	case "mutations":
		return Mutations(mutants.List), nil
	case "migration-states":
		return MigrationStates(migrate.States), nil
	case "generated-list":
		return generatedList(), nil
	}
	return "", fmt.Errorf("no table %q (known: %s)", name, strings.Join(sortedNames(), ", "))
}

func sortedNames() []string {
	var n []string
	for k := range Names {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func generatedList() string {
	var b strings.Builder
	b.WriteString("| region | generated from |\n|---|---|\n")
	for _, n := range sortedNames() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", n, Names[n])
	}
	return b.String()
}

// ExitCodes runs `go run ./verify exit-codes` in the checkout: the table
// lives in verify's main package, so its command is the one way to read it.
func (s *Sources) ExitCodes() (string, error) {
	if s.exitCodes != "" {
		return s.exitCodes, nil
	}
	cmd := exec.Command("go", "run", "./verify", "exit-codes")
	cmd.Dir = s.Root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go run ./verify exit-codes: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	s.exitCodes = string(out)
	return s.exitCodes, nil
}

func (s *Sources) matrix() (*pins.Matrix, error) {
	return pins.LoadMatrix(filepath.Join(s.Root, "vendor-pins"))
}

// Versions is every version of the matrix: status, source and fix kind,
// the committed sha256 (short) of a buildable one, and its notes.
func (s *Sources) Versions() (string, error) {
	m, err := s.matrix()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| project | version | status | source | fix | sha256 (committed, short) | notes |\n|---|---|---|---|---|---|---|\n")
	for _, e := range m.Versions {
		sum := ""
		if e.Status == pins.StatusBuildable {
			if sum, err = s.committedSum(e.Project, e.Version); err != nil {
				return "", err
			}
			sum = "`" + sum[:12] + "`"
		}
		var notes []string
		if e.Default {
			notes = append(notes, "**default**")
		}
		if e.Vulnerable {
			notes = append(notes, "vulnerable (known, fixed CVEs; docs/runc.md)")
		}
		if len(e.Ships) > 0 {
			notes = append(notes, "ships in "+strings.Join(e.Ships, ", "))
		}
		if e.Reason != "" {
			notes = append(notes, e.Reason)
		}
		if e.Nearest != "" {
			notes = append(notes, "nearest: "+e.Nearest)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", e.Project, e.Version, e.Status, e.Source, e.Fix, sum, cell(strings.Join(notes, "; ")))
	}
	return b.String(), nil
}

// committedSum is the sha256 in vendor-pins/<project>/<version>.CHECKSUMS.
func (s *Sources) committedSum(project, version string) (string, error) {
	p := filepath.Join(s.Root, "vendor-pins", project, version+".CHECKSUMS")
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(data))
	if len(f) < 1 || len(f[0]) != 64 {
		return "", fmt.Errorf("%s: no sha256", p)
	}
	return f[0], nil
}

// Bundles is the kubelet and runc pairs of the matrix's bundles:.
func (s *Sources) Bundles() (string, error) {
	m, err := s.matrix()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| kubelet | runc | note |\n|---|---|---|\n")
	for _, p := range m.Bundles {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", p.Kubelet, p.Runc, cell(p.Note))
	}
	return b.String(), nil
}

// CIBuildJobs is the release workflow's build jobs, one per buildable
// version, with the two commands each runs.
func (s *Sources) CIBuildJobs() (string, error) {
	m, err := ciworkflow.Load(filepath.Join(s.Root, "vendor-pins"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| job | commands |\n|---|---|\n")
	for _, j := range m.Include {
		fmt.Fprintf(&b, "| build %s %s | `go tool mage %s:build %s`, `go tool mage %s:checksums %s` |\n", j.Project, j.Version, j.Target, j.Version, j.Target, j.Version)
	}
	fmt.Fprintf(&b, "\n%d build jobs.\n", len(m.Include))
	return b.String(), nil
}

// Mutations is the mutation check's list: what breaks, where, and the
// tests that must catch it.
func Mutations(list []mutants.Mutation) string {
	var b strings.Builder
	b.WriteString("| mutation | file | package | killed by (`-run`) |\n|---|---|---|---|\n")
	for _, m := range list {
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | `%s` |\n", m.Name, m.File, m.Package, cell(m.Run))
	}
	fmt.Fprintf(&b, "\n%d mutations.\n", len(list))
	return b.String()
}

// MigrationStates is the migration's state table: per journal phase, what
// is on the node and what finishing and rolling back do from there.
func MigrationStates(states []migrate.State) string {
	var b strings.Builder
	b.WriteString("| journal phase | on the node | finish → | rollback → |\n|---|---|---|---|\n")
	for _, s := range states {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(s.Phase), cell(s.OnNode), cell(s.Finish), cell(s.Rollback))
	}
	return b.String()
}

// cell escapes the pipes of a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

var (
	noteRE    = regexp.MustCompile("(?m)^[-|] `([a-z0-9]+(?:-[a-z0-9]+)+)`")
	sectionRE = regexp.MustCompile(`(?m)^#{2,3} `)
)

// MutationNotes returns the mutation names that start a hand-written note
// ("- `name`" or "| `name`") in the sections of doc whose heading names
// mutations.
func MutationNotes(doc string) []string {
	var out []string
	idx := sectionRE.FindAllStringIndex(doc, -1)
	for i, loc := range idx {
		end := len(doc)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		sec := doc[loc[0]:end]
		heading, _, _ := strings.Cut(sec, "\n")
		if !strings.Contains(strings.ToLower(heading), "mutation") && !strings.Contains(heading, "entries break") {
			continue
		}
		for _, m := range noteRE.FindAllStringSubmatch(sec, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

var runStepRE = regexp.MustCompile(`(?m)^\| \d+ \| run-([a-z-]+) \|`)

// RunSteps are the steps of `verify run` in the exit-code table, in order.
func RunSteps(exitCodes string) []string {
	var out []string
	for _, m := range runStepRE.FindAllStringSubmatch(exitCodes, -1) {
		out = append(out, m[1])
	}
	return out
}

// AdviceRows are the first cells of the node guide's table headed
// "| run stopped at |".
func AdviceRows(doc string) []string {
	_, table, ok := strings.Cut(doc, "| run stopped at |")
	if !ok {
		return nil
	}
	var out []string
	for _, line := range strings.Split(table, "\n")[2:] {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		out = append(out, strings.TrimSpace(strings.Split(line, "|")[1]))
	}
	return out
}
