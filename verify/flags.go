package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/nokmem/nokmem/verify/binary"
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/install"
	"github.com/nokmem/nokmem/verify/memcg"
)

// The flags that several commands share, each bound to the options value of
// the package the command calls: a command registers the binder it needs
// and, after parsing, takes the completed value (no command reads another
// command's flags).

// binaryFlags bind the flags that find and identify the node's kubelet and
// runtime binaries (detect, install, run) to a binary.Options.
type binaryFlags struct {
	o         binary.Options
	paths     map[string]*string
	knownSums string
}

func (b *binaryFlags) register(fs *pflag.FlagSet) {
	b.paths = map[string]*string{}
	for _, n := range binary.Names {
		b.paths[n] = fs.String(n+"-path", "", "path of the "+n+" binary (default: search --search-dirs)")
	}
	fs.StringSliceVar(&b.o.SearchDirs, "search-dirs", binary.DefaultSearchDirs, "directories searched for kubelet, runc and docker-runc")
	fs.StringVar(&b.knownSums, "known-sums", "", "SHA256SUMS of a nokmem release: binaries with these checksums count as nokmem builds")
	fs.DurationVar(&b.o.Timeout, "version-timeout", binary.DefaultVersionTimeout, "how long one `BINARY --version` may run before it is killed (with its process group); the binaries run at once")
}

// options completes the value: the paths given, the --known-sums file read.
func (b *binaryFlags) options() (binary.Options, error) {
	o := b.o
	o.Paths = map[string]string{}
	for n, p := range b.paths {
		if *p != "" {
			o.Paths[n] = *p
		}
	}
	if b.knownSums != "" {
		m, err := binary.ReadKnownSums(b.knownSums)
		if err != nil {
			return o, err
		}
		o.KnownSums = m
	}
	return o, nil
}

// detectFlags bind detect's inputs (detect and run) to a detect.Options.
type detectFlags struct {
	o   detect.Options
	bin binaryFlags
}

func (d *detectFlags) register(fs *pflag.FlagSet) {
	d.bin.register(fs)
	fs.StringVar(&d.o.OSRelease, "os-release", memcg.DefaultOSRelease, "file holding the kernel release")
	fs.StringVar(&d.o.ProcCgroups, "proc-cgroups", detect.DefaultProcCgroups, "/proc/cgroups or a file laid out like it")
	fs.StringVar(&d.o.SlabDir, "slab-dir", detect.DefaultSlabDir, "/sys/kernel/slab or a directory laid out like it (leaked-ID estimate)")
	fs.BoolVar(&d.o.ProbeSlabinfo, "probe-slabinfo", false, "also create a scratch cgroup under the memory root, read its memory.kmem.slabinfo and remove it, to confirm the kernel semantics (needs root)")
	fs.IntVar(&d.o.ProbeIDs, "probe-ids", 0, fmt.Sprintf("ID-headroom probe: create up to N scratch cgroups under the memory root until the ID space is exhausted (ENOSPC, ENOMEM or EBUSY), then remove them (max %d; needs root; briefly uses IDs and ~33 KB of kernel memory each: run with the kubelet stopped)", detect.MaxProbeIDs))
}

// options completes the value with the global flags.
func (d *detectFlags) options(g *globalOptions) (detect.Options, error) {
	bo, err := d.bin.options()
	if err != nil {
		return detect.Options{}, err
	}
	o := d.o
	o.Root, o.StateDir, o.Binaries, o.Logger = g.Root, g.StateDir, bo, g.Logger
	return o, nil
}

// installFlags bind install's inputs (install and run) to an install.Request.
type installFlags struct {
	r install.Request
}

func (f *installFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.r.Bundle, "bundle", "", "the signed node bundle: its folder or its .tar.gz")
	fs.StringVar(&f.r.PubKey, "pubkey", install.DefaultPubKey, "minisign public key the bundle must be signed with")
	fs.BoolVar(&f.r.SkipSignature, "insecure-skip-signature", false, "install without checking the signature (warned, and recorded in "+install.RecordFile+" as signature_skipped)")
	fs.StringSliceVar(&f.r.Create, "create", nil, "create this binary when the node has none (e.g. /usr/bin/docker-runc); repeatable")
	fs.StringVar(&f.r.TmpDir, "tmp-dir", os.TempDir(), "where a bundle tarball is unpacked (needs room for about 200 MB)")
	fs.BoolVar(&f.r.AllowSymlink, "allow-symlink", false, "install through a symlinked target (replaces the file it points at)")
	fs.BoolVar(&f.r.AllowUnknown, "allow-unknown", false, "replace a binary whose version output is not recognised")
	fs.BoolVar(&f.r.AllowVersionChange, "allow-version-change", false, "replace a binary the bundle does not fix (a nokmem build, a stock version that does not activate kmem), a kubelet of another minor release, or a runc newer than the bundle's")
	fs.BoolVar(&f.r.AllowSecurityDowngrade, "allow-security-downgrade", false, "put in place a binary with more known vulnerabilities than the one it replaces")
	fs.BoolVar(&f.r.Force, "force", false, "replace (or, with --rollback, restore over) a binary someone changed since verify installed it")
}

// request completes the value with the global flags, the binaries found
// by bo and where warnings go.
func (f *installFlags) request(g *globalOptions, bo binary.Options, warnings io.Writer) install.Request {
	r := f.r
	r.StateDir, r.Binaries, r.Warnings, r.Logger = g.StateDir, bo, warnings, g.Logger
	return r
}
