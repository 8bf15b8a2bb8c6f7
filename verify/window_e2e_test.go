package main

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/binary"
)

// slowIdentify is how long the stand-in kubelet's --version takes: what
// identifying the 136 MB kubelet costs on a slow machine.
const slowIdentify = 1500 * time.Millisecond

// slowNode is a simulated 3.10 node whose installed kubelet (a nokmem
// build by checksum) is slow to identify, running as pid 4242 of a fake
// process table.
func slowNode(t *testing.T) (n *node, kubelet, sums, proc string) {
	n = newNode(t, memcgsim.RHEL78)
	n.kubelet("kubepods", 3)
	n.write("bin/kubelet", fmt.Sprintf("#!/bin/sh\nsleep %.1f\necho 'Kubernetes v1.12.4+nokmem.test'\n", slowIdentify.Seconds()), 0o755)
	n.write("bin/runc", "#!/bin/sh\necho 'runc version 1.3.6+nokmem.test'\n", 0o755)
	kubelet, proc = n.path("bin/kubelet"), n.path("proc")
	var list string
	for _, b := range []string{"kubelet", "runc"} {
		sum, err := binary.FileSHA256(n.path("bin/" + b))
		if err != nil {
			t.Fatal(err)
		}
		list += sum + "  " + b + "\n"
	}
	n.write("SHA256SUMS", list, 0o644)
	n.write("proc/4242/comm", "kubelet\n", 0o644)
	if err := os.Symlink(kubelet, n.path("proc/4242/exe")); err != nil {
		t.Fatal(err)
	}
	return n, kubelet, n.path("SHA256SUMS"), proc
}

// TestManualFlowWindow: the README's manual flow (migrate --preflight
// with the kubelet up; stop; migrate --no-cleanup; start) keeps the
// kubelet down no longer than `verify run` does: neither identifies the
// kubelet inside the window. Without the preflight the window holds the
// identification (the case that shows this test can fail).
func TestManualFlowWindow(t *testing.T) {
	manual := func(t *testing.T, preflight bool) time.Duration {
		n, kubelet, sums, proc := slowNode(t)
		common := []string{"--kubelet-path", kubelet, "--known-sums", sums, "--proc", proc, "--os-release", n.path("osrelease")}
		if preflight {
			if out, stderr, code := n.verify(append([]string{"migrate", "--preflight"}, common...)...); code != 0 {
				t.Fatalf("migrate --preflight: exit %d\n%s%s", code, out, stderr)
			}
		}
		if err := os.RemoveAll(n.path("proc/4242")); err != nil { // the operator stops the kubelet
			t.Fatal(err)
		}
		start := time.Now()
		out, stderr, code := n.verify(append([]string{"migrate", "--no-cleanup"}, common...)...)
		window := time.Since(start)
		if code != 0 {
			t.Fatalf("migrate --no-cleanup: exit %d\n%s%s", code, out, stderr)
		}
		return window
	}
	withPreflight, without := manual(t, true), manual(t, false)

	n, _, sums, proc := slowNode(t)
	args := append([]string{"run"}, n.detectArgs()...)
	args = append(args, "--known-sums", sums, "--proc", proc, "--kubelet-timeout", "20s", "-o", "json",
		"--stop-cmd", "rm -rf "+proc+"/4242",
		"--start-cmd", fmt.Sprintf("mkdir -p %[1]s/4242 && ln -s %[2]s %[1]s/4242/exe", proc, n.path("bin/kubelet")))
	out, stderr, code := n.verify(args...)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s%s", code, out, stderr)
	}
	var res acceptance.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("run JSON: %v\n%s", err, out)
	}
	t.Logf("kubelet down: manual flow %s (without --preflight %s), verify run %s; identifying the kubelet takes %s",
		withPreflight.Round(time.Millisecond), without.Round(time.Millisecond), res.Downtime.Round(time.Millisecond), slowIdentify)
	if withPreflight >= slowIdentify || res.Downtime >= slowIdentify {
		t.Errorf("the kubelet was identified inside the window: manual flow %s, verify run %s, identification %s", withPreflight, res.Downtime, slowIdentify)
	}
	if without < slowIdentify {
		t.Errorf("without --preflight the window %s should hold the identification (%s): the stand-in is not slow", without, slowIdentify)
	}
}
