package install

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/nokmem/nokmem/verify/binary"
)

// Request is an install as an operator names it: the bundle (its folder or
// .tar.gz), the key it must be signed with, where the node's binaries are,
// and what the install may replace.
type Request struct {
	// Bundle is the bundle folder or tarball; a tarball is unpacked under
	// TmpDir. PubKey is the minisign public key (DefaultPubKey when "").
	Bundle        string
	PubKey        string
	SkipSignature bool
	TmpDir        string
	StateDir      string
	// Binaries finds (Paths, SearchDirs) and identifies the node's binaries.
	Binaries binary.Options
	// Create names binaries to create where the node has none.
	Create []string
	Policy
	// Warnings receives the lines the operator must see (a skipped
	// signature, a development key), one per line.
	Warnings io.Writer
	Logger   *slog.Logger
}

// InstallBundle opens and checks r.Bundle (Open), maps its binaries to the
// node (Opened.Targets) and installs them (Install). A process that is not
// root, or cannot write the state directory, is refused before anything is
// unpacked.
func InstallBundle(r Request) (*Record, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	if err := checkWritable(r.StateDir, nil); err != nil {
		return nil, err
	}
	b, err := Open(r.Bundle, r.PubKey, r.SkipSignature, r.TmpDir)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if r.Warnings != nil {
		for _, w := range b.Warnings {
			fmt.Fprintln(r.Warnings, w)
		}
	}
	o := b.Options()
	o.StateDir, o.Policy, o.Binaries, o.Logger = r.StateDir, r.Policy, r.Binaries, r.Logger
	if o.Targets, err = b.Targets(r.Binaries.Paths, r.Binaries.SearchDirs, r.Create); err != nil {
		return nil, err
	}
	return install(o)
}
