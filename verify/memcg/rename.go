package memcg

import (
	"fmt"
	"io/fs"
	"syscall"
)

// Rename renames cgroup oldRel to newRel with rename(2). cgroup v1 allows
// only a rename in place: the new name must be in the same parent and must
// not exist (3.10 kernel/cgroup.c cgroup_rename, 6.18
// kernel/cgroup/cgroup-v1.c cgroup1_rename): a different parent gives EIO,
// an existing name EEXIST. The cgroup keeps its tasks, settings, children,
// memcg ID and kmem state: only its path changes.
func (h Hierarchy) Rename(oldRel, newRel string) error {
	from, to := h.Path(oldRel), h.Path(newRel)
	if err := syscall.Rename(from, to); err != nil {
		return &fs.PathError{Op: fmt.Sprintf("rename to %s", to), Path: from, Err: err}
	}
	return nil
}
