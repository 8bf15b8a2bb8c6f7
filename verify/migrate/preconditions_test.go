package migrate_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nokmem/nokmem/internal/memcgsim"
	"github.com/nokmem/nokmem/internal/memcgtest"
	"github.com/nokmem/nokmem/verify/migrate"
)

// TestPreconditions: the kubelet must be stopped (also for a rollback and
// with --force), the kernel must be 3.10's and the kubelet a nokmem build,
// unless forced; a rollback needs only the kubelet stopped.
func TestPreconditions(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rhel := write("osrelease-rhel", "3.10.0-1127.el7.x86_64\n")
	modern := write("osrelease-modern", "6.18.44\n")
	stock := write("bin/kubelet", "#!/bin/sh\necho Kubernetes v1.12.4\n")
	idle, busy := filepath.Join(dir, "proc-idle"), filepath.Join(dir, "proc-busy")
	write("proc-idle/1/comm", "init\n")
	write("proc-busy/4242/comm", "kubelet\n")

	n := memcgtest.Sim(t, memcgsim.RHEL78)
	base := migrate.Preconditions{Hierarchy: n.H, Kubepods: "kubepods", OSRelease: rhel, Proc: idle, StateDir: t.TempDir(), KubeletPath: stock}
	tests := []struct {
		name     string
		change   func(p *migrate.Preconditions)
		rollback bool
		want     error
	}{
		{"kubelet running", func(p *migrate.Preconditions) { p.Proc = busy }, false, migrate.ErrKubeletRunning},
		{"kubelet running, forced", func(p *migrate.Preconditions) { p.Proc, p.Force = busy, true }, false, migrate.ErrKubeletRunning},
		{"kubelet running, allowed", func(p *migrate.Preconditions) { p.Proc, p.AllowKubelet, p.Force = busy, true, true }, false, nil},
		{"kubelet running, rollback", func(p *migrate.Preconditions) { p.Proc = busy }, true, migrate.ErrKubeletRunning},
		{"6.18 release, root slabinfo EIO: undecided", func(p *migrate.Preconditions) { p.OSRelease = modern }, false, migrate.ErrUnknownSemantics},
		{"stock kubelet", func(*migrate.Preconditions) {}, false, migrate.ErrStockKubelet},
		{"stock kubelet, rollback", func(*migrate.Preconditions) {}, true, nil},
		{"stock kubelet, forced", func(p *migrate.Preconditions) { p.Force = true }, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			tt.change(&p)
			err := p.Check(tt.rollback)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}
