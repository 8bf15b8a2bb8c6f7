package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procTable reads the process table at root (normally /proc; --proc on the
// command line). Every liveness check of the engine goes through it.
type procTable struct{ root string }

func (p procTable) enabled() bool { return p.root != "" }

// start returns the start time of pid (field 22 of /proc/<pid>/stat, in
// clock ticks since boot): with the pid it names one process for good.
func (p procTable) start(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces and parentheses
	if i < 0 {
		return 0, fmt.Errorf("%s/%d/stat: no command field", p.root, pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("%s/%d/stat: %d fields after the command, want ≥20", p.root, pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// threads lists the thread ids of pid (<proc>/<pid>/task).
func (p procTable) threads(pid int) ([]int, error) {
	if !p.enabled() {
		return nil, fmt.Errorf("no process table")
	}
	ents, err := os.ReadDir(filepath.Join(p.root, strconv.Itoa(pid), "task"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}

// alive reports whether the process planned as (pid, start) still runs:
// the pid exists and, when the start time was known, has the same one (a
// pid reused by a new process is not the planned process).
func (p procTable) alive(pid int, start uint64) bool {
	got, err := p.start(pid)
	if err != nil {
		return false
	}
	return start == 0 || got == start
}
