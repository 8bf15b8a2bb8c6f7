package ciworkflow

import (
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// writes reports the scopes a permissions block grants write access to.
func writes(p *actionlint.Permissions) []string {
	if p == nil {
		return nil
	}
	if p.All != nil && strings.Contains(p.All.Value, "write") {
		return []string{"all"}
	}
	var w []string
	for name, s := range p.Scopes {
		if s.Value != nil && s.Value.Value == "write" {
			w = append(w, name)
		}
	}
	return w
}

// stepValues lists the env values and action inputs of a job's steps and of the job itself.
func stepValues(j *actionlint.Job) []string {
	var out []string
	envVals := func(e *actionlint.Env) {
		if e == nil {
			return
		}
		for _, v := range e.Vars {
			if v.Value != nil {
				out = append(out, v.Value.Value)
			}
		}
	}
	envVals(j.Env)
	for _, s := range j.Steps {
		envVals(s.Env)
		if a, ok := s.Exec.(*actionlint.ExecAction); ok {
			for _, in := range a.Inputs {
				if in.Value != nil {
					out = append(out, in.Value.Value)
				}
			}
		}
		if r, ok := s.Exec.(*actionlint.ExecRun); ok && r.Run != nil {
			out = append(out, r.Run.Value)
		}
	}
	return out
}

// releasePolicyProblems: read-only by default, contents: write on the
// release job only; secrets only in the bundle job, which signs with
// NOKMEM_RELEASE=1 through ci:bundle.
func releasePolicyProblems(wf *actionlint.Workflow) []string {
	var p []string
	if w := writes(wf.Permissions); wf.Permissions == nil || len(w) > 0 {
		p = append(p, "workflow permissions must be set and read-only")
	}
	for id, j := range wf.Jobs {
		w := writes(j.Permissions)
		if id == "release" {
			if len(w) != 1 || w[0] != "contents" {
				p = append(p, "job release: want write access to contents only, got "+strings.Join(w, ","))
			}
		} else if len(w) > 0 {
			p = append(p, "job "+id+" may write "+strings.Join(w, ","))
		}
		for _, v := range stepValues(j) {
			if strings.Contains(v, "secrets.") && id != "bundle" {
				p = append(p, "job "+id+" reads a secret: "+v)
			}
		}
	}
	b := wf.Jobs["bundle"]
	if b == nil {
		return append(p, "no job bundle")
	}
	if b.Env == nil || b.Env.Vars["nokmem_release"] == nil || b.Env.Vars["nokmem_release"].Value.Value != "1" {
		p = append(p, "job bundle: env NOKMEM_RELEASE must be 1 (refuses the development key)")
	}
	found := false
	for _, r := range runs(b) {
		found = found || strings.HasPrefix(r, "go tool mage ci:bundle")
	}
	if !found {
		p = append(p, "job bundle does not run go tool mage ci:bundle")
	}
	return p
}

func TestReleaseWorkflowPolicy(t *testing.T) {
	wf, _ := workflow(t, root, "release.yml")
	for _, p := range releasePolicyProblems(wf) {
		t.Error(p)
	}
}

// pinProblems: every third-party action is pinned to a commit, with the
// release tag it is in a comment.
func pinProblems(text string) []string {
	var p []string
	uses := regexp.MustCompile(`^\s*(-\s+)?uses:\s*(\S+)(.*)$`)
	pinned := regexp.MustCompile(`^[\w.-]+/[\w.-]+@[0-9a-f]{40}$`)
	for _, line := range strings.Split(text, "\n") {
		m := uses.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if !pinned.MatchString(m[2]) || !regexp.MustCompile(`#\s*v\d`).MatchString(m[3]) {
			p = append(p, "not pinned to a commit with its tag in a comment: "+strings.TrimSpace(line))
		}
	}
	return p
}

func TestActionsPinned(t *testing.T) {
	for _, f := range []string{"release.yml", "ci.yml"} {
		_, text := workflow(t, root, f)
		if !strings.Contains(text, "uses:") {
			t.Fatalf("%s uses no action", f)
		}
		for _, p := range pinProblems(text) {
			t.Errorf("%s: %s", f, p)
		}
	}
}

// TestPolicyChecksCatchBadWorkflow: testdata/bad's release workflow grants
// write-all, reads a secret in the build job, has no bundle job and uses
// an action by tag.
func TestPolicyChecksCatchBadWorkflow(t *testing.T) {
	wf, text := workflow(t, "testdata/bad", "release.yml")
	got := strings.Join(append(releasePolicyProblems(wf), pinProblems(text)...), "\n")
	for _, want := range []string{"workflow permissions", "job build may write", "job build reads a secret", "no job bundle", "actions/checkout@v4"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems of testdata/bad do not include %q:\n%s", want, got)
		}
	}
}
