package migrate_test

import (
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/verify/migrate"
)

// unrecordedSwap leaves the node as a kill -9 between the swap's rename and
// its journal write does: the run is killed once phase set-aside is
// recorded, then the fresh tree is renamed to kubepods as the next step
// would, and the journal still says set-aside.
func unrecordedSwap(t *testing.T, run func(migrate.Hooks) func() (*migrate.Report, error), rename func(from, to string) error) {
	t.Helper()
	if !runUntilKilled(t, run(killAt(migrate.PhaseSetAside))) {
		t.Fatal("the kill at set-aside never fired")
	}
	if err := rename(migrate.TempName("kubepods"), "kubepods"); err != nil {
		t.Fatalf("setup: the swap's rename: %v", err)
	}
}

// TestUnrecordedSwap: from "fresh tree renamed to kubepods, journal still
// says set-aside", a rollback undoes the swap (the fresh tree out of the
// way first, then the old tree back to kubepods) and puts every process
// back into the original tree; a rerun finishes the migration instead.
func TestUnrecordedSwap(t *testing.T) {
	for _, finish := range []string{"rollback", "rerun"} {
		t.Run(finish, func(t *testing.T) {
			n := newSimNode(t, memcgsim.RHEL78, "qos", true)
			before := n.settings(t)
			unrecordedSwap(t, func(h migrate.Hooks) func() (*migrate.Report, error) { return n.engine(t, h).Migrate }, n.h.Rename)
			if ph := n.phaseOnDisk(t); ph != string(migrate.PhaseSetAside) {
				t.Fatalf("setup: journal phase %q, want set-aside", ph)
			}
			if !strings.Contains(n.describe(t), "kubepods is the fresh tree") {
				t.Fatalf("setup: %s", n.describe(t))
			}
			e := n.engine(t, migrate.Hooks{})
			if finish == "rerun" {
				rep, err := e.Migrate()
				if err != nil {
					t.Fatal(err)
				}
				checksOK(t, rep)
				if rep.Outcome != migrate.OutcomeMigrated {
					t.Errorf("rerun: %s %s", rep.Outcome, rep.Message)
				}
				n.checkEnd(t, before, true)
				return
			}
			rep, err := e.Rollback()
			if err != nil {
				t.Fatal(err)
			}
			checksOK(t, rep)
			if rep.Outcome != migrate.OutcomeRolledBack || !strings.Contains(rep.Message, "from phase set-aside") {
				t.Errorf("rollback: %s %s", rep.Outcome, rep.Message)
			}
			n.checkEnd(t, before, false)
			for _, c := range n.tree {
				if ok, _ := n.sim.KmemActive(kp(c.rel)); !ok {
					t.Errorf("%s is not the original (kmem-active) cgroup after the rollback", kp(c.rel))
				}
			}
			if _, err := n.engine(t, migrate.Hooks{}).Migrate(); err != nil {
				t.Fatalf("migrate after the rollback: %v", err)
			}
			n.checkEnd(t, before, true)
		})
	}
}

// describe returns what a stopped run says about the node: a cleanup is
// refused before the swap is recorded, and its message lists what sits at
// the kubepods, temporary and set-aside paths.
func (n *fixture) describe(t *testing.T) string {
	t.Helper()
	_, err := n.engine(t, migrate.Hooks{}).Cleanup()
	if err == nil {
		t.Fatal("cleanup before the swap was recorded: no refusal")
	}
	return err.Error()
}

// TestUnrecordedSwapRealKernel is the rollback of TestUnrecordedSwap on
// this machine's cgroup v1 hierarchy with real processes and threads.
func TestUnrecordedSwapRealKernel(t *testing.T) {
	for _, finish := range []string{"rollback", "rerun"} {
		t.Run(finish, func(t *testing.T) {
			n := newRealNode(t, 3, 2, 1, 1)
			unrecordedSwap(t, func(h migrate.Hooks) func() (*migrate.Report, error) { return n.engine(t, h).Migrate }, n.h.Rename)
			e := n.engine(t, migrate.Hooks{})
			run := e.Rollback
			if finish == "rerun" {
				run = e.Migrate
			}
			rep, err := run()
			if err != nil {
				t.Fatal(err)
			}
			checksOK(t, rep)
			n.checkReal(t)
		})
	}
}
