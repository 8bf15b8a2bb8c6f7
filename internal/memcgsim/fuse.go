package memcgsim

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Mount is a FUSE mount of a simulator. The mount point looks like a small
// system root, so a node tool can be pointed at it path by path:
//
//	<Root>/sys/fs/cgroup/memory   the memory hierarchy (Memory)
//	<Root>/sys/kernel/slab        slab caches with per-memcg aliases (Slab)
//	<Root>/proc/cgroups           the memory line of /proc/cgroups (ProcCgroups)
type Mount struct {
	Root        string
	Memory      string
	Slab        string
	ProcCgroups string
	server      *fuse.Server

	mu sync.Mutex
	// dirs are the kernel-known directory inodes by cgroup serial, for
	// invalidating entries changed through the Go API.
	dirs map[uint64]*fs.Inode
}

// fsName names the simulator's mounts (source memcgsim, type fuse.memcgsim).
const fsName = "memcgsim"

// Mount serves s on the existing empty directory dir. It needs root (it
// mounts directly, without fusermount) and /dev/fuse.
//
// File contents are never cached (direct I/O) and failed lookups are not
// cached either, so new cgroups, tasks and settings show at once. Found
// names are cached for a second, which makes path walks about three times
// faster. A cgroup removed or renamed through the Go API (Sim.Rmdir,
// Sim.Rename) rather than through the mount is invalidated in the kernel's
// cache at once (FUSE_NOTIFY_INVAL_ENTRY).
func (s *Sim) Mount(dir string) (*Mount, error) {
	zero, cached := time.Duration(0), time.Second
	root := &fs.Inode{}
	mnt := &Mount{dirs: map[uint64]*fs.Inode{}}
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true, // mount(2) itself; never fusermount
			AllowOther:        true,
			FsName:            fsName,
			Name:              fsName, // the mount's type is fuse.memcgsim

			DisableXAttrs: true,
			// A walk needs names and types only; READDIRPLUS would look up
			// every control file of every cgroup it lists.
			DisableReadDirPlus: true,
		},
		EntryTimeout:    &cached,
		AttrTimeout:     &cached,
		NegativeTimeout: &zero,
		OnAdd: func(ctx context.Context) {
			dirs := func(parent *fs.Inode, names ...string) *fs.Inode {
				for _, n := range names {
					ch := parent.NewPersistentInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR})
					parent.AddChild(n, ch, false)
					parent = ch
				}
				return parent
			}
			cgroup := dirs(root, "sys", "fs", "cgroup")
			memRoot := cgroup.NewPersistentInode(ctx, &cgDir{sim: s, mnt: mnt, serial: s.root.serial}, fs.StableAttr{Mode: syscall.S_IFDIR})
			mnt.register(s.root.serial, memRoot)
			cgroup.AddChild("memory", memRoot, false)
			kernel := dirs(root.GetChild("sys"), "kernel")
			kernel.AddChild("slab", kernel.NewPersistentInode(ctx, &slabDir{sim: s}, fs.StableAttr{Mode: syscall.S_IFDIR}), false)
			proc := dirs(root, "proc")
			proc.AddChild("cgroups", proc.NewPersistentInode(ctx, &procCgroups{sim: s}, fs.StableAttr{Mode: syscall.S_IFREG}), false)
		},
	}
	server, err := fs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount simulator on %s: %w", dir, err)
	}
	mnt.Root, mnt.server = dir, server
	mnt.Memory = filepath.Join(dir, "sys/fs/cgroup/memory")
	mnt.Slab = filepath.Join(dir, "sys/kernel/slab")
	mnt.ProcCgroups = filepath.Join(dir, "proc/cgroups")
	s.mu.Lock()
	s.inval = mnt.invalidate
	s.mu.Unlock()
	return mnt, nil
}

func (m *Mount) register(serial uint64, ino *fs.Inode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dirs[serial] = ino
}

// invalidate drops name under the directory of cgroup parent from the
// kernel's entry cache, if the kernel knows that directory.
func (m *Mount) invalidate(parent uint64, name string) {
	m.mu.Lock()
	ino := m.dirs[parent]
	m.mu.Unlock()
	if ino != nil {
		ino.NotifyEntry(name)
	}
}

// invalidateWait bounds how long a Go API change waits for the kernel to
// take an invalidation. A change made by a hook inside a FUSE request on
// the same directory cannot complete before that request returns (the
// kernel holds the directory's lock); it then completes in the background.
const invalidateWait = 200 * time.Millisecond

// invalidate tells the mount, if any, that names under cgroup parentRel
// changed through the Go API.
func (s *Sim) invalidate(parentRel string, names ...string) {
	s.mu.Lock()
	inval := s.inval
	parent, err := s.lookup(parentRel)
	s.mu.Unlock()
	if inval == nil || err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, n := range names {
			inval(parent.serial, n)
		}
	}()
	select {
	case <-done:
	case <-time.After(invalidateWait):
	}
}

// Unmount unmounts the file system and stops serving it. When it stays
// busy (a file left open), it is detached lazily so that no mount is left
// behind, and the busy error is returned.
func (m *Mount) Unmount() error {
	err := m.server.Unmount()
	if err == nil {
		m.server.Wait()
		return nil
	}
	if derr := syscall.Unmount(m.Root, syscall.MNT_DETACH); derr != nil {
		return fmt.Errorf("unmount simulator at %s: %w (lazy unmount: %v)", m.Root, err, derr)
	}
	return fmt.Errorf("unmount simulator at %s: %w (detached lazily)", m.Root, err)
}

// errnoOf turns a simulator or hook error into the errno FUSE returns.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

// cgDir is a cgroup directory. It names its cgroup by serial number, so a
// rename (which keeps the inode, as on cgroupfs) keeps it valid.
type cgDir struct {
	fs.Inode
	sim    *Sim
	mnt    *Mount
	serial uint64
}

// rel returns the cgroup's current path, or ENOENT once it was removed.
func (d *cgDir) rel() (string, syscall.Errno) {
	rel, err := d.sim.relOf(d.serial)
	return rel, errnoOf(err)
}

var (
	_ fs.NodeLookuper  = (*cgDir)(nil)
	_ fs.NodeReaddirer = (*cgDir)(nil)
	_ fs.NodeMkdirer   = (*cgDir)(nil)
	_ fs.NodeRmdirer   = (*cgDir)(nil)
	_ fs.NodeRenamer   = (*cgDir)(nil)
	_ fs.NodeGetattrer = (*cgDir)(nil)
)

// Inode numbers: a cgroup's directory is serial<<6, its control files
// serial<<6 | (index+1), so a cgroup keeps its inode numbers for its
// lifetime and a recreated cgroup gets new ones, as on cgroupfs.
func dirIno(serial uint64) uint64             { return serial << 6 }
func fileIno(serial uint64, index int) uint64 { return serial<<6 | uint64(index+1) }

func (d *cgDir) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if _, errno := d.rel(); errno != 0 {
		return errno
	}
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (d *cgDir) child(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	rel, errno := d.rel()
	if errno != 0 {
		return nil, errno
	}
	e, err := d.sim.entry(rel, name)
	if err != nil {
		return nil, errnoOf(err)
	}
	if e.dir {
		out.Mode = syscall.S_IFDIR | 0o755
		ino := d.NewInode(ctx, &cgDir{sim: d.sim, mnt: d.mnt, serial: e.serial}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: dirIno(e.serial)})
		d.mnt.register(e.serial, ino)
		return ino, 0
	}
	mode := uint32(e.mode.Perm())
	out.Mode = syscall.S_IFREG | mode
	return d.NewInode(ctx, &ctlFile{sim: d.sim, serial: d.serial, name: name, mode: mode}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: fileIno(e.serial, e.index)}), 0
}

func (d *cgDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return d.child(ctx, name, out)
}

func (d *cgDir) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	rel, errno := d.rel()
	if errno != 0 {
		return nil, errno
	}
	l, err := d.sim.list(rel)
	if err != nil {
		return nil, errnoOf(err)
	}
	ents := make([]fuse.DirEntry, 0, len(l.files)+len(l.children))
	for _, f := range l.files {
		ents = append(ents, fuse.DirEntry{Name: f.name, Mode: syscall.S_IFREG})
	}
	for _, k := range l.children {
		ents = append(ents, fuse.DirEntry{Name: k, Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(ents), 0
}

func (d *cgDir) Mkdir(ctx context.Context, name string, _ uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	rel, errno := d.rel()
	if errno != 0 {
		return nil, errno
	}
	if err := d.sim.Mkdir(join(rel, name)); err != nil {
		return nil, errnoOf(err)
	}
	return d.child(ctx, name, out)
}

func (d *cgDir) Rmdir(_ context.Context, name string) syscall.Errno {
	rel, errno := d.rel()
	if errno != 0 {
		return errno
	}
	return errnoOf(d.sim.rmdir(join(rel, name)))
}

// Rename is rename(2) of a cgroup directory; the rules are in Sim.Rename.
// RENAME_EXCHANGE and RENAME_WHITEOUT are refused (EINVAL): cgroupfs has
// no such support on either kernel.
func (d *cgDir) Rename(_ context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	const renameNoReplace = 1
	if flags&^renameNoReplace != 0 {
		return syscall.EINVAL
	}
	rel, errno := d.rel()
	if errno != 0 {
		return errno
	}
	np, ok := newParent.(*cgDir)
	if !ok {
		return syscall.EIO
	}
	newRel, errno := np.rel()
	if errno != 0 {
		return errno
	}
	return errnoOf(d.sim.rename(join(rel, name), join(newRel, newName)))
}

// ctlFile is a control file. Reads are generated at the first read of an
// open file (like seq_file) so that errors such as slabinfo's EIO come from
// read(2), not open(2); every write(2) is one simulator write.
type ctlFile struct {
	fs.Inode
	sim    *Sim
	serial uint64 // of the cgroup the file belongs to
	name   string
	mode   uint32
}

var (
	_ fs.NodeOpener    = (*ctlFile)(nil)
	_ fs.NodeReader    = (*ctlFile)(nil)
	_ fs.NodeWriter    = (*ctlFile)(nil)
	_ fs.NodeGetattrer = (*ctlFile)(nil)
	_ fs.NodeSetattrer = (*ctlFile)(nil)
)

// handle keeps the content generated by the first read of an open file.
type handle struct {
	mu   sync.Mutex
	data []byte
	read bool
}

func (f *ctlFile) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | f.mode
	return 0
}

// Setattr accepts the truncation that open(O_TRUNC) sends, as cgroupfs does.
func (f *ctlFile) Setattr(_ context.Context, _ fs.FileHandle, _ *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | f.mode
	return 0
}

func (f *ctlFile) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	rel, err := f.sim.relOf(f.serial)
	if err == nil {
		_, err = f.sim.entry(rel, f.name)
	}
	if err != nil {
		return nil, 0, errnoOf(err)
	}
	return &handle{}, fuse.FOPEN_DIRECT_IO, 0
}

func (f *ctlFile) Read(_ context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.read || off == 0 {
		rel, err := f.sim.relOf(f.serial)
		if err != nil {
			return nil, errnoOf(err)
		}
		data, err := f.sim.ReadFile(rel, f.name)
		if err != nil {
			return nil, errnoOf(err)
		}
		h.data, h.read = data, true
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(int(off)+len(dest), len(h.data))
	return fuse.ReadResultData(h.data[off:end]), 0
}

func (f *ctlFile) Write(_ context.Context, _ fs.FileHandle, data []byte, _ int64) (uint32, syscall.Errno) {
	rel, err := f.sim.relOf(f.serial)
	if err == nil {
		err = f.sim.WriteFile(rel, f.name, data)
	}
	if err != nil {
		return 0, errnoOf(err)
	}
	return uint32(len(data)), 0
}

// slabDir is the simulated /sys/kernel/slab: one empty directory per cache.
type slabDir struct {
	fs.Inode
	sim *Sim
}

var (
	_ fs.NodeLookuper  = (*slabDir)(nil)
	_ fs.NodeReaddirer = (*slabDir)(nil)
)

func (d *slabDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !slices.Contains(d.sim.SlabCaches(), name) {
		return nil, syscall.ENOENT
	}
	out.Mode = syscall.S_IFDIR | 0o755
	return d.NewInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

func (d *slabDir) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	caches := d.sim.SlabCaches()
	ents := make([]fuse.DirEntry, 0, len(caches))
	for _, c := range caches {
		ents = append(ents, fuse.DirEntry{Name: c, Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(ents), 0
}

// procCgroups is the simulated /proc/cgroups.
type procCgroups struct {
	fs.Inode
	sim *Sim
}

var (
	_ fs.NodeOpener    = (*procCgroups)(nil)
	_ fs.NodeReader    = (*procCgroups)(nil)
	_ fs.NodeGetattrer = (*procCgroups)(nil)
)

func (p *procCgroups) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	return 0
}

func (p *procCgroups) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &handle{data: []byte(p.sim.ProcCgroups()), read: true}, fuse.FOPEN_DIRECT_IO, 0
}

func (p *procCgroups) Read(_ context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(int(off)+len(dest), len(h.data))
	return fuse.ReadResultData(h.data[off:end]), 0
}
