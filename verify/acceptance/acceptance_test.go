package acceptance_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/internal/testenv"
	"github.com/nokmem/nokmem/verify/acceptance"
	"github.com/nokmem/nokmem/verify/assert"
	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/memcg"
	"github.com/nokmem/nokmem/verify/migrate"
	"github.com/nokmem/nokmem/verify/report"
)

// fakeService records the calls and fails the ones told to.
type fakeService struct {
	calls             []string
	failStop, failSta bool
}

func (f *fakeService) Stop(context.Context) error {
	f.calls = append(f.calls, "stop")
	if f.failStop {
		return errors.New("stop refused")
	}
	return nil
}

func (f *fakeService) Start(context.Context) error {
	f.calls = append(f.calls, "start")
	if f.failSta {
		return errors.New("start refused")
	}
	return nil
}

// nokmemBinaries are stand-ins of nokmem builds, known by their sha256
// (--known-sums), with the given runc version ("" for a nokmem build).
func nokmemBinaries(t *testing.T, runc ...string) binary.Options {
	t.Helper()
	testenv.RequireCommand(t, "sh")
	dir := t.TempDir()
	o := binary.Options{SearchDirs: []string{dir}, KnownSums: map[string]string{}}
	for name, v := range map[string]string{"kubelet": "Kubernetes v1.12.4+nokmem", "runc": "runc version 1.0.0-rc5+nokmem"} {
		known := true
		if name == "runc" && len(runc) > 0 {
			v, known = runc[0], false
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+v+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if sum, err := binary.FileSHA256(p); err != nil {
			t.Fatal(err)
		} else if known {
			o.KnownSums[sum] = name
		}
	}
	return o
}

// TestBinariesStep: run's binaries step passed only when every binary was
// a nokmem build (issue 21: "run's binaries step requires every binary to
// be a nokmem build"); a stock runc that does not activate kmem (1.1.4)
// passes now, an affected one (rc5) or one that only claims nokmem does not.
func TestBinariesStep(t *testing.T) {
	for _, tt := range []struct {
		runc string
		pass bool
	}{
		{"runc version 1.1.4", true},
		{"runc version 1.0.0-rc5", false},
		{"runc version 1.0.0-rc5+nokmem.fake", false},
	} {
		t.Run(tt.runc, func(t *testing.T) {
			_, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
			h := memcg.Hierarchy{Root: m.Memory}
			if err := h.Mkdir("kubepods"); err != nil {
				t.Fatal(err)
			}
			osr := filepath.Join(t.TempDir(), "osrelease")
			if err := os.WriteFile(osr, []byte("3.10.0-1127.el7.x86_64\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			res := acceptance.Run(context.Background(), acceptance.Config{
				Hierarchy: h,
				Detect:    detect.Options{Root: m.Memory, OSRelease: osr, ProcCgroups: m.ProcCgroups, SlabDir: m.Slab, Binaries: nokmemBinaries(t, tt.runc)},
				Service:   &fakeService{},
				Migrate:   func(string) (string, bool, error) { return "migrated", false, nil },
			})
			var binaries report.Step
			for _, s := range res.Steps {
				if s.Name == acceptance.StepBinaries {
					binaries = s
				}
			}
			if (binaries.Status == report.Passed) != tt.pass {
				t.Errorf("binaries step %s: %s (%s), want passed %v", binaries.Status, binaries.Message, binaries.Details, tt.pass)
			}
		})
	}
}

// TestRunFailures checks where a failed run stops, whether the kubelet is
// started again, and the exit code.
func TestRunFailures(t *testing.T) {
	realMigrate := func(h memcg.Hierarchy, state string) acceptance.MigrateFunc {
		return func(kp string) (string, bool, error) {
			e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: kp, StateDir: state})
			if err != nil {
				return "", false, err
			}
			r, err := e.Migrate()
			if err != nil {
				return "", true, err
			}
			return r.Message, false, nil
		}
	}
	tests := []struct {
		name      string
		svc       fakeService
		migrate   func(h memcg.Hierarchy, state string) acceptance.MigrateFunc
		wantStep  string
		wantCalls []string
		restarted bool
		wantNext  string
		cleanup   acceptance.CleanupFunc
	}{
		{"passes", fakeService{}, realMigrate, "", []string{"stop", "start"}, false, "", nil},
		{"passes with cleanup", fakeService{}, realMigrate, "", []string{"stop", "start"}, false, "", func(context.Context) (string, error) {
			time.Sleep(20 * time.Millisecond)
			return "old tree removed", nil
		}},
		{"cleanup fails", fakeService{}, realMigrate, acceptance.StepCleanup, []string{"stop", "start"}, false, "finish the cleanup", func(context.Context) (string, error) {
			return "", errors.New("rmdir nokmem-migrate-old: device or resource busy")
		}},
		{"stop fails", fakeService{failStop: true}, realMigrate, acceptance.StepStop, []string{"stop", "start"}, true, "could not be stopped", nil},
		{"migrate fails untouched", fakeService{}, func(memcg.Hierarchy, string) acceptance.MigrateFunc {
			return func(string) (string, bool, error) { return "", false, errors.New("kubelet still running") }
		}, acceptance.StepMigrate, []string{"stop", "start"}, true, "no cgroup was changed", nil},
		{"migrate fails half-way", fakeService{}, func(memcg.Hierarchy, string) acceptance.MigrateFunc {
			return func(string) (string, bool, error) {
				return "", true, errors.New("rmdir kubepods: device or resource busy")
			}
		}, acceptance.StepMigrate, []string{"stop"}, false, "verify migrate", nil},
		{"start fails", fakeService{failSta: true}, realMigrate, acceptance.StepStart, []string{"stop", "start"}, false, "start it by hand", nil},
		{"migration skipped, assert fails", fakeService{}, func(memcg.Hierarchy, string) acceptance.MigrateFunc {
			return func(string) (string, bool, error) { return "pretended", false, nil }
		}, acceptance.StepAssert, []string{"stop", "start"}, false, "activated kmem", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, m := memcgsim.MountForTest(t, memcgsim.RHEL78)
			h := memcg.Hierarchy{Root: m.Memory}
			for _, step := range []func() error{
				func() error { return h.Mkdir("kubepods") },
				func() error { return h.Write("kubepods", memcg.KmemLimit, "1") },
				func() error { return h.Mkdir("kubepods/pod1") },
			} {
				if err := step(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := sim.AddTask("kubepods/pod1", 1<<20); err != nil {
				t.Fatal(err)
			}
			osr := filepath.Join(t.TempDir(), "osrelease")
			if err := os.WriteFile(osr, []byte("3.10.0-1127.el7.x86_64\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			svc := tt.svc
			res := acceptance.Run(context.Background(), acceptance.Config{
				Hierarchy: h,
				Detect:    detect.Options{Root: m.Memory, OSRelease: osr, ProcCgroups: m.ProcCgroups, SlabDir: m.Slab, Binaries: nokmemBinaries(t)},
				Service:   &svc,
				Migrate:   tt.migrate(h, t.TempDir()),
				Cleanup:   tt.cleanup,
			})
			wantCode := 0
			if tt.wantStep != "" {
				wantCode = acceptance.ExitCodes[tt.wantStep]
			}
			if res.StoppedAt != tt.wantStep || res.ExitCode != wantCode {
				t.Errorf("stopped at %q exit %d, want %q exit %d (steps %+v)", res.StoppedAt, res.ExitCode, tt.wantStep, wantCode, res.Steps)
			}
			if !slices.Equal(svc.calls, tt.wantCalls) || res.KubeletRestarted != tt.restarted {
				t.Errorf("service calls %v restarted %v, want %v %v", svc.calls, res.KubeletRestarted, tt.wantCalls, tt.restarted)
			}
			if !strings.Contains(res.Next, tt.wantNext) {
				t.Errorf("next %q, want %q", res.Next, tt.wantNext)
			}
			if len(res.Steps) != len(acceptance.Steps) {
				t.Errorf("%d steps recorded, want all %d (skipped ones included)", len(res.Steps), len(acceptance.Steps))
			}
			// The downtime covers stop → start whenever the start step passed.
			startPassed := slices.ContainsFunc(res.Steps, func(s report.Step) bool { return s.Name == acceptance.StepStart && s.Status == report.Passed })
			if startPassed != (res.Downtime > 0) || res.DowntimeSeconds != res.Downtime.Seconds() {
				t.Errorf("downtime %s (%v s) with start passed %v", res.Downtime, res.DowntimeSeconds, startPassed)
			}
			if tt.cleanup != nil && tt.wantStep == "" && (res.Cleanup < 20*time.Millisecond || res.CleanupSummary != "old tree removed") {
				t.Errorf("cleanup %s %q, want ≥20ms and its summary", res.Cleanup, res.CleanupSummary)
			}
		})
	}
}

// TestRealHierarchy runs detect, the migration and assert on a scratch
// kubepods tree on this machine's memory hierarchy, with real processes.
func TestRealHierarchy(t *testing.T) {
	tr := memcgtest.Real(t)
	ctrs := tr.Kubepods(memcgtest.QoS, 3, 1)
	var procs []*memcgtest.Proc
	for _, c := range ctrs {
		procs = append(procs, tr.Sleep(c))
	}
	h := tr.H
	kp := tr.Rel("kubepods")
	s, err := h.ProbeSlabinfo()
	if err != nil {
		t.Fatal(err)
	}
	all, err := h.Walk(kp)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1+2+3+3 {
		t.Fatalf("walk %v", all)
	}
	// Oracle independent of detect: a cgroup counts as kmem-active when its
	// memory.kmem.slabinfo can be read (3.10 answers EIO until kmem
	// accounting is activated; modern cgroup v1 answers for every cgroup).
	active, err := memcg.KmemActive(h, all, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, rel := range all {
		if _, err := os.ReadFile(filepath.Join(h.Root, rel, "memory.kmem.slabinfo")); err == nil {
			want = append(want, rel)
		}
	}
	if !slices.Equal(active, want) && !(len(active) == 0 && len(want) == 0) {
		t.Errorf("KmemActive = %v, want the cgroups whose slabinfo reads: %v", active, want)
	}

	e, err := migrate.New(migrate.Config{Hierarchy: h, Kubepods: kp, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.Migrate()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Processes != len(procs) {
		t.Errorf("migrated %d processes, want %d", rep.Processes, len(procs))
	}
	for i, p := range procs {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid), "cgroup"))
		if err != nil {
			t.Fatal(err)
		}
		want := "/" + tr.Rel(ctrs[i])
		if !strings.Contains(string(b), ":memory:"+want+"\n") {
			t.Errorf("pid %d not back in %s:\n%s", p.Pid, want, b)
		}
	}

	a, err := assert.Check(h, assert.Options{Kubepods: kp})
	if err != nil {
		t.Fatal(err)
	}
	if s == memcg.SlabinfoEIO {
		if !a.Applicable || !a.Passed || a.Checked != len(all)+1 {
			t.Errorf("assert on 3.10 semantics after migration: %+v", a)
		}
	} else if a.Applicable || !a.Passed || !strings.Contains(a.Reason, string(s)) {
		t.Errorf("assert on a %s-slabinfo kernel: %+v, want not applicable", s, a)
	}
	if a, err := assert.Check(h, assert.Options{Kubepods: kp, Strict: true}); err != nil || (s != memcg.SlabinfoEIO && a.Passed) {
		t.Errorf("strict assert: %+v, %v", a, err)
	}
}
