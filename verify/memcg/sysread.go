package memcg

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
)

// readFile reads a small cgroupfs control file with open, read until EOF
// and close: half the system calls of os.ReadFile (which also stats the
// file twice), which matters for the few thousand reads of a migration.
// Errors are *fs.PathError keeping the errno.
func readFile(path string) (string, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return "", &fs.PathError{Op: "read", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var buf [4096]byte
	var out []byte
	for {
		n, err := syscall.Read(fd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return strings.TrimSpace(string(out)), nil
		}
		out = append(out, buf[:n]...)
	}
}

// subdirs lists the names of the subdirectories of dir, sorted, reading
// the directory with one getdents loop and the entry types it returns (no
// stat per entry, unless a file system leaves the type unknown): a walk of
// a 443-cgroup tree is a third of a migration's system calls otherwise.
func subdirs(dir string) ([]string, error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: err}
	}
	defer syscall.Close(fd)
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: dir, Err: err}
		}
		if n <= 0 {
			break
		}
		for b := buf[:n]; len(b) >= 19; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				return nil, &fs.PathError{Op: "readdir", Path: dir, Err: syscall.EBADMSG}
			}
			typ, name := b[18], b[19:reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			nm := string(name)
			if nm != "." && nm != ".." && (typ == syscall.DT_DIR || typ == syscall.DT_UNKNOWN && isDir(dir+"/"+nm)) {
				names = append(names, nm)
			}
			b = b[reclen:]
		}
	}
	slices.Sort(names)
	return names, nil
}

// isDir reports whether path is a directory (for DT_UNKNOWN entries).
func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}
