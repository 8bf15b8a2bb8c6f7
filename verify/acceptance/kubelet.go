package acceptance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nokmem/nokmem/verify/binary"
)

// KubeletCheck is how a run knows that the kubelet came back after the
// start command: a process of the process table runs the kubelet binary
// (by path, or by content: the file behind /proc/<pid>/exe has the
// expected sha256), and, when Healthz is set, that URL answers 200.
type KubeletCheck struct {
	// Proc is the process table (/proc; tests pass a fake one).
	Proc string
	// Path is the installed kubelet; SHA256, when set, is the binary the
	// process must run (the one just installed).
	Path   string
	SHA256 string
	// Healthz is the kubelet's healthz URL (e.g. http://127.0.0.1:10248/healthz); "" skips it.
	Healthz string
	// Timeout bounds the whole wait; zero means two minutes.
	Timeout time.Duration
	// Poll is the interval between looks; zero means 100 ms.
	Poll time.Duration
	// hash computes a file's sha256 (tests slow it down).
	hash func(path string) (string, error)
	// installed is set by Prepare.
	installed *installedID
}

// Back is when and how the kubelet was seen back.
type Back struct {
	// Seen is the time of the process-table scan that first found a
	// process running the kubelet binary: the end of the downtime window.
	// Identifying the binary (Identify) happens after it and does not count.
	Seen time.Time
	// Healthy is when healthz first answered 200 (zero without Healthz).
	Healthy time.Time
	// Identify is how long confirming the process's binary took (a cheap
	// device/inode match, or hashing /proc/<pid>/exe when that fails).
	Identify time.Duration
	// Detail summarises the above.
	Detail string
}

// Wait polls until the kubelet runs (and healthz answers 200).
func (k *KubeletCheck) Wait(ctx context.Context) (Back, error) {
	timeout, poll := k.Timeout, k.Poll
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		b        Back
		lastErr  error
		healthOK = k.Healthz == ""
	)
	if k.installed == nil {
		k.Prepare()
	}
	for {
		if b.Seen.IsZero() {
			scanned := time.Now()
			var pid int
			var how string
			if pid, how, lastErr = k.find(*k.installed); lastErr == nil {
				b.Seen, b.Identify = scanned, time.Since(scanned)
				b.Detail = fmt.Sprintf("kubelet pid %d runs %s (%s, identified in %s)", pid, k.Path, how, b.Identify.Round(time.Millisecond))
			}
		}
		if !b.Seen.IsZero() && !healthOK {
			if lastErr = k.healthz(ctx); lastErr == nil {
				healthOK = true
				b.Healthy = time.Now()
				b.Detail += fmt.Sprintf("; %s answered 200 %s after the process was seen", k.Healthz, b.Healthy.Sub(b.Seen).Round(time.Millisecond))
			}
		}
		if !b.Seen.IsZero() && healthOK {
			return b, nil
		}
		select {
		case <-ctx.Done():
			if b.Seen.IsZero() {
				return b, fmt.Errorf("the kubelet did not come back within %s: %w", timeout, lastErr)
			}
			return b, fmt.Errorf("the kubelet runs but is not healthy within %s: %w", timeout, lastErr)
		case <-time.After(poll):
		}
	}
}

// fileID is a file's identity on its file system.
type fileID struct{ dev, ino uint64 }

// installedID is the installed kubelet's fileID; ok is false when it could
// not be tied to the expected sha256 (then processes are hashed).
type installedID struct {
	id fileID
	ok bool
}

func statID(p string) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

// Prepare identifies the installed binary ahead of the wait: its device
// and inode, when its content is the expected one. Call it before the
// kubelet is stopped, so that the hash is not inside the downtime window;
// Wait calls it when it was not. Without a match, Wait hashes the
// restarted process's binary instead.
func (k *KubeletCheck) Prepare() {
	k.installed = &installedID{}
	if k.SHA256 == "" {
		return
	}
	id, ok := statID(k.Path)
	if !ok {
		return
	}
	if sum, err := k.sha256(k.Path); err == nil && sum == k.SHA256 {
		if again, ok := statID(k.Path); ok && again == id {
			*k.installed = installedID{id: id, ok: true}
		}
	}
}

func (k *KubeletCheck) sha256(p string) (string, error) {
	if k.hash != nil {
		return k.hash(p)
	}
	return binary.FileSHA256(p)
}

// errNoKubelet: no process runs the kubelet binary.
var errNoKubelet = errors.New("no process runs the kubelet binary")

// find returns the pid of a process whose executable is the kubelet, and
// how it was identified: by the device and inode of the installed file
// (want, prepared before the wait), else by the sha256 of /proc/<pid>/exe.
func (k *KubeletCheck) find(want installedID) (int, string, error) {
	ents, err := os.ReadDir(k.Proc)
	if err != nil {
		return 0, "", fmt.Errorf("process table: %w", err)
	}
	var wrong []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe := filepath.Join(k.Proc, e.Name(), "exe")
		target, err := os.Readlink(exe)
		if err != nil {
			continue // gone, a kernel thread, or not ours to read
		}
		target = strings.TrimSuffix(target, " (deleted)")
		if filepath.Base(target) != filepath.Base(k.Path) && target != k.Path {
			continue
		}
		if k.SHA256 == "" {
			if target == k.Path {
				return pid, "by path", nil
			}
			continue
		}
		if want.ok {
			if id, ok := statID(exe); ok && id == want.id {
				return pid, "by device and inode of the checked file", nil
			}
		}
		sum, err := k.sha256(exe)
		if err != nil {
			continue
		}
		if sum == k.SHA256 {
			return pid, "by sha256", nil
		}
		wrong = append(wrong, fmt.Sprintf("pid %d runs %s with sha256 %s", pid, target, sum))
	}
	if len(wrong) > 0 {
		return 0, "", fmt.Errorf("%w %s with sha256 %s: %s", errNoKubelet, k.Path, k.SHA256, strings.Join(wrong, "; "))
	}
	return 0, "", fmt.Errorf("%w %s in %s", errNoKubelet, k.Path, k.Proc)
}

func (k *KubeletCheck) healthz(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.Healthz, nil)
	if err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz %s: %s: %s", k.Healthz, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
