// Package inputstest provides build inputs for the release packages' tests:
// a small runc-like record with every kind of input set.
package inputstest

import (
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
)

// Runc returns a fresh runc v1.0.0-rc5 record with two vendored modules, a
// patch, cgo build settings and Debian packages.
func Runc() *inputs.Inputs {
	return &inputs.Inputs{
		Name:    "runc",
		Version: "v1.0.0-rc5",
		Source: inputs.Source{
			Module:     pins.Module{Path: "github.com/opencontainers/runc", Version: "v1.0.0-rc5", H1: "h1:rYjdzMDXVly2Av0RLs3nf/iVkaWh2UrDhuTdTT2KggQ="},
			Commit:     "4fc53a81fb7c994640722ac585fa9ca548971871",
			CommitTime: "2018-02-27T01:25:04Z",
			ImportPath: "github.com/opencontainers/runc",
		},
		Toolchain: pins.Module{Path: "golang.org/toolchain", Version: "v0.0.1-go1.26.11.linux-amd64", H1: "h1:O6L965K88AilqnxeYPks/75HLpp4IG+FjeSCI3cVdRg="},
		Vendor: []inputs.Vendored{
			{Root: "github.com/pkg/errors", Module: pins.Module{Path: "github.com/pkg/errors", Version: "v0.8.0", H1: "h1:WdK/asTD0HN+q6hsWO3/vpuAkAr+tw6aNJNDFFf0+qw="}},
			{Root: "github.com/coreos/go-systemd", Module: pins.Module{Path: "github.com/coreos/go-systemd", Version: "v0.0.0-20161114122254-48702e0da86b", H1: "h1:+mtZ0WjVZwTX0RVrXMXDwuYVaNeHGvWBW1UwJeMR+2M="}},
		},
		Patches:        []inputs.Patch{{Name: "0001-x.patch", SHA256: "00000000000000000000000000000000000000000000000000000000000000ff"}},
		Build:          inputs.Build{CGO: true, Static: true, Tags: []string{"seccomp", "apparmor"}, LDFlags: []string{"-X main.version=1.0.0-rc5+nokmem.1", "-extldflags -static"}},
		SystemPackages: []inputs.SystemPackage{{Name: "gcc-12", Version: "12.2.0-14+deb12u1"}, {Name: "libseccomp-dev", Version: "2.5.4-1+deb12u1"}},
	}
}
