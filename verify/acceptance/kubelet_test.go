package acceptance_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nokmem/nokmem/verify/acceptance"
)

// fakeProc is a process table with pid → exe symlink.
func fakeProc(t *testing.T, exes map[string]string) string {
	t.Helper()
	proc := t.TempDir()
	for pid, exe := range exes {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(proc, pid, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	return proc
}

func TestKubeletCheck(t *testing.T) {
	bin := t.TempDir()
	kubelet, other := filepath.Join(bin, "kubelet"), filepath.Join(bin, "kubelet.old")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(kubelet, []byte("new kubelet"), 0o755))
	must(os.WriteFile(other, []byte("old kubelet"), 0o755))
	newSHA, err := shaOf(kubelet)
	must(err)
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		exes    map[string]string
		healthz string
		healthy bool
		want    string // "" passes
	}{
		{"new binary runs", map[string]string{"1": "/sbin/init", "42": kubelet}, "", false, ""},
		{"new binary runs and healthz 200", map[string]string{"42": kubelet}, srv.URL, true, ""},
		{"healthz never 200", map[string]string{"42": kubelet}, srv.URL, false, "not healthy"},
		{"no kubelet process", map[string]string{"1": "/sbin/init"}, "", false, "did not come back"},
		{"the old binary runs", map[string]string{"42": other}, "", false, "did not come back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			healthy.Store(tt.healthy)
			k := &acceptance.KubeletCheck{Proc: fakeProc(t, tt.exes), Path: kubelet, SHA256: newSHA, Healthz: tt.healthz, Timeout: 300 * time.Millisecond, Poll: 20 * time.Millisecond}
			if strings.Contains(tt.name, "old binary") {
				// Same base name, other content: a process of the previous kubelet.
				k.Path = filepath.Join(bin, "kubelet.old")
				k.SHA256 = newSHA
			}
			back, err := k.Wait(context.Background())
			if tt.want == "" {
				if err != nil || back.Seen.IsZero() || !strings.Contains(back.Detail, "pid 42") {
					t.Fatalf("Wait: %+v, %v", back, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Wait: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestKubeletCheckSlowHash: the reported return is the scan that saw the
// process, whatever hashing costs (8.6 s for the 136 MB kubelet in a TCG
// guest). With Prepare before the stop, the process is identified by the
// device and inode of the checked file; without a match (a copy of the
// binary), the hash runs after the timestamp and is reported as Identify.
func TestKubeletCheckSlowHash(t *testing.T) {
	const slow = 400 * time.Millisecond
	bin := t.TempDir()
	kubelet, copied := filepath.Join(bin, "kubelet"), filepath.Join(t.TempDir(), "kubelet")
	for _, p := range []string{kubelet, copied} {
		if err := os.WriteFile(p, []byte("new kubelet"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := shaOf(kubelet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, exe, how string
		identify       time.Duration // at least
	}{
		{"same file", kubelet, "device and inode", 0},
		{"a copy", copied, "by sha256", slow},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &acceptance.KubeletCheck{Proc: fakeProc(t, map[string]string{"42": tt.exe}), Path: kubelet, SHA256: sum, Timeout: 5 * time.Second, Poll: 10 * time.Millisecond}
			acceptance.SlowHash(k, slow)
			k.Prepare() // before the stop, as verify run does
			stop := time.Now()
			back, err := k.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := back.Seen.Sub(stop); d > slow/2 {
				t.Errorf("the kubelet was seen %s after the stop, want the scan time (< %s): the hash counted as downtime", d, slow/2)
			}
			if back.Identify < tt.identify || !strings.Contains(back.Detail, tt.how) {
				t.Errorf("Identify %s, detail %q; want >= %s, %q", back.Identify, back.Detail, tt.identify, tt.how)
			}
		})
	}
}

func shaOf(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return hexSHA(b), nil
}

func hexSHA(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
