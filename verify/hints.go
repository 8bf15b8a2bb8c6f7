package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nokmem/nokmem/verify/install"
)

// The libraries' errors name no flag; the command layer adds what the
// operator can do about them in the words of the command line.

// overrideFlags are the flags that set each install override.
var overrideFlags = map[install.Override]string{
	install.OverrideCreate:            "--create",
	install.OverrideSymlink:           "--allow-symlink",
	install.OverrideUnknown:           "--allow-unknown",
	install.OverrideVersionChange:     "--allow-version-change",
	install.OverrideSecurityDowngrade: "--allow-security-downgrade",
	install.OverrideForce:             "--force",
}

// refusalHint says how to lift an install refusal.
func refusalHint(r *install.Refusal) string {
	switch r.Override {
	case install.OverrideCreate:
		return fmt.Sprintf("--create %s creates it", r.Path)
	case install.OverrideSymlink:
		return "--allow-symlink installs to the file it points at"
	case install.OverrideUnknown:
		return "--allow-unknown overrides"
	}
	return overrideFlags[r.Override] + " installs anyway"
}

// installBundle is install.InstallBundle with its refusals and keep
// decisions worded for the command line (install and run).
func installBundle(r install.Request, stateDir string) (*install.Record, error) {
	rec, err := install.InstallBundle(r)
	if err != nil {
		return nil, explain(err, stateDir)
	}
	keptHints(rec)
	return rec, nil
}

// keptHints adds to each keep decision of rec the flag that would replace
// the target instead.
func keptHints(rec *install.Record) {
	for i, d := range rec.Kept {
		if f := overrideFlags[d.Override]; f != "" {
			rec.Kept[i].Reason += " (" + f + " replaces it)"
		}
	}
}

// explain adds to err the flag or command that deals with it: the flag
// that lifts each install refusal, --create when the node has none of the
// bundle's binaries, --pubkey for a missing key, --force for a rollback
// over someone else's change, and install --abandon for an untrusted
// record. Other errors are returned as they are.
func explain(err error, stateDir string) error {
	var pe *install.PlanError
	var done *explained
	switch {
	case err == nil, errors.As(err, &done):
		return err
	case errors.As(err, &pe):
		lines := make([]string, len(pe.Refusals))
		for i, r := range pe.Refusals {
			lines[i] = fmt.Sprintf("%v (%s)", r, refusalHint(r))
		}
		return &explained{err, strings.Replace(err.Error(), pe.Error(), strings.Join(lines, "\n")+"; nothing was changed", 1)}
	case errors.Is(err, install.ErrNoTargets):
		return &explained{err, err.Error() + " (use --create PATH to install one anyway)"}
	case errors.Is(err, install.ErrNoKey):
		return &explained{err, err.Error() + " or pass --pubkey KEY (--insecure-skip-signature installs without checking, and is recorded)"}
	case errors.Is(err, install.ErrForeignChange):
		return &explained{err, err.Error() + " (--force restores the originals over these changes)"}
	case errors.Is(err, install.ErrUntrustedRecord):
		return &explained{err, err.Error() + fmt.Sprintf("; verify detect shows the node's binaries, and `verify install --abandon --state-dir %s` sets the record aside", stateDir)}
	}
	return err
}

// explained is an error with the command line's advice added.
type explained struct {
	err error
	msg string
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }
