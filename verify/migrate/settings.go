package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/nokmem/nokmem/verify/memcg"
)

// Settings are the memory cgroup files a migration copies. An empty field
// means the file does not exist on this kernel. memory.kmem.limit_in_bytes is
// deliberately absent: any write to it other than -1 re-activates kmem
// accounting on 3.10, which is what the migration removes.
type Settings struct {
	UseHierarchy   string `json:"use_hierarchy,omitempty"`
	Limit          string `json:"limit,omitempty"`
	MemswLimit     string `json:"memsw_limit,omitempty"`
	SoftLimit      string `json:"soft_limit,omitempty"`
	Swappiness     string `json:"swappiness,omitempty"`
	OOMKillDisable string `json:"oom_kill_disable,omitempty"`
	MoveCharge     string `json:"move_charge,omitempty"`
}

// unlimited is how settings spell an unlimited limit: "-1" is accepted by
// every kernel, whatever number it reads back (3.10: 2^63-1, later: rounded).
const unlimited = "-1"

// fields pairs each setting with its file, in the order they are compared.
func (s *Settings) fields() []struct {
	file string
	val  *string
} {
	return []struct {
		file string
		val  *string
	}{
		{memcg.UseHierarchy, &s.UseHierarchy},
		{memcg.Limit, &s.Limit},
		{memcg.MemswLimit, &s.MemswLimit},
		{memcg.SoftLimit, &s.SoftLimit},
		{memcg.Swappiness, &s.Swappiness},
		{memcg.OOMControl, &s.OOMKillDisable},
		{memcg.MoveCharge, &s.MoveCharge},
	}
}

// readSettings reads the settings of cgroup rel, each file once;
// use_hierarchy only when withHierarchy. A missing cgroup is an error; a
// missing file means the kernel does not have it.
func readSettings(c cgfs, rel string, withHierarchy bool) (Settings, error) {
	var s Settings
	for _, f := range s.fields() {
		if f.file == memcg.UseHierarchy && !withHierarchy {
			continue
		}
		v, err := c.ReadString(rel, f.file)
		if errors.Is(err, fs.ErrNotExist) {
			if ok, xerr := c.Exists(rel); xerr != nil {
				return Settings{}, xerr
			} else if !ok {
				return Settings{}, vanishedErr(c.h, rel)
			}
			continue
		}
		if err != nil {
			return Settings{}, err
		}
		if *f.val, err = normalize(f.file, v); err != nil {
			return Settings{}, fmt.Errorf("%s: %w", c.Path(rel, f.file), err)
		}
	}
	return s, nil
}

// readRootSettings reads what a child of the memory root inherits:
// use_hierarchy, swappiness and oom_kill_disable.
func readRootSettings(c cgfs) (Settings, error) {
	var s Settings
	for _, f := range s.fields() {
		if f.file != memcg.UseHierarchy && f.file != memcg.Swappiness && f.file != memcg.OOMControl {
			continue
		}
		v, err := c.ReadString("", f.file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Settings{}, err
		}
		if *f.val, err = normalize(f.file, v); err != nil {
			return Settings{}, fmt.Errorf("%s: %w", c.Path("", f.file), err)
		}
	}
	return s, nil
}

func normalize(file, v string) (string, error) {
	switch file {
	case memcg.OOMControl:
		return oomKillDisable(v)
	case memcg.Limit, memcg.MemswLimit, memcg.SoftLimit:
		return normalizeLimit(v), nil
	}
	return v, nil
}

// inherited is what a fresh child of a cgroup with (effective) settings
// parent reads right after mkdir, for the files want has: use_hierarchy,
// swappiness and oom_kill_disable come from the parent (3.10
// mm/memcontrol.c mem_cgroup_css_online; 6.x mem_cgroup_css_alloc, where
// use_hierarchy is always 1), limits are unlimited, move_charge_at_immigrate
// is 0. The engine checks this model on the first cgroups it creates and
// reads every fresh cgroup instead when the kernel disagrees.
func inherited(parent, want Settings) Settings {
	pick := func(have, v string) string {
		if have == "" {
			return ""
		}
		return v
	}
	return Settings{
		UseHierarchy:   pick(want.UseHierarchy, parent.UseHierarchy),
		Limit:          pick(want.Limit, unlimited),
		MemswLimit:     pick(want.MemswLimit, unlimited),
		SoftLimit:      pick(want.SoftLimit, unlimited),
		Swappiness:     pick(want.Swappiness, parent.Swappiness),
		OOMKillDisable: pick(want.OOMKillDisable, parent.OOMKillDisable),
		MoveCharge:     pick(want.MoveCharge, "0"),
	}
}

// oomKillDisable extracts the writable part of memory.oom_control.
func oomKillDisable(content string) (string, error) {
	for _, line := range strings.Split(content, "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill_disable "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no oom_kill_disable line in %q", content)
}

// normalizeLimit spells every "unlimited" reading as -1.
func normalizeLimit(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err == nil && (n < 0 || n >= memcg.Unlimited) {
		return unlimited
	}
	return v
}

// limitValue orders limits for comparison; -1 is the largest.
func limitValue(v string) int64 {
	if v == unlimited {
		return 1<<63 - 1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 1<<63 - 1
	}
	return n
}

// memswFirst says whether memsw.limit must be written before limit when
// going to (limit, memsw) from a cgroup whose memsw is curMemsw, so that
// limit <= memsw.limit holds after every write (the kernel's EINVAL rule):
// when the new limit exceeds the current memsw limit, memsw goes first.
func memswFirst(newLimit, curMemsw string) bool {
	return limitValue(newLimit) > limitValue(curMemsw)
}

// applyResult tells which settings the kernel refused on a destination.
type applyResult struct {
	// Refused lists the swappiness/oom_control files the kernel rejected
	// with EINVAL (upstream 3.10–3.15 under a hierarchical parent, where
	// children inherit them at creation).
	Refused []string
	Writes  int
}

// applySettings writes want into cgroup rel, whose current settings are
// cur, in the order the kernel needs: use_hierarchy (before rel has
// children), limit and memsw.limit keeping limit <= memsw, soft limit,
// swappiness, oom_control. Values that already match are not written (no
// read: cur is known). move_charge_at_immigrate is left to the mover. It
// returns the settings rel has afterwards.
func applySettings(c cgfs, rel string, want, cur Settings) (Settings, applyResult, error) {
	var res applyResult
	eff := cur
	write := func(file string, curV, wantV string, dst *string) error {
		if wantV == "" || curV == wantV {
			return nil
		}
		if curV == "" {
			return fmt.Errorf("%s: the source has it but the destination does not", c.Path(rel, file))
		}
		res.Writes++
		if err := c.Write(rel, file, wantV); err != nil {
			return err
		}
		*dst = wantV
		return nil
	}
	if err := write(memcg.UseHierarchy, cur.UseHierarchy, want.UseHierarchy, &eff.UseHierarchy); err != nil {
		return eff, res, err
	}
	type lim struct {
		file, cur, want string
		dst             *string
	}
	limits := []lim{{memcg.Limit, cur.Limit, want.Limit, &eff.Limit}, {memcg.MemswLimit, cur.MemswLimit, want.MemswLimit, &eff.MemswLimit}}
	if want.MemswLimit != "" && memswFirst(want.Limit, cur.MemswLimit) {
		limits[0], limits[1] = limits[1], limits[0]
	}
	for _, l := range limits {
		if err := write(l.file, l.cur, l.want, l.dst); err != nil {
			return eff, res, err
		}
	}
	if err := write(memcg.SoftLimit, cur.SoftLimit, want.SoftLimit, &eff.SoftLimit); err != nil {
		return eff, res, err
	}
	for _, f := range []lim{{memcg.Swappiness, cur.Swappiness, want.Swappiness, &eff.Swappiness}, {memcg.OOMControl, cur.OOMKillDisable, want.OOMKillDisable, &eff.OOMKillDisable}} {
		err := write(f.file, f.cur, f.want, f.dst)
		if errors.Is(err, syscall.EINVAL) {
			res.Refused = append(res.Refused, f.file)
			continue
		}
		if err != nil {
			return eff, res, err
		}
	}
	return eff, res, nil
}
