package runcreplay

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/enginetest"
	"github.com/nokmem/nokmem/internal/testenv"
)

const argsets = "testdata/gorunc-argsets.yaml"

// TestArgSets checks the pinned data: one set per go-runc commit that
// containerd 1.0-1.4 and Docker CE 17.11-19.03 vendor, each with the calls
// a containerd shim makes.
func TestArgSets(t *testing.T) {
	f, err := Load(argsets)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.GoRunc) != 7 {
		t.Errorf("%d go-runc sets, want 7", len(f.GoRunc))
	}
	for _, want := range []string{"containerd v1.1.0-v1.1.6", "containerd v1.1.7-v1.1.8", "containerd v1.2.0-v1.2.9", "containerd v1.2.10-v1.2.14, v1.3.0-v1.3.10", "containerd v1.4.0-v1.4.13", "docker-ce v17.11.0-ce", "docker-ce v19.03.3-v19.03.15"} {
		if !slices.ContainsFunc(f.Engines, func(e Engine) bool { return e.Engine+" "+e.Versions == want }) {
			t.Errorf("no pin for %s", want)
		}
	}
	for _, s := range f.GoRunc {
		var calls []string
		for _, st := range s.Steps {
			calls = append(calls, st.Args...)
		}
		for _, c := range []string{"create", "start", "state", "exec", "kill", "delete", "ps", "update", "events", "pause", "resume", "checkpoint", "restore", "run", "list"} {
			if !slices.Contains(calls, c) {
				t.Errorf("go-runc %s: no %s call", s.Commit[:12], c)
			}
		}
	}
}

// TestLoadRejects checks that a set with an unknown expectation or
// placeholder, or an engine pointing at no set, does not load.
func TestLoadRejects(t *testing.T) {
	for name, body := range map[string]string{
		"expect":      "goRunc:\n- commit: 7016d3ce2328dd2cb1192b2076ebd565c4e8df0c\n  version: v0.0.0-20200220073739-7016d3ce2328\n  steps:\n  - {name: x, args: [--version], expect: works}\n",
		"placeholder": "goRunc:\n- commit: 7016d3ce2328dd2cb1192b2076ebd565c4e8df0c\n  version: v0.0.0-20200220073739-7016d3ce2328\n  steps:\n  - {name: x, container: c1, args: [\"{nope}\"], expect: version}\n",
		"engine":      "engines:\n- {engine: containerd, versions: v9, goRunc: 0000000000000000000000000000000000000000}\n",
		"version":     "goRunc:\n- commit: 7016d3ce2328dd2cb1192b2076ebd565c4e8df0c\n  version: v0.0.0-20200220073739-aaaaaaaaaaaa\n",
	} {
		p := t.TempDir() + "/sets.yaml"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: Load = %v, want an error naming %s", name, err, p)
		}
	}
}

// replayEnv makes a scratch dir and cgroup for a replay with the default
// bundle's runc.
func replayEnv(t *testing.T) Env {
	t.Helper()
	testenv.RequireCgroupV1Memory(t)
	testenv.RequireFile(t, "busybox-static", enginetest.Busybox)
	runc := enginetest.BundleRunc(t, "../..")
	t.Logf("runc under test: %s (%s)", runc.Path, runc.Version)
	cg := enginetest.ScratchCgroup(t)
	dir, err := os.MkdirTemp("", "nokmem-gr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return Env{Runc: runc.Path, Busybox: enginetest.Busybox, Dir: dir, CgroupParent: cg.Parent(), Criu: "/usr/sbin/criu", Unsupported: Unsupported(runc.Version)}
}

// TestReplay replays every pinned go-runc argument set against the default
// bundle's runc with real containers.
func TestReplay(t *testing.T) {
	f, err := Load(argsets)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range f.GoRunc {
		t.Run(set.Commit[:12], func(t *testing.T) {
			env := replayEnv(t)
			start := time.Now()
			results, err := Replay(context.Background(), env, set)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if r.Unsupported != "" {
					t.Logf("go-runc %s step %q: refused by this runc, as recorded: %s", set.Version, r.Step.Name, r.Unsupported)
				}
			}
			t.Logf("go-runc %s: %d runc calls replayed in %s", set.Version, len(results), time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestReplayFails shows the replay catches what it exists for: a flag runc
// does not know (added, or renamed as --pid-file to --pidfile would be), a
// flag refused in a call whose effect cannot be checked here (checkpoint
// without criu), and a call that exits 0 without its effect.
func TestReplayFails(t *testing.T) {
	shim := []string{"--root", "{root}", "--log", "{log}", "--log-format", "json"}
	create := Step{Name: "create", Container: "c1", Args: append(slices.Clone(shim), "create", "--bundle", "{bundle}", "--pid-file", "{pidfile}", "{id}"), Expect: "created"}
	start := Step{Name: "start", Container: "c1", Args: append(slices.Clone(shim), "start", "{id}"), Expect: "running"}
	cases := []struct {
		name  string
		steps []Step
		want  string
	}{
		{"unknown flag", []Step{{Name: "create", Container: "c1", Args: append(slices.Clone(shim), "create", "--bundle", "{bundle}", "--pid-file", "{pidfile}", "--no-such-flag", "{id}"), Expect: "created"}}, "flag provided but not defined"},
		{"renamed flag", []Step{{Name: "create", Container: "c1", Args: append(slices.Clone(shim), "create", "--bundle", "{bundle}", "--pidfile", "{pidfile}", "{id}"), Expect: "created"}}, "flag provided but not defined"},
		{"unknown global flag", []Step{create, start, {Name: "state", Container: "c1", Args: []string{"--root", "{root}", "--no-such-global", "state", "{id}"}, Expect: "state-running"}}, "flag provided but not defined"},
		{"checkpoint flag", []Step{create, start, {Name: "checkpoint", Container: "c1", Args: append(slices.Clone(shim), "checkpoint", "--image-path", "{image}", "--no-such-criu-flag", "{id}"), Expect: "flags-accepted"}}, "flag provided but not defined"},
		{"no effect", []Step{create, start, {Name: "update", Container: "c1", Args: append(slices.Clone(shim), "update", "--resources", "-", "{id}"), Stdin: `{"memory":{"limit":100000000}}`, Expect: "updated"}}, "after update, want 134217728"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := replayEnv(t)
			set := ArgSet{Commit: "0123456789abcdef0123456789abcdef01234567", Version: "test", Steps: c.steps}
			_, err := Replay(context.Background(), env, set)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Replay = %v, want an error with %q", err, c.want)
			}
			t.Logf("caught: %v", err)
		})
	}
}

// flagLiteral matches the flags go-runc's runc.go writes as string literals.
var flagLiteral = regexp.MustCompile(`"(--?[a-z][a-z-]*(?:=[a-z]*)?)"`)

// notReplayed are go-runc flags that no engine passes (see the data file).
var notReplayed = []string{"--rootless="}

// TestArgSetsMatchGoRunc checks the pinned sets against go-runc's source,
// for the versions the Go module proxy serves: the module's h1 is the
// pinned one, every flag literal of its runc.go is in the set (or listed
// as not replayed), and every flag of the set is one runc.go writes.
func TestArgSetsMatchGoRunc(t *testing.T) {
	f, err := Load(argsets)
	if err != nil {
		t.Fatal(err)
	}
	goCmd := testenv.RequireCommand(t, "go")
	checked := 0
	for _, set := range f.GoRunc {
		if set.H1 == "" {
			continue
		}
		checked++
		cmd := exec.Command(goCmd, "mod", "download", "-json", "github.com/containerd/go-runc@"+set.Version)
		cmd.Dir = t.TempDir()
		out, err := cmd.Output()
		var mod struct{ Dir, Sum, Error string }
		if jerr := json.Unmarshal(out, &mod); err != nil || jerr != nil || mod.Error != "" {
			t.Fatalf("go mod download go-runc@%s: %v %v %s", set.Version, err, jerr, mod.Error)
		}
		if mod.Sum != set.H1 {
			t.Errorf("go-runc@%s: h1 %s, pinned %s", set.Version, mod.Sum, set.H1)
		}
		src, err := os.ReadFile(filepath.Join(mod.Dir, "runc.go"))
		if err != nil {
			t.Fatal(err)
		}
		var literals []string
		for _, m := range flagLiteral.FindAllStringSubmatch(string(src), -1) {
			literals = append(literals, m[1])
		}
		var args []string
		for _, st := range set.Steps {
			args = append(args, st.Args...)
		}
		for _, l := range literals {
			used := slices.ContainsFunc(args, func(a string) bool { return a == l || strings.HasSuffix(l, "=") && strings.HasPrefix(a, l) })
			if !used && !slices.Contains(notReplayed, l) {
				t.Errorf("go-runc@%s: runc.go passes %s, no step of the set does", set.Version, l)
			}
		}
		for _, a := range args {
			flag, _, hasValue := strings.Cut(a, "=")
			// "-" is stdin (update --resources -); -ef is Top's psOptions,
			// which runc passes on to ps(1).
			if !strings.HasPrefix(a, "-") || a == "-" || a == "-ef" {
				continue
			}
			// --interval=%ds is built with Sprintf in Runc.Events.
			if !slices.Contains(literals, a) && !(hasValue && (slices.Contains(literals, flag+"=") || flag == "--interval")) {
				t.Errorf("go-runc@%s: the set passes %s, runc.go never does", set.Version, a)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no set with an h1 to check")
	}
}

// TestUnsupported: the steps recorded as unsupported must really be
// refused by the runc under test, and one that runc refuses without being
// recorded still fails the replay.
func TestUnsupported(t *testing.T) {
	if got := Unsupported("v1.3.7"); got != nil {
		t.Errorf("v1.3.7: %v, want none (runc 1.3 still takes --criu)", got)
	}
	if got := Unsupported("v1.4.4+nokmem.abc"); got["criu-path"] == "" {
		t.Errorf("v1.4.4: %v, want criu-path", got)
	}
	shim := []string{"--root", "{root}", "--log", "{log}", "--log-format", "json"}
	create := Step{Name: "create", Container: "c1", Args: append(slices.Clone(shim), "create", "--bundle", "{bundle}", "--pid-file", "{pidfile}", "{id}"), Expect: "created"}
	start := Step{Name: "start", Container: "c1", Args: append(slices.Clone(shim), "start", "{id}"), Expect: "running"}
	refused := Step{Name: "made-up", Container: "c1", Args: append(slices.Clone(shim), "--no-such-global", "state", "{id}"), Expect: "state-running"}
	accepted := Step{Name: "plain-state", Container: "c1", Args: append(slices.Clone(shim), "state", "{id}"), Expect: "state-running"}
	set := ArgSet{Commit: "0123456789abcdef0123456789abcdef01234567", Version: "test", Steps: []Step{create, start, refused}}

	env := replayEnv(t)
	if _, err := Replay(context.Background(), env, set); err == nil || !strings.Contains(err.Error(), "flag provided but not defined") {
		t.Fatalf("unrecorded refusal: %v, want the unknown-flag failure", err)
	}
	env = replayEnv(t)
	env.Unsupported = map[string]string{"made-up": "a test reason"}
	results, err := Replay(context.Background(), env, set)
	if err != nil || results[len(results)-1].Unsupported != "a test reason" {
		t.Fatalf("recorded refusal: %v (%+v)", err, results)
	}
	env = replayEnv(t)
	env.Unsupported = map[string]string{"plain-state": "a test reason"}
	set.Steps = []Step{create, start, accepted}
	if _, err := Replay(context.Background(), env, set); !errors.Is(err, ErrUnsupportedAccepted) {
		t.Fatalf("recorded but accepted: %v, want ErrUnsupportedAccepted", err)
	}
}
