package acceptance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
}

// Wait polls until the kubelet runs (and healthz answers 200). It returns
// when the process was first seen and a summary.
func (k *KubeletCheck) Wait(ctx context.Context) (time.Time, string, error) {
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
		seen     time.Time
		pid      int
		lastErr  error
		detail   string
		healthOK = k.Healthz == ""
	)
	for {
		if seen.IsZero() {
			if pid, lastErr = k.find(); lastErr == nil {
				seen = time.Now()
				detail = fmt.Sprintf("kubelet pid %d runs %s", pid, k.Path)
			}
		}
		if !seen.IsZero() && !healthOK {
			if lastErr = k.healthz(ctx); lastErr == nil {
				healthOK = true
				detail += fmt.Sprintf("; %s answered 200 after %s", k.Healthz, time.Since(seen).Round(time.Millisecond))
			}
		}
		if !seen.IsZero() && healthOK {
			return seen, detail, nil
		}
		select {
		case <-ctx.Done():
			if seen.IsZero() {
				return seen, detail, fmt.Errorf("the kubelet did not come back within %s: %w", timeout, lastErr)
			}
			return seen, detail, fmt.Errorf("the kubelet runs but is not healthy within %s: %w", timeout, lastErr)
		case <-time.After(poll):
		}
	}
}

// errNoKubelet: no process runs the kubelet binary.
var errNoKubelet = errors.New("no process runs the kubelet binary")

// find returns the pid of a process whose executable is the kubelet.
func (k *KubeletCheck) find() (int, error) {
	ents, err := os.ReadDir(k.Proc)
	if err != nil {
		return 0, fmt.Errorf("process table: %w", err)
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
				return pid, nil
			}
			continue
		}
		sum, err := fileSHA256(exe)
		if err != nil {
			continue
		}
		if sum == k.SHA256 {
			return pid, nil
		}
		wrong = append(wrong, fmt.Sprintf("pid %d runs %s with sha256 %s", pid, target, sum))
	}
	if len(wrong) > 0 {
		return 0, fmt.Errorf("%w %s with sha256 %s: %s", errNoKubelet, k.Path, k.SHA256, strings.Join(wrong, "; "))
	}
	return 0, fmt.Errorf("%w %s in %s", errNoKubelet, k.Path, k.Proc)
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

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
