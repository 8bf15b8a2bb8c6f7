package detect

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nokmem/nokmem/verify/memcg"
)

// MaxProbeIDs caps the ID-headroom probe: the whole memcg ID space. Each
// empty memcg costs about 33 KB of kernel memory on RHEL 7.8, so a full
// probe briefly takes about 2 GB (measured on RHEL 7.8, see docs/verify-reference.md, "Leaked memcg IDs").
const MaxProbeIDs = 65535

// ProbeCostBytes is the kernel memory an empty memcg takes on RHEL 7.8
// (MemFree delta over 2000 mkdirs: about 33 KB each).
const ProbeCostBytes = 33 << 10

// ErrProbeTooBig: the ID probe asked for would take more kernel memory than
// the node can spare.
var ErrProbeTooBig = errors.New("ID probe too big for the available memory")

// CheckProbeMemory refuses a probe of n cgroups whose kernel memory would
// exceed half of MemAvailable in the meminfo file (a full 65k probe takes
// about 2 GB; a 2 GB guest was OOM-killed by one).
func CheckProbeMemory(meminfo string, n int) error {
	f, err := os.Open(meminfo)
	if err != nil {
		return fmt.Errorf("ID probe: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return fmt.Errorf("ID probe: %s: MemAvailable %q: %w", meminfo, rest, err)
		}
		need := int64(n) * ProbeCostBytes
		if avail := kb << 10; need > avail/2 {
			return fmt.Errorf("%w: %d cgroups would take about %d MiB of kernel memory, more than half of MemAvailable (%d MiB in %s)", ErrProbeTooBig, n, need>>20, avail>>20, meminfo)
		}
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ID probe: %s: %w", meminfo, err)
	}
	return fmt.Errorf("ID probe: %s has no MemAvailable line", meminfo)
}

// IDProbe is the result of the ID-headroom probe.
type IDProbe struct {
	// Cap is how many children the probe was allowed to create.
	Cap int `json:"cap"`
	// Created is how many it created before the cap or the first error.
	Created int `json:"created"`
	// Exhausted is true when mkdir failed the way a full ID space makes it
	// fail (see exhausted): Created is then the number of free IDs.
	Exhausted bool `json:"exhausted"`
	// Errno names the mkdir error that ended the probe, if any.
	Errno string `json:"errno,omitempty"`
}

// exhausted reports whether a mkdir error is the memcg ID space being full:
// ENOSPC (css_id kernels, RHEL ≤7.4; upstream 5.7–6.x idr), ENOMEM (RHEL
// 7.5+ private idr, upstream 4.7–5.6: mem_cgroup_alloc fails) or EBUSY
// (kernels whose mem_cgroup_alloc takes the ID with xa_alloc, which returns
// -EBUSY when no ID is free; seen on 6.18).
func exhausted(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EBUSY)
}

// ProbeIDs creates up to limit scratch cgroups directly under the memory root
// (never kmem-active, so they leak nothing) until the ID space is exhausted,
// then removes them all. While it runs, other mkdirs on the node may fail;
// run it with the kubelet stopped.
func ProbeIDs(h memcg.Hierarchy, limit int, log *slog.Logger) (p IDProbe, err error) {
	if log == nil {
		log = slog.Default()
	}
	if limit > MaxProbeIDs {
		log.Warn("ID probe capped", "asked", limit, "cap", MaxProbeIDs)
		limit = MaxProbeIDs
	}
	p.Cap = limit
	log.Warn("ID probe briefly uses memcg IDs and about 33 KB of kernel memory each; other cgroup creation may fail meanwhile", "cap", limit)
	base := memcg.ScratchName("ids")
	var made []string
	defer func() {
		for i := len(made) - 1; i >= 0; i-- {
			if rerr := h.Rmdir(made[i]); rerr != nil {
				err = errors.Join(err, fmt.Errorf("ID probe cleanup: %w", rerr))
			}
		}
	}()
	for i := 0; i < limit; i++ {
		name := fmt.Sprintf("%s-%d", base, i)
		err := h.Mkdir(name)
		if exhausted(err) {
			p.Exhausted = true
			var errno syscall.Errno
			errors.As(err, &errno)
			p.Errno = errno.Error()
			break
		}
		if err != nil {
			return p, fmt.Errorf("ID probe: %w", err)
		}
		made = append(made, name)
		p.Created++
	}
	return p, nil
}
