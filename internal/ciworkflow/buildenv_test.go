package ciworkflow

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"

	"github.com/nokmem/nokmem/internal/testenv"
)

const (
	safeDirRun   = `git config --global --add safe.directory "$GITHUB_WORKSPACE"`
	snapshotStep = "Debian snapshot of the build environment"
	buildEnvStep = "the build environment is the committed one (vendor-pins/*/*.BUILDENV)"
)

// stepRun is the run: script of the job's step with this name, "" if none.
func stepRun(j *actionlint.Job, name string) (string, int) {
	for i, s := range j.Steps {
		if r, ok := s.Exec.(*actionlint.ExecRun); ok && r.Run != nil && s.Name != nil && s.Name.Value == name {
			return r.Run.Value, i
		}
	}
	return "", -1
}

// containerProblems: every job that runs in a container and checks out the
// repository marks the checkout a safe directory before any other run:
// step (the checkout is the runner's uid, the container's git runs as root).
func containerProblems(wf *actionlint.Workflow) []string {
	var p []string
	for id, j := range wf.Jobs {
		if j.Container == nil {
			continue
		}
		checkout, safe, firstRun := -1, -1, -1
		for i, s := range j.Steps {
			switch e := s.Exec.(type) {
			case *actionlint.ExecAction:
				if checkout < 0 && e.Uses != nil && strings.HasPrefix(e.Uses.Value, "actions/checkout@") {
					checkout = i
				}
			case *actionlint.ExecRun:
				if e.Run != nil && e.Run.Value == safeDirRun && safe < 0 {
					safe = i
				} else if firstRun < 0 {
					firstRun = i
				}
			}
		}
		if checkout < 0 {
			continue
		}
		if safe < 0 || safe < checkout || (firstRun >= 0 && firstRun < safe) {
			p = append(p, fmt.Sprintf("job %s runs in a container: want a step %q right after the checkout, before any other run", id, safeDirRun))
		}
	}
	return p
}

func TestContainerJobsMarkCheckoutSafe(t *testing.T) {
	wf, _ := workflow(t, root, "release.yml")
	for _, p := range containerProblems(wf) {
		t.Error(p)
	}
	// The check catches a container job without the line.
	delete(wf.Jobs, "matrix")
	b := wf.Jobs["build"]
	var steps []*actionlint.Step
	for _, s := range b.Steps {
		if r, ok := s.Exec.(*actionlint.ExecRun); !ok || r.Run == nil || r.Run.Value != safeDirRun {
			steps = append(steps, s)
		}
	}
	b.Steps = steps
	if p := containerProblems(wf); len(p) != 1 || !strings.Contains(p[0], "job build") {
		t.Errorf("problems without the safe.directory step of job build: %q", p)
	}
}

// The workflow's very line makes a root git read a checkout owned by
// another uid: without it git refuses ("dubious ownership").
func TestSafeDirectoryFixesDubiousOwnership(t *testing.T) {
	testenv.RequireRoot(t)
	git := testenv.RequireCommand(t, "git")
	home, repo := t.TempDir(), filepath.Join(t.TempDir(), "checkout")
	env := append(os.Environ(), "HOME="+home, "GITHUB_WORKSPACE="+repo, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	gitRun := func(args ...string) (string, error) {
		cmd := exec.Command(git, append([]string{"-C", repo}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"commit", "-q", "--allow-empty", "-m", "x"}} {
		if out, err := gitRun(args...); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	// The runner's uid, not root's.
	if out, err := exec.Command("chown", "-R", "1001:1001", repo).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	if out, err := gitRun("log", "-1", "--format=%ct"); err == nil || !strings.Contains(out, "dubious ownership") {
		t.Fatalf("git log in a checkout of another uid: %v %s; want git's dubious-ownership refusal", err, out)
	}
	wf, _ := workflow(t, root, "release.yml")
	for _, id := range []string{"build", "bundle"} {
		if !slices.Contains(runs(wf.Jobs[id]), safeDirRun) {
			t.Fatalf("job %s has no step %q", id, safeDirRun)
		}
	}
	cmd := exec.Command("bash", "-c", safeDirRun)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", safeDirRun, err, out)
	}
	if out, err := gitRun("log", "-1", "--format=%ct"); err != nil {
		t.Fatalf("git log after the workflow's safe.directory line: %v %s", err, out)
	}
}

// The Debian packages of the build jobs: the snapshot step (run here into a
// scratch folder) points apt at one dated snapshot.debian.org archive and
// pins every package of vendor-pins/*/*.BUILDENV to its recorded version;
// the BUILDENV files agree with each other; the packages are installed
// after the snapshot step, and checked against BUILDENV after that.
func TestDebianPinnedToBuildEnv(t *testing.T) {
	want := map[string]string{}
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
			name, version, _ := strings.Cut(line, " ")
			if v, ok := want[name]; ok && v != version {
				t.Errorf("%s records %s %s, another BUILDENV file %s: one snapshot cannot serve both", f, name, version, v)
			}
			want[name] = version
		}
	}
	wf, _ := workflow(t, root, "release.yml")
	for _, id := range []string{"build", "bundle"} {
		j := wf.Jobs[id]
		snap, si := stepRun(j, snapshotStep)
		_, ci := stepRun(j, buildEnvStep)
		pi := -1
		for i, s := range j.Steps {
			if r, ok := s.Exec.(*actionlint.ExecRun); ok && r.Run != nil && r.Run.Value == packagesRun {
				pi = i
			}
		}
		if si < 0 || pi < 0 || ci < 0 || !(si < pi && pi < ci) {
			t.Errorf("job %s: want the steps %q, %q, %q in that order (%d %d %d)", id, snapshotStep, packagesRun, buildEnvStep, si, pi, ci)
			continue
		}
		apt := t.TempDir()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", snap)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "APT_ETC="+apt)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("job %s, step %q: %v %s", id, snapshotStep, err, out)
		}
		sources, _ := os.ReadFile(filepath.Join(apt, "sources.list.d", "nokmem-snapshot.list"))
		lines := strings.Split(strings.TrimSpace(string(sources)), "\n")
		dated := regexp.MustCompile(`^deb \[check-valid-until=no\] http://snapshot\.debian\.org/archive/(debian|debian-security)/(\d{8}T\d{6}Z) (bookworm|bookworm-updates|bookworm-security) main$`)
		dates := map[string]bool{}
		for _, l := range lines {
			m := dated.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("job %s: source %q is not a dated snapshot.debian.org bookworm line", id, l)
				continue
			}
			dates[m[2]] = true
		}
		if len(lines) != 3 || len(dates) != 1 {
			t.Errorf("job %s: want bookworm, -updates and -security of one snapshot date:\n%s", id, sources)
		}
		prefs, _ := os.ReadFile(filepath.Join(apt, "preferences.d", "nokmem-buildenv"))
		for name, version := range want {
			if !bytes.Contains(prefs, []byte(fmt.Sprintf("Package: %s\nPin: version %s\nPin-Priority: 1001\n", name, version))) {
				t.Errorf("job %s: %s is not pinned to %s:\n%s", id, name, version, prefs)
			}
		}
	}
}
