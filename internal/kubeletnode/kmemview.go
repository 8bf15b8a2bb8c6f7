package kubeletnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/internal/runcproof"
)

// KmemView serves a real memory cgroup (the scratch cgroup) over FUSE as a
// cgroup v1 memory hierarchy with the kmem semantics of a 3.10 kernel, so
// that verify (whose --root it is) migrates, moves and asserts on real
// cgroups and real processes on a kernel that has no such semantics:
//
//   - every operation (mkdir, rmdir, rename, reads and writes of control
//     files, cgroup.procs) passes through to the real cgroup;
//   - memory.kmem.slabinfo reads EIO (kmem accounting off), except in a
//     cgroup for which a kmem activation was observed: a write of a value
//     other than -1 to its memory.kmem.limit_in_bytes, by any process (the
//     strace logs of the kubelet and of runc) or through the view. That
//     write is what turns kmem accounting on in a 3.10 kernel
//     (mm/memcontrol.c memcg_update_kmem_limit -> memcg_activate_kmem; see
//     docs/memcg-v1-semantics.md); such a cgroup then reads the slabinfo
//     header. Cgroups are told apart by inode, so a fresh cgroup at an old
//     path is not taken for the old one. Inheritance from a kmem-active
//     parent (memcg_propagate_kmem) is not modelled: the kubelet and runc
//     write the file of every cgroup they create anyway.
type KmemView struct {
	// Dir is the mount point (verify's --root); Real the real cgroup.
	Dir, Real string
	// Traces are glob patterns of strace -y logs to read kmem writes from.
	Traces []string

	server  *fuse.Server
	mu      sync.Mutex
	offsets map[string]int64
	active  map[uint64]string
	stop    chan struct{}
	conn    uint32 // FUSE connection number
}

// slabinfoHeader is what an active cgroup's memory.kmem.slabinfo starts
// with on 3.10 (mm/slab_common.c print_slabinfo_header).
const slabinfoHeader = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n"

// MountKmemView mounts the view of real on the empty directory dir. It
// reads the trace logs every 100 ms (and before answering a slabinfo read).
func MountKmemView(dir, real string, traces []string) (*KmemView, error) {
	v := &KmemView{Dir: dir, Real: real, Traces: traces, offsets: map[string]int64{}, active: map[uint64]string{}, stop: make(chan struct{})}
	var st syscall.Stat_t
	if err := syscall.Stat(real, &st); err != nil {
		return nil, fmt.Errorf("kmem view of %s: %w", real, err)
	}
	lr := &fs.LoopbackRoot{Path: real, Dev: uint64(st.Dev)}
	lr.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &viewNode{LoopbackNode: fs.LoopbackNode{RootData: r}, view: v}
	}
	root := lr.NewNode(lr, nil, "", &st)
	lr.RootNode = root
	zero := time.Duration(0)
	server, err := fs.Mount(dir, root, &fs.Options{
		MountOptions: fuse.MountOptions{DirectMountStrict: true, AllowOther: true, FsName: "kmem310", Name: "kmem310", DisableXAttrs: true},
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
	})
	if err != nil {
		return nil, fmt.Errorf("mount kmem view of %s on %s: %w", real, dir, err)
	}
	v.server = server
	// The FUSE connection's number is the minor of the mount's device.
	if err := syscall.Stat(dir, &st); err == nil {
		v.conn = unix.Minor(st.Dev)
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-v.stop:
				return
			case <-t.C:
				v.refresh()
			}
		}
	}()
	return v, nil
}

// Unmount unmounts the view. Should the FUSE connection outlive the
// unmount (a copy of the mount in another mount namespace keeps it), it is
// aborted after 10 s, so the serving goroutines end and the test does not
// hang; the error says so.
func (v *KmemView) Unmount() error {
	close(v.stop)
	done := make(chan error, 1)
	go func() { done <- v.server.Unmount() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
	}
	if err := abortFUSE(v.conn); err != nil {
		return fmt.Errorf("kmem view %s: unmount hangs, and aborting FUSE connection %d: %w", v.Dir, v.conn, err)
	}
	select {
	case <-done:
		return fmt.Errorf("kmem view %s: the FUSE connection outlived the unmount (another mount namespace holds a copy); aborted connection %d", v.Dir, v.conn)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kmem view %s: unmount hangs after aborting FUSE connection %d", v.Dir, v.conn)
	}
}

// abortFUSE aborts the FUSE connection conn through the fuse control
// filesystem (Documentation/filesystems/fuse.rst, "Control filesystem"),
// mounted in a private mount namespace of its own, since the machine need
// not have it mounted at /sys/fs/fuse/connections.
func abortFUSE(conn uint32) error {
	dir, err := os.MkdirTemp("", "nokmem-fusectl-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-ec",
		`mount -t fusectl fusectl "$1" && echo 1 > "$1/$2/abort"`, "sh", dir, strconv.FormatUint(uint64(conn), 10)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// Active returns the real paths (at activation time) of the cgroups that are kmem-active.
func (v *KmemView) Active() []string {
	v.refresh()
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, p := range v.active {
		out = append(out, p)
	}
	return out
}

// refresh reads what the trace logs gained since the last call.
func (v *KmemView) refresh() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, pat := range v.Traces {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			v.readTrace(f)
		}
	}
}

// readTrace reads the complete lines f gained and activates the cgroups written.
func (v *KmemView) readTrace(f string) {
	fh, err := os.Open(f)
	if err != nil {
		return
	}
	defer fh.Close()
	if _, err := fh.Seek(v.offsets[f], io.SeekStart); err != nil {
		return
	}
	data, _ := io.ReadAll(fh)
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return
	}
	v.offsets[f] += int64(end + 1)
	ws, _ := runcproof.KmemWrites(bytes.NewReader(data[:end+1]))
	for _, w := range ws {
		v.activate(filepath.Dir(w.Path), w.Value)
	}
}

// activate records a write of value to dir's memory.kmem.limit_in_bytes.
func (v *KmemView) activate(dir, value string) {
	if strings.TrimSpace(value) == "-1" {
		return
	}
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) == nil {
		v.active[st.Ino] = dir
	}
}

// isActive tells whether the real cgroup dir is kmem-active.
func (v *KmemView) isActive(dir string) bool {
	v.refresh()
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) != nil {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.active[st.Ino]
	return ok
}

// viewNode is a loopback node whose files are read without the page cache
// (cgroupfs reports size 0) and whose slabinfo follows 3.10 semantics.
type viewNode struct {
	fs.LoopbackNode
	view *KmemView
}

func (n *viewNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	rel := n.Path(n.Root())
	dir := filepath.Join(n.view.Real, filepath.Dir(rel))
	switch filepath.Base(rel) {
	case "memory.kmem.slabinfo":
		if !n.view.isActive(dir) {
			return eioFile{}, fuse.FOPEN_DIRECT_IO, 0
		}
		return constFile(slabinfoHeader), fuse.FOPEN_DIRECT_IO, 0
	case runcproof.KmemLimitFile:
		fh, _, errno := n.LoopbackNode.Open(ctx, flags)
		if errno != 0 {
			return nil, 0, errno
		}
		return &kmemLimitFile{FileHandle: fh, view: n.view, dir: dir}, fuse.FOPEN_DIRECT_IO, 0
	}
	fh, _, errno := n.LoopbackNode.Open(ctx, flags)
	return fh, fuse.FOPEN_DIRECT_IO, errno
}

// eioFile reads EIO, as memory.kmem.slabinfo of a cgroup without kmem
// accounting does on 3.10 (mem_cgroup_slabinfo_read).
type eioFile struct{}

func (eioFile) Read(context.Context, []byte, int64) (fuse.ReadResult, syscall.Errno) {
	return nil, syscall.EIO
}

// constFile reads a fixed text.
type constFile string

func (c constFile) Read(_ context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(c)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData([]byte(c[off:])), 0
}

// kmemLimitFile passes writes through and records an activation.
type kmemLimitFile struct {
	fs.FileHandle
	view *KmemView
	dir  string
}

func (f *kmemLimitFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	w, ok := f.FileHandle.(fs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	n, errno := w.Write(ctx, data, off)
	if errno == 0 {
		f.view.mu.Lock()
		f.view.activate(f.dir, string(data))
		f.view.mu.Unlock()
	}
	return n, errno
}

func (f *kmemLimitFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if r, ok := f.FileHandle.(fs.FileReader); ok {
		return r.Read(ctx, dest, off)
	}
	return nil, syscall.EBADF
}

func (f *kmemLimitFile) Release(ctx context.Context) syscall.Errno {
	if r, ok := f.FileHandle.(fs.FileReleaser); ok {
		return r.Release(ctx)
	}
	return 0
}
