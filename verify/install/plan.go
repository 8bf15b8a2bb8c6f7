package install

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/nokmem/nokmem/internal/bundle"
	"github.com/nokmem/nokmem/verify/affected"
	"github.com/nokmem/nokmem/verify/binary"
)

// Actions of a plan.
const (
	// ActionReplace: the target gets the bundle's binary.
	ActionReplace = "replace"
	// ActionKeep: the target stays as it is (Decision.Reason says why).
	ActionKeep = "keep"
)

// Decision is what an install does with one target, and why.
type Decision struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// Installed is the file the decision is about (Path, or where it links to).
	Installed string `json:"installed"`
	Action    string `json:"action"`
	Reason    string `json:"reason"`
	// Override would replace a kept target.
	Override Override `json:"override,omitempty"`
}

// resolved is a target with the file it resolves to.
type resolved struct {
	t         Target
	installed string
	fi        fs.FileInfo // of installed; nil when it does not exist
	link      bool        // t.Path is a symlink
}

func resolve(t Target) (resolved, error) {
	r := resolved{t: t, installed: t.Path}
	fi, err := os.Lstat(t.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r, nil
	case err != nil:
		return r, fmt.Errorf("install %s: %w", t.Name, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		r.link = true
		if r.installed, err = filepath.EvalSymlinks(t.Path); err != nil {
			return r, fmt.Errorf("install %s: %w", t.Name, err)
		}
		if fi, err = os.Stat(r.installed); err != nil {
			return r, fmt.Errorf("install %s: %w", t.Name, err)
		}
	}
	if !fi.Mode().IsRegular() {
		return r, fmt.Errorf("install %s: %s is not a regular file (%s); refusing to replace it", t.Name, r.installed, fi.Mode().Type())
	}
	r.fi = fi
	return r, nil
}

// planAll decides every target of o without changing anything. It returns
// the indexes in rec.Entries (entries added when new) of the files to
// replace and the decisions to keep the others. Every refusal is
// collected, so that one run names them all.
func planAll(o Options, rec *Record) (run []int, kept []Decision, err error) {
	var rs []resolved
	for _, t := range o.Targets {
		if o.Manifest.Binary(t.Name) == nil {
			return nil, nil, fmt.Errorf("install: the bundle has no %s", t.Name)
		}
		r, err := resolve(t)
		if err != nil {
			return nil, nil, err
		}
		rs = append(rs, r)
	}
	// One file, one install: targets that resolve to the same file (a
	// docker-runc → runc symlink) are installed once, through the target
	// that is not a link; the links are kept.
	var refusals []*Refusal
	var primaries []resolved
	for _, r := range rs {
		if slices.ContainsFunc(primaries, func(p resolved) bool { return p.installed == r.installed }) {
			continue
		}
		group := slices.DeleteFunc(slices.Clone(rs), func(x resolved) bool { return x.installed != r.installed })
		p := group[0]
		if i := slices.IndexFunc(group, func(x resolved) bool { return !x.link }); i >= 0 {
			p = group[i]
		}
		for _, x := range group {
			if x.t.Name != p.t.Name {
				return nil, nil, fmt.Errorf("install: %s (%s) and %s (%s) are the same file %s, but the bundle has different binaries for them", x.t.Path, x.t.Name, p.t.Path, p.t.Name, r.installed)
			}
			if x.t.Path != p.t.Path {
				kept = append(kept, Decision{Name: x.t.Name, Path: x.t.Path, Installed: x.installed, Action: ActionKeep,
					Reason: fmt.Sprintf("a symlink to %s, which is installed once through %s; the link is kept", x.installed, p.t.Path)})
			}
		}
		if p.link && !o.AllowSymlink {
			refusals = append(refusals, refuse(p.t.Path, OverrideSymlink, "install %s: %s is a symlink to %s, which is no other target; refusing to replace it: %w", p.t.Name, p.t.Path, p.installed, ErrRefused))
			continue
		}
		primaries = append(primaries, p)
	}
	for _, p := range primaries {
		i, d, err := decide(p, rec, o)
		var r *Refusal
		switch {
		case errors.As(err, &r):
			refusals = append(refusals, r)
		case err != nil:
			return nil, nil, err
		case d != nil:
			kept = append(kept, *d)
		default:
			run = append(run, i)
		}
	}
	if len(refusals) > 0 {
		return nil, nil, &PlanError{Refusals: refusals}
	}
	return run, kept, nil
}

// decide plans one file: the index of its entry in rec.Entries when it is
// replaced, or a keep decision, or a *Refusal.
func decide(r resolved, rec *Record, o Options) (int, *Decision, error) {
	t, installed := r.t, r.installed
	b := o.Manifest.Binary(t.Name)
	keep := func(why string) (int, *Decision, error) {
		return -1, &Decision{Name: t.Name, Path: t.Path, Installed: installed, Action: ActionKeep, Reason: why, Override: OverrideVersionChange}, nil
	}
	i := slices.IndexFunc(rec.Entries, func(e Entry) bool { return e.Installed == installed })
	cur := ""
	if r.fi != nil {
		var err error
		if cur, err = binary.FileSHA256(installed); err != nil {
			return -1, nil, fmt.Errorf("install %s: %w", t.Name, err)
		}
	}
	if i >= 0 {
		// Installed before: it must still hold what verify put there (or
		// the original, when an interrupted install had not reached it).
		e := &rec.Entries[i]
		if !e.owns(cur) && !o.Force {
			return -1, nil, refuse(t.Path, OverrideForce, "install %s: %s %w (it has sha256 %s; verify installed %s): someone else changed it, so it is not replaced", t.Name, installed, ErrForeignChange, cmp.Or(cur, "(no file)"), e.NewSHA256)
		}
	}
	if r.fi == nil {
		if i < 0 && !t.Create {
			return -1, nil, refuse(t.Path, OverrideCreate, "install %s: %s does not exist; refusing to create it: %w", t.Name, t.Path, ErrRefused)
		}
		return entryFor(r, rec, i, b, nil), nil, nil
	}
	if cur == b.SHA256 {
		return keep(fmt.Sprintf("already holds the bundle's %s %s (sha256 %s)", t.Name, b.Version, cur))
	}
	id, err := binary.Identify(t.Name, installed, o.Binaries)
	if err != nil {
		return -1, nil, fmt.Errorf("install: %w", err)
	}
	ours := i >= 0 && slices.Contains(rec.Entries[i].Ours, cur)
	var curV affected.Version
	parsed := false
	if id.Upstream != nil {
		curV, parsed = id.Upstream.Version, true
	} else {
		curV, parsed = affected.Parse(t.Name, id.Version)
	}
	fixed := ""
	switch {
	case ours:
		// An upgrade of what an earlier install put there.
	case id.Kind == binary.KindNokmem:
		fixed = fmt.Sprintf("%s at %s is already a nokmem build (%s)", t.Name, installed, id.Reason)
	case id.Kind == binary.KindUnknown:
		if !o.AllowUnknown {
			return -1, nil, refuse(t.Path, OverrideUnknown, "install %s: unknown %s at %s (%s); refusing to replace it: %w", t.Name, t.Name, installed, id.Reason, ErrRefused)
		}
	case id.Upstream != nil && id.Upstream.Verdict == affected.Unaffected:
		fixed = fmt.Sprintf("%s at %s is %s %s, which does not activate kmem accounting (%s); the bundle's %s would only change its version", t.Name, installed, t.Name, id.Upstream.Version.Version, id.Upstream.Reason, b.Version)
	}
	if fixed != "" && !o.AllowVersionChange {
		return keep(fixed)
	}
	if parsed && !o.AllowVersionChange {
		if r := checkVersionChange(t.Name, installed, curV, id.Upstream, b); r != nil {
			return -1, nil, r
		}
	}
	if parsed && !o.AllowSecurityDowngrade {
		if r := checkSecurity(t.Name, installed, curV, b); r != nil {
			return -1, nil, r
		}
	}
	return entryFor(r, rec, i, b, &id), nil, nil
}

// entryFor updates entry i (an earlier install's) or adds a new one for
// r, and returns its index. id is the present binary (nil when none).
func entryFor(r resolved, rec *Record, i int, b *bundle.Binary, id *binary.Binary) int {
	if i >= 0 {
		e := &rec.Entries[i]
		e.NewSHA256 = b.SHA256
		if !slices.Contains(e.Ours, b.SHA256) {
			e.Ours = append(e.Ours, b.SHA256)
		}
		return i
	}
	e := Entry{Target: r.t, Installed: r.installed, NewSHA256: b.SHA256, Ours: []string{b.SHA256}}
	if r.fi != nil {
		e.Existed = true
		e.Original.Mode = r.fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if st, ok := r.fi.Sys().(*syscall.Stat_t); ok {
			e.Original.UID, e.Original.GID = int(st.Uid), int(st.Gid)
		}
		e.Original.SHA256 = id.SHA256
		e.OldKind = id.Kind
		e.Notes = metaNotes(e.Original)
	}
	rec.Entries = append(rec.Entries, e)
	return len(rec.Entries) - 1
}

// metaNotes reports a replaced file's metadata that differs from 0755 root:root.
func metaNotes(m Meta) []string {
	var n []string
	if m.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		n = append(n, fmt.Sprintf("the replaced file was setuid/setgid (mode %s); the new one is not", m.Mode))
	}
	if m.Mode.Perm() != 0o755 {
		n = append(n, fmt.Sprintf("the replaced file had mode %04o; the new one has 0755", m.Mode.Perm()))
	}
	if m.UID != 0 || m.GID != 0 {
		n = append(n, fmt.Sprintf("the replaced file was owned by %d:%d; the new one by root:root", m.UID, m.GID))
	}
	if len(n) > 0 {
		n = append(n, "rollback restores the old metadata")
	}
	return n
}
