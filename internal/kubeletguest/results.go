package kubeletguest

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/runcproof/qemuproof"
)

// Report is a parsed guest console log with the host's verdicts.
type Report struct {
	*qemuproof.Report
	// KmemKernel: this kernel activates v1 kmem accounting (the probe's
	// slabinfo turned readable and non-empty), so the kmem checks apply.
	KmemKernel bool
	// Verdicts are Evaluate's checks, in order.
	Verdicts []Verdict
	// Wall is how long qemu ran, boot to power-off.
	Wall time.Duration
}

// Verdict is one check judged on the host.
type Verdict struct {
	Name   string
	Status string // ok, fail or n/a (the kernel does not activate kmem)
	Detail string
}

// Required are the plumbing checks every run must report as ok, whatever
// the kernel.
func Required() []string {
	req := []string{"containerd-start", "images"}
	for _, k := range Kinds {
		req = append(req, k+"-kubelet-start", k+"-pods", k+"-churn", k+"-kubelet-stop")
	}
	return req
}

// ErrGuest is returned when a check failed or is missing.
var ErrGuest = errors.New("kubelet guest failed")

// Parse reads a console log with qemuproof's parser (its own required
// checks do not apply here) and evaluates it.
func Parse(r io.Reader) (*Report, error) {
	qr, err := qemuproof.Parse(r)
	if err != nil && !errors.Is(err, qemuproof.ErrProof) {
		return nil, err
	}
	return Evaluate(qr)
}

// Fields splits a result's detail into its key=value pairs.
func Fields(detail string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(detail) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

func intField(r *qemuproof.Result, key string) (int, bool) {
	if r == nil {
		return 0, false
	}
	v, ok := Fields(r.Detail)[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// Evaluate judges the guest's facts. Plumbing: every Required check ok, no
// check failed, the script reached its end. kmem, on a kernel that
// activates it (kernel-kmem after=active, as 3.10 does): every memory
// cgroup under the stock kubelet's kubepods reads its slabinfo (kmem
// active) and its pod churn grew the kmemcg ids (leaked memcg IDs); every
// one under the nokmem kubelet's fails with EIO and its churn grew none.
// On a kernel that ignores kmem limit writes (4.x with nokmem, 5.x, 6.x)
// the kmem checks are n/a.
func Evaluate(qr *qemuproof.Report) (*Report, error) {
	rep := &Report{Report: qr}
	add := func(name, status, detail string) {
		rep.Verdicts = append(rep.Verdicts, Verdict{name, status, detail})
	}
	for _, res := range qr.Results {
		if res.Status == "fail" {
			add(res.Name, "fail", res.Detail)
		}
	}
	for _, name := range Required() {
		switch res := qr.Get(name); {
		case res == nil:
			add(name, "fail", "not reported")
		case res.Status == "ok":
			add(name, "ok", res.Detail)
		}
	}
	if probe := qr.Get("kernel-kmem"); probe == nil {
		add("kernel-kmem", "fail", "not reported")
	} else {
		rep.KmemKernel = Fields(probe.Detail)["after"] == "active"
	}
	for _, k := range Kinds {
		slab, leak := qr.Get(k+"-slabinfo"), qr.Get(k+"-leak")
		n, okN := intField(slab, "cgroups")
		active, _ := intField(slab, "active")
		eio, _ := intField(slab, "eio")
		before, okB := intField(leak, "ids_before")
		after, okA := intField(leak, "ids_after")
		if !okN || !okB || !okA {
			add(k+"-kmem", "fail", "slabinfo or leak figures not reported")
			continue
		}
		slabFacts := fmt.Sprintf("%d memory cgroups under /%s/kubepods: %s", n, k, slab.Detail)
		leakFacts := fmt.Sprintf("kmemcg ids %d → %d over the churn (%s)", before, after, leak.Detail)
		if !rep.KmemKernel {
			add(k+"-slabinfo", "n/a", "this kernel does not activate v1 kmem; "+slabFacts)
			add(k+"-leak", "n/a", "this kernel does not activate v1 kmem; "+leakFacts)
			continue
		}
		wantActive := k == "stock"
		switch {
		case n == 0:
			add(k+"-slabinfo", "fail", "no memory cgroups under kubepods")
		case wantActive && active == n:
			add(k+"-slabinfo", "ok", "kmem active on all: "+slabFacts)
		case !wantActive && eio == n:
			add(k+"-slabinfo", "ok", "EIO on all: "+slabFacts)
		case wantActive:
			add(k+"-slabinfo", "fail", "want kmem active (slabinfo readable) on all: "+slabFacts)
		default:
			add(k+"-slabinfo", "fail", "want EIO on all: "+slabFacts)
		}
		switch {
		case wantActive && after > before:
			add(k+"-leak", "ok", fmt.Sprintf("%d leaked: %s", after-before, leakFacts))
		case !wantActive && after == before:
			add(k+"-leak", "ok", "none leaked: "+leakFacts)
		case wantActive:
			add(k+"-leak", "fail", "want leaked ids to grow with pod churn: "+leakFacts)
		default:
			add(k+"-leak", "fail", fmt.Sprintf("%d leaked: %s", after-before, leakFacts))
		}
	}
	if v := qr.Get("verify"); v != nil && v.Detail == "enabled" {
		rep.evaluateMigration(qr, add)
	}
	if !qr.Done {
		add("done", "fail", "the guest script did not reach its end ("+qemuproof.DoneLine+")")
	}
	return rep, rep.err()
}

// VerifyRequired are the checks of the migration part (verify run
// --bundle under the stock kubelet) that must be ok when it ran.
var VerifyRequired = []string{"migrate-pods", "verify-run", "verify-containers", "verify-assert"}

// evaluateMigration judges the migration part: its checks ok and, on a
// kernel that activates kmem, the stock kubelet's kubepods tree kmem-active
// before `verify run` and every cgroup of the migrated tree EIO after.
func (rep *Report) evaluateMigration(qr *qemuproof.Report, add func(name, status, detail string)) {
	for _, name := range VerifyRequired {
		switch res := qr.Get(name); {
		case res == nil:
			add(name, "fail", "not reported")
		case res.Status == "ok":
			add(name, "ok", res.Detail)
		}
	}
	for _, c := range []struct {
		name, want string
	}{{"migrate-slabinfo-before", "active"}, {"migrate-slabinfo-after", "eio"}} {
		res := qr.Get(c.name)
		n, ok := intField(res, "cgroups")
		if !ok {
			add(c.name, "fail", "not reported")
			continue
		}
		got, _ := intField(res, c.want)
		switch {
		case !rep.KmemKernel:
			add(c.name, "n/a", "this kernel does not activate v1 kmem; "+res.Detail)
		case n > 0 && got == n:
			add(c.name, "ok", c.want+" on all: "+res.Detail)
		default:
			add(c.name, "fail", "want "+c.want+" on all: "+res.Detail)
		}
	}
}

func (rep *Report) err() error {
	var bad []string
	for _, v := range rep.Verdicts {
		if v.Status == "fail" {
			bad = append(bad, v.Name+": "+v.Detail)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrGuest, strings.Join(bad, "\n  "))
	}
	return nil
}
