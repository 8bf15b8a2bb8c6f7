package memcgsim

import (
	"strings"
	"syscall"
)

// Rename renames cgroup oldRel to newRel, as rename(2) on cgroupfs does.
// The rules are those of the kernels the simulator models:
//
//   - 3.10 kernel/cgroup.c cgroup_rename ("Only allow simple rename of
//     directories in place"): ENOTDIR unless the source is a directory,
//     EEXIST when the target name exists, EIO when the parent differs
//     (EPERM with sane_behavior, which a plain v1 mount never has);
//   - 6.18 kernel/cgroup/cgroup-v1.c cgroup1_rename: EINVAL for a new name
//     holding '\n', ENOTDIR for a non-directory, EIO when the parent
//     differs, then kernfs_rename's EEXIST when the name exists.
//
// The root cannot be renamed (EBUSY: it is the mount point). The cgroup
// keeps everything it has (ID, kmem state, tasks, settings, children,
// directory inode); only its name changes. A mount sees the change at once.
func (s *Sim) Rename(oldRel, newRel string) error {
	if err := s.rename(oldRel, newRel); err != nil {
		return err
	}
	oldParent, oldName := splitRel(oldRel)
	_, newName := splitRel(newRel)
	s.invalidate(oldParent, oldName, newName)
	return nil
}

func (s *Sim) rename(oldRel, newRel string) error {
	oldParent, oldName := splitRel(oldRel)
	newParent, newName := splitRel(newRel)
	return s.change(Op{Kind: OpRename, Cgroup: oldRel, Data: newRel}, oldParent, func(parent *cgroup) error {
		if oldRel == "" || newRel == "" {
			return syscall.EBUSY
		}
		if s.profile == Modern && strings.Contains(newName, "\n") {
			return syscall.EINVAL // cgroup1_rename
		}
		cg, ok := parent.children[oldName]
		if !ok {
			if isControlFile(oldName, parent.isRoot()) {
				return syscall.ENOTDIR
			}
			return syscall.ENOENT
		}
		np, err := s.lookup(newParent)
		if err != nil {
			return err
		}
		if np != parent {
			return syscall.EIO
		}
		if oldName == newName {
			return nil // rename(2) of a name to itself does nothing
		}
		if _, ok := parent.children[newName]; ok || isControlFile(newName, parent.isRoot()) {
			return syscall.EEXIST
		}
		delete(parent.children, oldName)
		cg.name = newName
		parent.children[newName] = cg
		return nil
	})
}
