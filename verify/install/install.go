// Package install replaces the node's kubelet and runc binaries with those
// of a signed nokmem node bundle (internal/bundle), in one transaction, and
// rolls them back.
//
// Order of an install: privileges (root, write access to the state
// directory and every target directory) → the bundle's signature and
// contents → a plan per target (identify the present binary; refuse
// symlinks, unknown binaries and files changed since an earlier install) →
// free space → a copy of every present binary → the record, marked
// "installing" → each binary swapped atomically (temp file, fsync, rename,
// 0755 root:root) → the record marked "installed". A failure at any step
// after the first write puts back the binaries already swapped and the
// previous record, so either every target is replaced or none is. After a
// kill -9 between two swaps the record says "installing": a rerun finishes
// the install, a rollback undoes it.
//
// The record keeps, per target, the original binary (backup copy and its
// sha256, mode, owner) from before the first install, and every sha256
// verify put there. Installing a newer bundle is an upgrade: the original
// backups stay the rollback target. Rollback restores a target only when it
// still holds a binary verify installed; anything else is someone else's
// change and is refused unless forced.
//
// One job per file: the record (record.go, recordfile.go, abandon.go), the
// checks before anything is written (preflight.go), the plan, its refusals
// and its version and security guard (plan.go, refusal.go, versionguard.go),
// the transaction and its undo (transaction.go), rollback (rollback.go), the
// checked copy (copy.go), the bundle a caller names (open.go, request.go),
// and the collection of old backups (gc.go). Messages name no command-line
// flag: a refusal names its Override, and the caller says how to give it.
package install

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/verify/binary"
)

// DefaultPubKey is where install looks for the release public key.
const DefaultPubKey = "/etc/nokmem/release.pub"

// Options for Install.
type Options struct {
	// Dir is the verified bundle folder (see Open) and Manifest its manifest.
	Dir      string
	Manifest *bundle.Manifest
	// Source is what the user named (folder or tarball), for the record.
	Source string
	// Signed and KeyID say how Dir was checked; SignatureSkipped records
	// that the signature was not checked.
	Signed           bool
	SignatureSkipped bool
	KeyID            string
	StateDir         string
	Targets          []Target
	Policy
	// Binaries is how existing binaries are identified.
	Binaries binary.Options
	Logger   *slog.Logger
}

// Policy is what an install may replace beyond a stock binary the bundle
// fixes. Each field lifts one kind of refusal (see Override).
type Policy struct {
	// AllowSymlink installs through a symlinked target (to the file it points at).
	AllowSymlink bool
	// AllowUnknown replaces a binary whose version cannot be recognised.
	AllowUnknown bool
	// AllowVersionChange replaces a binary that the bundle does not fix
	// (a nokmem build, a stock version that does not activate kmem) and one
	// that the version guard refuses (see checkVersionChange).
	AllowVersionChange bool
	// AllowSecurityDowngrade puts in place a binary with more known
	// vulnerabilities than the one it replaces (see checkSecurity).
	AllowSecurityDowngrade bool
	// Force replaces a target that changed since verify installed it.
	Force bool
}

// ErrNoTargets: none of the bundle's binaries is on the node, and no
// target asks to be created (Target.Create).
var ErrNoTargets = errors.New("the node has none of the bundle's binaries")

// Install installs o.Targets from the bundle in o.Dir. On any error the
// node is left as it was.
func Install(o Options) (*Record, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	return install(o)
}

// install is Install once the process is known to run as root.
func install(o Options) (*Record, error) {
	log := cmp.Or(o.Logger, slog.Default())
	if len(o.Targets) == 0 {
		return nil, fmt.Errorf("install: %w", ErrNoTargets)
	}
	prev, err := preflight(o.StateDir, o.Targets, log)
	if err != nil {
		return nil, err
	}
	rec := nextRecord(o, prev, log)
	idx, kept, err := planAll(o, rec)
	if err != nil {
		return nil, err
	}
	rec.Kept = kept
	var run []*Entry // the entries this run replaces
	for _, i := range idx {
		run = append(run, &rec.Entries[i])
		rec.Replaced = append(rec.Replaced, rec.Entries[i].Installed)
	}
	if len(run) == 0 {
		// Nothing to replace: the node and the record stay as they are.
		out := &Record{Kept: kept, Replaced: []string{}}
		if prev != nil {
			out.State, out.Bundle, out.Entries = prev.State, prev.Bundle, prev.Entries
		}
		return out, nil
	}
	if err := checkSpace(o, run); err != nil {
		return nil, err
	}
	t := &transaction{dir: o.Dir, rec: rec, run: run, log: log, undo: newUndo(o.StateDir, prev)}
	if err := t.do(); err != nil {
		return nil, err
	}
	collect(o.StateDir, log)
	return rec, nil
}

// nextRecord is the record an install into o.StateDir writes: the previous
// one's entries and history, and this bundle.
func nextRecord(o Options, prev *Record, log *slog.Logger) *Record {
	rec := &Record{State: StateInstalling, Signed: o.Signed, SignatureSkipped: o.SignatureSkipped, KeyID: o.KeyID,
		DevelopmentKey: o.Manifest.SigningKey.Development,
		Bundle:         Bundle{Name: o.Manifest.Name, Source: o.Source, Time: time.Now().UTC()}}
	if prev != nil {
		rec.History = append(slices.Clone(prev.History), prev.Bundle)
		rec.Entries = slices.Clone(prev.Entries)
		if prev.State == StateInstalling {
			log.Warn("an earlier install was interrupted; this install finishes it", "bundle", prev.Bundle.Name)
		}
	}
	return rec
}

// collect frees the backups no record needs after an install; a failure
// only warns, the install is done.
func collect(stateDir string, log *slog.Logger) {
	if g, err := GC(stateDir, nil, false); err != nil {
		log.Warn("install done; collecting old backups failed (run verify gc)", "err", err)
	} else if len(g.Freed) > 0 {
		log.Info("freed old backups", "files", g.Freed, "bytes", g.FreedBytes)
	}
}
