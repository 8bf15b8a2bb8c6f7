// Package nodelock makes the verify commands that change a node run one at
// a time. A run takes two exclusive flock(2) locks, without waiting:
//
//   - the node lock, <dir>/node.lock (dir is /run/nokmem by default), which
//     every changing command takes whatever its --state-dir or --root; and
//   - the root lock, a flock on the directory of the memory hierarchy's root
//     itself, which commands that change cgroups take. It is keyed on that
//     directory's device and inode, so it also catches two runs on the same
//     hierarchy that were given different lock directories.
//
// flock locks belong to the open file, so the kernel drops them when the
// process exits in any way, kill -9 included; nothing stale is ever left to
// clean up. After acquiring, the holder writes its pid and command line into
// the node lock file. A refused run names the holder: found in /proc/locks by
// the locked file's device and inode, or, failing that, read from the node
// lock file.
//
// Limits: flock on the root directory is advisory; tools other than verify
// do not take it. A lock directory on NFS would not give node-wide locks;
// /run is a local tmpfs.
package nodelock

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultDir is where the node lock lives; the environment variable DirEnv
// overrides it (tests point it at a temporary directory).
const (
	DefaultDir = "/run/nokmem"
	DirEnv     = "NOKMEM_LOCK_DIR"
	// FileName is the node lock file inside the lock directory.
	FileName = "node.lock"
)

// Dir returns the lock directory to use by default: $NOKMEM_LOCK_DIR, or
// DefaultDir.
func Dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	return DefaultDir
}

// ProcLocks is the kernel's table of file locks.
var ProcLocks = "/proc/locks"

// Holder is the record a lock holder writes into the node lock file.
type Holder struct {
	Pid     int       `json:"pid"`
	Cmdline string    `json:"cmdline"`
	Root    string    `json:"root,omitempty"`
	Since   time.Time `json:"since"`
}

// HeldError is returned when another process holds a lock.
type HeldError struct {
	// Lock is the locked path: the node lock file or the memory root.
	Lock string
	// Pid and Cmdline name the holder; Pid is 0 when it could not be found.
	Pid     int
	Cmdline string
}

func (e *HeldError) Error() string {
	who := "another process (pid unknown)"
	if e.Pid > 0 {
		who = fmt.Sprintf("pid %d", e.Pid)
		if e.Cmdline != "" {
			who += fmt.Sprintf(" (%s)", e.Cmdline)
		}
	}
	return fmt.Sprintf("another verify run holds the lock on %s: %s; refused before changing anything: wait for it to end (the kernel frees the lock when it exits)", e.Lock, who)
}

// Lock is a held node lock (and root lock). Release it, or exit.
type Lock struct {
	files []*os.File
}

// Acquire takes the node lock in dir and, when root is not "", the root
// lock on that directory, and writes self into the node lock file. It never
// waits: a lock held elsewhere gives a *HeldError at once.
func Acquire(dir, root string, self Holder) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node lock: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node lock: %w", err)
	}
	l := &Lock{}
	if err := l.take(f, path); err != nil {
		return nil, err
	}
	if root != "" {
		d, err := os.Open(root)
		if err != nil {
			l.Release()
			return nil, fmt.Errorf("root lock: %w", err)
		}
		if err := l.take(d, root); err != nil {
			l.Release()
			return nil, err
		}
	}
	self.Root = root
	b, err := json.Marshal(self)
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		l.Release()
		return nil, fmt.Errorf("node lock %s: record the holder: %w", path, err)
	}
	return l, nil
}

// take flocks f exclusively without waiting; f is closed on failure.
func (l *Lock) take(f *os.File, path string) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		l.files = append(l.files, f)
		return nil
	}
	defer f.Close()
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	h := &HeldError{Lock: path}
	h.Pid, h.Cmdline = holderOf(f)
	if h.Pid == 0 {
		// Not in /proc/locks (another pid namespace): the node lock file
		// names its holder; a root directory has no record to read.
		if rec, err := readHolder(f); err == nil {
			h.Pid, h.Cmdline = rec.Pid, rec.Cmdline
		}
	}
	return h
}

// Release drops the locks (the kernel does it anyway when the process exits).
func (l *Lock) Release() error {
	var errs []error
	for i := len(l.files) - 1; i >= 0; i-- {
		errs = append(errs, l.files[i].Close())
	}
	l.files = nil
	return errors.Join(errs...)
}

// holderOf finds the pid holding a flock on f's inode in /proc/locks and
// its command line; 0 if none is found.
func holderOf(f *os.File) (int, string) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, ""
	}
	pid := lockPid(ProcLocks, unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	if pid <= 0 {
		return 0, ""
	}
	return pid, Cmdline(pid)
}

// lockPid scans a /proc/locks file for a granted FLOCK on maj:min:ino.
// Lines read "1: FLOCK  ADVISORY  WRITE 4242 00:2d:1234 0 EOF"; waiters
// ("1: -> FLOCK …") are skipped.
func lockPid(locks string, major, minor uint32, ino uint64) int {
	f, err := os.Open(locks)
	if err != nil {
		return 0
	}
	defer f.Close()
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || fl[1] != "FLOCK" || fl[5] != want {
			continue
		}
		if pid, err := strconv.Atoi(fl[4]); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}

// Cmdline returns the command line of pid, arguments joined by spaces.
func Cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func readHolder(f *os.File) (Holder, error) {
	var h Holder
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return h, err
	}
	return h, json.Unmarshal(b, &h)
}

// Self describes the calling process as a lock holder.
func Self() Holder {
	pid := os.Getpid()
	cmd := Cmdline(pid)
	if cmd == "" {
		cmd = strings.Join(os.Args, " ")
	}
	return Holder{Pid: pid, Cmdline: cmd, Since: time.Now().UTC()}
}
