package docgen

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/memcg"
)

// verifyWrapper is the `verify` the doc blocks find on PATH: verify built
// from this checkout, with the node's paths pointed at a simulated node
// (a 3.10 simulator mount, a scratch state, lock, /proc and binary
// directory), so a block reads as a user types it and never touches the
// real node. The flags are appended, so they win over the block's own.
const verifyWrapper = `#!/bin/bash
sub=
for a in "$@"; do
	case "$a" in detect|assert|migrate|install|rollback|run|gc) sub=$a; break;; esac
done
extra=()
case "$sub" in
detect) extra=(--os-release "$NODE/osrelease" --slab-dir "$NODE_SLAB" --proc-cgroups "$NODE_PROC_CGROUPS" --search-dirs "$NODE/bin");;
assert) extra=(--os-release "$NODE/osrelease");;
migrate) extra=(--os-release "$NODE/osrelease" --proc "$NODE/proc" --kubelet-path "$NODE/bin/kubelet");;
install|rollback) extra=(--search-dirs "$NODE/bin");;
esac
exec "$VERIFY_BIN" "$@" "${extra[@]}" --root "$NODE_ROOT" --state-dir "$NODE/state" --lock-dir "$NODE/lock"
`

// runnableDocs are the docs whose marked blocks run: the quick start and
// the node guide (and any other page that marks a block).
var runnableDocs = []string{"README.md", "docs/node.md"}

// TestDocCommandsRun runs every ```sh block marked `<!-- runs in test -->`
// in README.md and docs/*.md, with bash -e, from the checkout's root, and
// wants the exit status the marker names (0 unless `exit N`). The blocks
// of the node guide run against a simulated RHEL 7.8 node whose kubepods
// tree has kmem accounting on (three pods of two containers, one process
// each, a stock kubelet v1.12.4). A renamed command or flag exits 64.
func TestDocCommandsRun(t *testing.T) {
	var docs []string
	for _, pat := range Docs {
		m, _ := filepath.Glob(filepath.Join(root, pat))
		docs = append(docs, m...)
	}
	type found struct {
		doc string
		Block
	}
	var blocks []found
	counts := map[string]int{}
	for _, p := range docs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bs, err := Runnable(string(data))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		for _, b := range bs {
			blocks = append(blocks, found{rel, b})
		}
		counts[rel] = len(bs)
	}
	for _, d := range runnableDocs {
		if counts[d] == 0 {
			t.Errorf("%s has no block marked to run in test", d)
		}
	}

	verifyBin := filepath.Join(t.TempDir(), "verify")
	if out, err := exec.Command("go", "build", "-o", verifyBin, "../../verify").CombinedOutput(); err != nil {
		t.Fatalf("go build ./verify: %v\n%s", err, out)
	}
	binDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(binDir, "verify"), []byte(verifyWrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		t.Run(strings.ReplaceAll(b.doc, "/", "_")+"_line"+strconv.Itoa(b.Line), func(t *testing.T) {
			env := append(os.Environ(), "VERIFY_BIN="+verifyBin, "PATH="+binDir+":"+os.Getenv("PATH"))
			if strings.Contains(b.Script, "verify ") {
				env = append(env, simulatedNode(t)...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", b.Script)
			cmd.Dir = abs
			cmd.Env = env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != b.Exit {
				t.Errorf("%s:%d: the block exits %d, the doc says %d\n%s\n--- output\n%s", b.doc, b.Line, code, b.Exit, b.Script, out.String())
			} else {
				t.Logf("%s:%d: exit %d\n%s", b.doc, b.Line, code, out.String())
			}
		})
	}
}

// simulatedNode mounts a RHEL 7.8 simulator with a kmem-active kubepods
// tree and returns the environment the verify wrapper reads.
func simulatedNode(t *testing.T) []string {
	n := memcgtest.Sim(t, memcgsim.RHEL78)
	mkdir := func(rel string) error {
		if err := n.H.Mkdir(rel); err != nil || rel != "kubepods" {
			return err
		}
		// What a stock runc does to every cgroup it creates; the
		// children inherit it.
		if err := n.H.Write(rel, memcg.KmemLimit, "1"); err != nil {
			return err
		}
		return n.H.Write(rel, memcg.KmemLimit, "-1")
	}
	for _, ctr := range memcgtest.BuildKubepods(t, mkdir, memcgtest.QoS, 3, 2) {
		if _, err := n.Sim.AddTask(ctr, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	m := n.Mount
	node := t.TempDir()
	files := map[string]string{
		"osrelease":   "3.10.0-1127.el7.x86_64\n",
		"bin/kubelet": "#!/bin/sh\necho 'Kubernetes v1.12.4'\n",
		"proc/1/comm": "systemd\n",
		"state/.keep": "",
		"lock/.keep":  "",
	}
	for name, data := range files {
		p := filepath.Join(node, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"NODE=" + node, "NODE_ROOT=" + m.Memory, "NODE_SLAB=" + m.Slab, "NODE_PROC_CGROUPS=" + m.ProcCgroups}
}
