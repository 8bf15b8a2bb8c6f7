//go:build linux
// +build linux

// This file is not part of the nokmem module: internal/kmemproof places it
// (with go build's -overlay) into the assembled kubernetes tree's vendored
// package vendor/github.com/opencontainers/runc/libcontainer/cgroups/fs and
// runs it there with the pinned toolchain in GOPATH mode, so that it drives
// libcontainer's own MemoryGroup.Apply and Set.
//
// NOKMEM_PROOF_CGROUP_ROOT names a fake cgroup root (a directory holding a
// "memory" hierarchy that populates new cgroups with their control files,
// like cgroupfs). The caller watches every write to it.
//
// nokmemApply and nokmemFindMemoryMount come from an adapter file that
// internal/kmemproof places beside this one, written for the libcontainer
// API of the tree (Apply(d) up to rc10, Apply(path, d) from rc91;
// FindCgroupMountpoint with or without the cgroup path argument).
//
// NOKMEM_PROOF_EXPLICIT=skip leaves out the explicit kernel memory limit
// case: built with the nokmem tag, libcontainer ignores (before rc7) or
// refuses (rc7 on) a kernel memory limit, so that case shows the tag's
// version, not the fix.

package fs

import (
	"io/ioutil"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/runc/libcontainer/configs"
)

// proofRoot returns the fake cgroup root; the proof cannot run without it.
func proofRoot(t *testing.T) string {
	root := os.Getenv("NOKMEM_PROOF_CGROUP_ROOT")
	if root == "" {
		t.Skip("NOKMEM_PROOF_CGROUP_ROOT is not set: run through internal/kmemproof")
	}
	// cgroupData.path joins root with the base name of the host's memory
	// mount point, so the host must have a cgroup v1 memory mount named memory.
	mnt, err := nokmemFindMemoryMount()
	if err != nil {
		t.Fatalf("libcontainer finds no cgroup v1 memory mount on this host (%v): Apply would not run", err)
	}
	if filepath.Base(mnt) != "memory" {
		t.Fatalf("host memory hierarchy is mounted at %s; the proof needs it named memory", mnt)
	}
	return root
}

// kmemActive tells whether kernel memory accounting is on for a cgroup: on
// 3.10, memory.kmem.slabinfo fails with EIO until kmem is activated.
func kmemActive(t *testing.T, dir string) bool {
	_, err := ioutil.ReadFile(filepath.Join(dir, "memory.kmem.slabinfo"))
	if err == nil {
		return true
	}
	if pe, ok := err.(*os.PathError); ok && pe.Err == syscall.EIO {
		return false
	}
	t.Fatalf("read %s: %v", filepath.Join(dir, "memory.kmem.slabinfo"), err)
	return false
}

func TestNokmemProof(t *testing.T) {
	root := proofRoot(t)
	tests := []struct {
		name        string
		cgroup      string
		resources   configs.Resources
		wantKmem    bool
		explanation string
	}{
		{
			name:        "memory limit only",
			cgroup:      "/nokmem-proof/limit-only",
			resources:   configs.Resources{Memory: 256 << 20},
			wantKmem:    false,
			explanation: "the kubelet's case (kubepods, pod<uid>): a memory limit and no kernel memory limit",
		},
		{
			name:        "memory reservation and swap",
			cgroup:      "/nokmem-proof/reservation",
			resources:   configs.Resources{MemoryReservation: 64 << 20, MemorySwap: 512 << 20, Memory: 256 << 20},
			wantKmem:    false,
			explanation: "other memory settings must not activate kmem either",
		},
		{
			name:        "explicit kernel memory limit",
			cgroup:      "/nokmem-proof/explicit-kmem",
			resources:   configs.Resources{Memory: 256 << 20, KernelMemory: 128 << 20},
			wantKmem:    true,
			explanation: "a caller that asks for a kernel memory limit still gets it (the kubelet never asks)",
		},
	}
	if os.Getenv("NOKMEM_PROOF_EXPLICIT") == "skip" {
		tests = tests[:2]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.resources
			d := &cgroupData{
				root:      root,
				innerPath: tt.cgroup,
				config:    &configs.Cgroup{Path: tt.cgroup, Resources: &res},
				pid:       -1, // as the kubelet's cgroupManagerImpl: create, do not join
			}
			mem := &MemoryGroup{}
			path, err := d.path("memory")
			if err != nil {
				t.Fatalf("path of %s: %v", tt.cgroup, err)
			}
			if !strings.HasPrefix(path, root) {
				t.Fatalf("Apply would use %s, outside the fake root %s", path, root)
			}
			if err := nokmemApply(mem, path, d); err != nil {
				t.Fatalf("MemoryGroup.Apply(%s): %v", tt.cgroup, err)
			}
			if err := mem.Set(path, d.config); err != nil {
				t.Fatalf("MemoryGroup.Set(%s): %v", path, err)
			}
			if got := kmemActive(t, path); got != tt.wantKmem {
				t.Errorf("%s: kmem accounting active = %v, want %v: %s", tt.cgroup, got, tt.wantKmem, tt.explanation)
			}
		})
	}
}
