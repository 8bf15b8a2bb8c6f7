package nodeexec_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/nodeexec"
)

func script(t *testing.T, body string) string {
	t.Helper()
	testenv.RequireCommand(t, "sh")
	testenv.RequireCommand(t, "sleep")
	p := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunHang is the hang: a stand-in that keeps its stdout open
// (`sleep 120` inherits it) must not hold Run past timeout + WaitDelay,
// and the sleep must be gone afterwards.
func TestRunHang(t *testing.T) {
	for _, tt := range []struct{ name, body string }{
		{"sleeps", "echo 'Kubernetes v1.12.4'\nsleep 120\n"},
		{"child holds stdout", "echo 'Kubernetes v1.12.4'\nsleep 120 &\necho $! > \"$0.pid\"\nexit 0\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := script(t, tt.body)
			start := time.Now()
			out, _, err := nodeexec.Run(context.Background(), 500*time.Millisecond, p, "--version")
			took := time.Since(start)
			t.Logf("returned after %s: %v", took.Round(time.Millisecond), err)
			if err == nil || !strings.Contains(string(out), "v1.12.4") {
				t.Fatalf("out %q, err %v; want the output and an error", out, err)
			}
			if took > 30*time.Second {
				t.Fatalf("Run hung for %s", took)
			}
			if b, rerr := os.ReadFile(p + ".pid"); rerr == nil {
				pid := strings.TrimSpace(string(b))
				deadline := time.Now().Add(2 * time.Second)
				for alive(pid) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if alive(pid) {
					t.Errorf("the sleep %s left behind is still running", pid)
				}
			}
		})
	}
}

func TestRunOK(t *testing.T) {
	p := script(t, "echo out; echo err >&2\n")
	out, errb, err := nodeexec.Run(context.Background(), 5*time.Second, p)
	if err != nil || string(out) != "out\n" || string(errb) != "err\n" {
		t.Fatalf("%q %q %v", out, errb, err)
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}
