package detect

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcCgroupsLine is the memory line of /proc/cgroups. On 3.10 NumCgroups
// counts live cgroups only, so it does not show leaked IDs.
type ProcCgroupsLine struct {
	Hierarchy  int  `json:"hierarchy"`
	NumCgroups int  `json:"num_cgroups"`
	Enabled    bool `json:"enabled"`
}

// ReadProcCgroups returns the memory line of the /proc/cgroups file at path.
func ReadProcCgroups(path string) (ProcCgroupsLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return ProcCgroupsLine{}, fmt.Errorf("proc cgroups: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 || fields[0] != "memory" {
			continue
		}
		var n [3]int
		for i := range n {
			if n[i], err = strconv.Atoi(fields[i+1]); err != nil {
				return ProcCgroupsLine{}, fmt.Errorf("proc cgroups %s: memory line %q: %w", path, sc.Text(), err)
			}
		}
		return ProcCgroupsLine{Hierarchy: n[0], NumCgroups: n[1], Enabled: n[2] == 1}, nil
	}
	if err := sc.Err(); err != nil {
		return ProcCgroupsLine{}, fmt.Errorf("proc cgroups %s: %w", path, err)
	}
	return ProcCgroupsLine{}, fmt.Errorf("proc cgroups %s: no memory line", path)
}
