package ciworkflow

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// lint runs actionlint on every workflow of the repository at dir, with
// its .github/actionlint.yaml (the self-hosted runner label). shellcheck,
// when installed, checks the run: scripts too; without it only that rule
// is left out.
func lint(t *testing.T, dir string) []*actionlint.Error {
	t.Helper()
	opts := &actionlint.LinterOptions{LogWriter: io.Discard}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = sc
	} else {
		t.Log("shellcheck not installed: actionlint's shellcheck rule is left out, every other rule runs")
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := actionlint.NewProject(dir)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintDir(filepath.Join(dir, ".github", "workflows"), p)
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

func TestWorkflowsLintClean(t *testing.T) {
	for _, e := range lint(t, root) {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
	for _, f := range []string{"release.yml", "ci.yml"} {
		if _, err := os.Stat(filepath.Join(root, ".github", "workflows", f)); err != nil {
			t.Errorf("workflow %s: %v", f, err)
		}
	}
}

// TestLintCatchesBrokenWorkflow: the same lint finds the errors of a broken
// workflow (a job needing a missing job, an undefined matrix key, an
// unknown runner label, a missing action input).
func TestLintCatchesBrokenWorkflow(t *testing.T) {
	errs := lint(t, filepath.Join("testdata", "broken"))
	kinds := map[string]bool{}
	for _, e := range errs {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"job-needs", "expression", "runner-label"} {
		if !kinds[k] {
			t.Errorf("actionlint found no %s error in testdata/broken (found %v)", k, kinds)
		}
	}
}

// workflow parses .github/workflows/<name> under dir.
func workflow(t *testing.T, dir, name string) (*actionlint.Workflow, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".github", "workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	wf, errs := actionlint.Parse(data)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", name, errs[0])
	}
	return wf, string(data)
}

// runs lists a job's run: scripts, in order.
func runs(j *actionlint.Job) []string {
	var out []string
	for _, s := range j.Steps {
		if r, ok := s.Exec.(*actionlint.ExecRun); ok && r.Run != nil {
			out = append(out, r.Run.Value)
		}
	}
	return out
}

// Exact lines the release workflow must have.
const (
	matrixRun     = "go tool mage ci:matrix"
	matrixExpr    = "${{ fromJSON(needs.matrix.outputs.matrix) }}"
	buildRun      = "go tool mage ${{ matrix.target }}:build ${{ matrix.version }}"
	checksumsRun  = "go tool mage ${{ matrix.target }}:checksums ${{ matrix.version }}"
	packagesRun   = "bash scripts/ci-packages.sh install"
	ciRunCommand  = "bash .ci/run"
	aptInstallPat = `\bapt(-get)?\b[^\n]*\binstall\b`
)

// releaseProblems checks that the release workflow builds exactly the
// matrix of `go tool mage ci:matrix`: the matrix job runs it and exports its
// output, the build job's strategy is fromJSON of that output and it runs
// the build and then the checksums target of matrix.version; no version of
// the matrix file is written in the workflow itself.
func releaseProblems(wf *actionlint.Workflow, text string, versions []string) []string {
	var p []string
	mj, bj := wf.Jobs["matrix"], wf.Jobs["build"]
	if mj == nil || bj == nil {
		return []string{"jobs matrix and build are required"}
	}
	var stepID string
	for _, s := range mj.Steps {
		if r, ok := s.Exec.(*actionlint.ExecRun); ok && strings.Contains(r.Run.Value, matrixRun) && strings.Contains(r.Run.Value, "$GITHUB_OUTPUT") && s.ID != nil {
			stepID = s.ID.Value
		}
	}
	if stepID == "" {
		p = append(p, "job matrix: no step with an id runs "+matrixRun+" into $GITHUB_OUTPUT")
	} else if o := mj.Outputs["matrix"]; o == nil || o.Value == nil || o.Value.Value != "${{ steps."+stepID+".outputs.matrix }}" {
		p = append(p, "job matrix: output matrix is not ${{ steps."+stepID+".outputs.matrix }}")
	}
	if !slices.ContainsFunc(bj.Needs, func(s *actionlint.String) bool { return s.Value == "matrix" }) {
		p = append(p, "job build does not need job matrix")
	}
	if bj.Strategy == nil || bj.Strategy.Matrix == nil || bj.Strategy.Matrix.Expression == nil || bj.Strategy.Matrix.Expression.Value != matrixExpr {
		p = append(p, "job build: strategy.matrix is not "+matrixExpr)
	}
	r := runs(bj)
	b, c := slices.Index(r, buildRun), slices.Index(r, checksumsRun)
	if b < 0 || c < 0 || c < b {
		p = append(p, fmt.Sprintf("job build: want the steps %q then %q", buildRun, checksumsRun))
	}
	for _, v := range versions {
		if strings.Contains(text, v) {
			p = append(p, "the workflow names version "+v+": the list belongs in vendor-pins/matrix.yaml")
		}
	}
	return p
}

// packageProblems checks that each job that builds installs the Debian
// packages with the shared script before its first mage target, and that
// no apt install is written out in the workflow.
func packageProblems(wf *actionlint.Workflow, text string, jobs ...string) []string {
	var p []string
	if regexp.MustCompile(aptInstallPat).MatchString(text) {
		p = append(p, "the workflow installs packages itself; call "+packagesRun)
	}
	for _, id := range jobs {
		j := wf.Jobs[id]
		if j == nil {
			p = append(p, "no job "+id)
			continue
		}
		r := runs(j)
		pkg := slices.Index(r, packagesRun)
		mage := slices.IndexFunc(r, func(s string) bool { return strings.Contains(s, "go tool mage") })
		if pkg < 0 || mage < 0 || pkg > mage {
			p = append(p, "job "+id+": no step "+packagesRun+" before its first go tool mage")
		}
	}
	return p
}

func matrixVersions(t *testing.T) []string {
	var vs []string
	for _, v := range readRaw(t).Versions {
		vs = append(vs, v.Version)
	}
	return vs
}

func TestReleaseWorkflowBuildsTheMatrix(t *testing.T) {
	wf, text := workflow(t, root, "release.yml")
	for _, p := range releaseProblems(wf, text, matrixVersions(t)) {
		t.Error(p)
	}
}

func TestPackagesFromOneScript(t *testing.T) {
	wf, text := workflow(t, root, "release.yml")
	for _, p := range packageProblems(wf, text, "build", "bundle") {
		t.Error("release.yml: " + p)
	}
	ci, ciText := workflow(t, root, "ci.yml")
	if j := ci.Jobs["run"]; j == nil || !slices.ContainsFunc(runs(j), func(s string) bool { return strings.Contains(s, ciRunCommand) }) {
		t.Error("ci.yml: job run does not run " + ciRunCommand)
	}
	if regexp.MustCompile(aptInstallPat).MatchString(ciText) {
		t.Error("ci.yml installs packages itself")
	}
	run, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Split(string(run), "\n"), packagesRun) {
		t.Errorf(".ci/run has no line %q", packagesRun)
	}
	if regexp.MustCompile(aptInstallPat).Match(run) {
		t.Error(".ci/run installs packages itself")
	}
	// The script's list holds what the committed checksums were built with
	// (gcc-<major> comes with gcc).
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "ci-packages.sh"), "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Fields(string(out))
	envs, _ := filepath.Glob(filepath.Join(root, "vendor-pins", "*", "*.BUILDENV"))
	if len(envs) == 0 {
		t.Fatal("no .BUILDENV file")
	}
	for _, f := range envs {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			name, _, _ := strings.Cut(line, " ")
			if !slices.Contains(listed, name) && !regexp.MustCompile(`^gcc-\d+$`).MatchString(name) {
				t.Errorf("%s records %s, which scripts/ci-packages.sh does not install", f, name)
			}
		}
	}
}

// TestChecksCatchBadWorkflow: a release workflow that lists its versions,
// builds the default only, installs packages inline and checks before it
// builds is refused by the checks above.
func TestChecksCatchBadWorkflow(t *testing.T) {
	wf, text := workflow(t, filepath.Join("testdata", "bad"), "release.yml")
	got := strings.Join(append(releaseProblems(wf, text, []string{"v1.12.4", "v1.0.0-rc5"}), packageProblems(wf, text, "build")...), "\n")
	for _, want := range []string{
		"no step with an id runs go tool mage ci:matrix",
		"strategy.matrix is not",
		"want the steps",
		"names version v1.12.4",
		"installs packages itself",
		"job build: no step bash scripts/ci-packages.sh install",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems of testdata/bad/.github/workflows/release.yml do not include %q:\n%s", want, got)
		}
	}
}
