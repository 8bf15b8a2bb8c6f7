package nodelock_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/nodelock"
)

func TestAcquire(t *testing.T) {
	dir1, dir2, root := t.TempDir(), t.TempDir(), t.TempDir()
	self := nodelock.Self()
	l, err := nodelock.Acquire(dir1, root, self)
	if err != nil {
		t.Fatal(err)
	}
	// The holder's record is in the node lock file.
	b, err := os.ReadFile(filepath.Join(dir1, nodelock.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var rec nodelock.Holder
	if err := json.Unmarshal(b, &rec); err != nil || rec.Pid != os.Getpid() || rec.Root != root || rec.Cmdline == "" {
		t.Fatalf("record %q: %+v, %v", b, rec, err)
	}
	tests := []struct {
		name, dir, root, lock string
	}{
		{"same lock dir, no root", dir1, "", filepath.Join(dir1, nodelock.FileName)},
		{"other lock dir, same root", dir2, root, root},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := nodelock.Acquire(tt.dir, tt.root, self)
			var held *nodelock.HeldError
			if !errors.As(err, &held) || held.Lock != tt.lock || held.Pid != os.Getpid() || held.Cmdline != self.Cmdline {
				t.Fatalf("err = %v, want held on %s by pid %d (%s)", err, tt.lock, os.Getpid(), self.Cmdline)
			}
			if !strings.Contains(err.Error(), "refused before changing anything") {
				t.Fatalf("message %q", err)
			}
		})
	}
	// A refused run on another root leaves dir2 free: the root lock failure
	// released the node lock it had taken.
	l2, err := nodelock.Acquire(dir2, t.TempDir(), self)
	if err != nil {
		t.Fatalf("dir2 after a refused run: %v", err)
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l, err = nodelock.Acquire(dir2, root, self)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l.Release()
}
