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

// Diff lists the files whose values differ between s (wanted) and o (got),
// as file names.
func (s Settings) Diff(o Settings) []string {
	var out []string
	a, b := s.fields(), o.fields()
	for i := range a {
		if *a[i].val != *b[i].val {
			out = append(out, a[i].file)
		}
	}
	return out
}

// value returns the setting held for file.
func (s Settings) value(file string) string {
	for _, f := range s.fields() {
		if f.file == file {
			return *f.val
		}
	}
	return ""
}

// readSettings reads the settings of cgroup rel. A missing cgroup is an
// error; a missing file means the kernel does not have it.
func readSettings(h memcg.Hierarchy, rel string) (Settings, error) {
	if ok, err := exists(h, rel); err != nil {
		return Settings{}, err
	} else if !ok {
		return Settings{}, vanishedErr(h, rel)
	}
	var s Settings
	for _, f := range s.fields() {
		v, err := h.ReadString(rel, f.file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Settings{}, err
		}
		switch f.file {
		case memcg.OOMControl:
			v, err = oomKillDisable(v)
			if err != nil {
				return Settings{}, fmt.Errorf("%s: %w", h.Path(rel, f.file), err)
			}
		case memcg.Limit, memcg.MemswLimit, memcg.SoftLimit:
			v = normalizeLimit(v)
		}
		*f.val = v
	}
	return s, nil
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

// applySettings writes want into cgroup rel in the order the kernel needs:
// use_hierarchy (before rel has children), limit and memsw.limit keeping
// limit <= memsw, soft limit, swappiness, oom_control. Values that already
// match are not written. move_charge_at_immigrate is handled by the mover.
func applySettings(h memcg.Hierarchy, rel string, want Settings) (applyResult, error) {
	var res applyResult
	cur, err := readSettings(h, rel)
	if err != nil {
		return res, err
	}
	write := func(file, curV, wantV string) error {
		if wantV == "" || curV == wantV {
			return nil
		}
		if curV == "" {
			return fmt.Errorf("%s: the source has it but the destination does not", h.Path(rel, file))
		}
		res.Writes++
		return h.Write(rel, file, wantV)
	}
	if err := write(memcg.UseHierarchy, cur.UseHierarchy, want.UseHierarchy); err != nil {
		return res, err
	}
	limits := [][3]string{{memcg.Limit, cur.Limit, want.Limit}, {memcg.MemswLimit, cur.MemswLimit, want.MemswLimit}}
	if want.MemswLimit != "" && memswFirst(want.Limit, cur.MemswLimit) {
		limits[0], limits[1] = limits[1], limits[0]
	}
	for _, l := range limits {
		if err := write(l[0], l[1], l[2]); err != nil {
			return res, err
		}
	}
	if err := write(memcg.SoftLimit, cur.SoftLimit, want.SoftLimit); err != nil {
		return res, err
	}
	for _, f := range [][3]string{{memcg.Swappiness, cur.Swappiness, want.Swappiness}, {memcg.OOMControl, cur.OOMKillDisable, want.OOMKillDisable}} {
		err := write(f[0], f[1], f[2])
		if errors.Is(err, syscall.EINVAL) {
			res.Refused = append(res.Refused, f[0])
			continue
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
