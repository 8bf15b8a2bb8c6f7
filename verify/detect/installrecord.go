package detect

import (
	"fmt"

	"github.com/nokmem/nokmem/verify/install"
)

// installProblem is what the install record tells detect, if anything is
// wrong: an install that was interrupted (state "installing": some
// binaries may be swapped, others not), a record that cannot be read, or
// an install without a signature check.
func installProblem(in *InstallState) *Problem {
	switch {
	case in == nil:
		return nil
	case in.Error != "":
		return &Problem{Short: "untrusted install record", Text: fmt.Sprintf("install record %s cannot be read (%s): install and rollback refuse it; compare the binaries with it, then verify install --abandon", in.Path, in.Error)}
	case in.State == install.StateInstalling:
		return &Problem{Short: "unfinished install", Text: fmt.Sprintf("install record %s says %q: an install was interrupted and the binaries may be half replaced; rerun verify install --bundle to finish it, or verify install --rollback", in.Path, in.State)}
	case in.SignatureSkipped:
		return &Problem{Short: "unsigned install", Text: fmt.Sprintf("install record %s: installed without a signature check (signature_skipped)", in.Path)}
	}
	return nil
}
