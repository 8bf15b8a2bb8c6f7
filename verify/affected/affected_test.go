package affected_test

import (
	"strings"
	"testing"

	"github.com/nokmem/nokmem/verify/affected"
)

// Outputs as the binaries print them.
const (
	runcRC5       = "runc version 1.0.0-rc5\ncommit: 4fc53a81fb7c994640722ac585fa9ca548971871\nspec: 1.0.0\n"
	dockerRunc180 = "runc version 1.0.0-rc5+dev\ncommit: 69663f0bd4b60df09991c08812a60108003fa340\nspec: 1.0.0\n"
	dockerRunc063 = "runc version 1.0.0-rc5+dev\ncommit: a592beb5bc4c4092b1b1bac971afed27687340c5\nspec: 1.0.0\n"
	dockerRunc091 = "runc version 1.0.0-rc6+dev\ncommit: 96ec2177ae841256168fcf76954f7177af9446eb\nspec: 1.0.1-dev\n"
	dockerRunc097 = "runc version 1.0.0-rc8\ncommit: 425e105d5a03fabd737a126ad93d62a9eeede87f\nspec: 1.0.1-dev\n"
	runcRC93      = "runc version 1.0.0-rc93\ncommit: 12644e614e25b05da6fd08a38ffa0cfe1903fdec\nspec: 1.0.2-dev\ngo: go1.13.15\nlibseccomp: 2.5.1\n"
	runcRC95      = "runc version 1.0.0-rc95\ncommit: b9ee9c6314599f1b4a7f497e1f1f856fe433d3b7\nspec: 1.0.2-dev\n"
	runc102       = "runc version 1.0.2\ncommit: v1.0.2-0-g52b36a2d\nspec: 1.0.2-dev\ngo: go1.16.7\nlibseccomp: 2.5.1\n"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, out string
		want      affected.Version
		ok        bool
	}{
		{"kubelet", "Kubernetes v1.12.4\n", affected.Version{Project: "kubernetes", Version: "v1.12.4"}, true},
		{"kubelet", "Kubernetes v1.12.4+nokmem.1bb862bb7552\n", affected.Version{Project: "kubernetes", Version: "v1.12.4", Nokmem: true}, true},
		{"kubelet", "Kubernetes v1.18.9-eks-d1db3c\n", affected.Version{Project: "kubernetes", Version: "v1.18.9"}, true},
		{"kubelet", "Kubernetes v0.0.0-master+$Format:%h$\n", affected.Version{Project: "kubernetes", Version: "v0.0.0"}, true},
		{"kubelet", "kubelet version 1.12\n", affected.Version{}, false},
		{"kubelet", "", affected.Version{}, false},
		{"runc", runcRC5, affected.Version{Project: "runc", Version: "v1.0.0-rc5", Commit: "4fc53a81fb7c994640722ac585fa9ca548971871"}, true},
		{"docker-runc", dockerRunc180, affected.Version{Project: "runc", Version: "v1.0.0-rc5", Dev: true, Commit: "69663f0bd4b60df09991c08812a60108003fa340"}, true},
		{"runc", "runc version 1.0.0-rc5+nokmem.1bb862bb7552\ncommit: 4fc53a81\n", affected.Version{Project: "runc", Version: "v1.0.0-rc5", Nokmem: true, Commit: "4fc53a81"}, true},
		{"runc", runc102, affected.Version{Project: "runc", Version: "v1.0.2", Commit: "52b36a2d"}, true},
		{"runc", "runc version spec: 1.0.0\n", affected.Version{}, false},
		{"runc", "Kubernetes v1.12.4", affected.Version{}, false},
		{"crun", "crun version 1.8", affected.Version{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+strings.SplitN(tt.out, "\n", 2)[0], func(t *testing.T) {
			got, ok := affected.Parse(tt.name, tt.out)
			if ok != tt.ok || tt.ok && got != tt.want {
				t.Fatalf("Parse = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// An affected runc's fix is the maintained runc (matrix fix none, v1.4.4)
// in the bundle of the node's kubelet, never an old runc with known
// container escapes; an affected kubelet's bundle pairs it with that runc.
func TestClassify(t *testing.T) {
	tests := []struct {
		name, out string
		verdict   string
		proven    bool
		fix       string
		fixVer    string
		bundle    string
		reason    []string // substrings of Reason
		remedy    string   // substring of Remedy
	}{
		{"kubelet", "Kubernetes v1.12.4", affected.Affected, true, "patch", "v1.12.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"vendors runc 871ba2e5", "activates kmem on the cgroupfs driver", "kmem proof"}, "install bundle nokmem-v1.12.4-v1.4.4 "},
		{"kubelet", "Kubernetes v1.12.2", affected.Affected, false, "patch", "v1.12.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"without 6a2c1559"}, "install bundle"},
		{"kubelet", "Kubernetes v1.12.6", affected.Affected, false, "patch", "v1.12.8", "nokmem-v1.12.8-v1.4.4",
			[]string{"runc 871ba2e5"}, "install bundle nokmem-v1.12.8-v1.4.4 "},
		{"kubelet", "Kubernetes v1.12.10", affected.Affected, false, "patch", "v1.12.8", "nokmem-v1.12.8-v1.4.4",
			[]string{"runc 871ba2e5"}, "install bundle"},
		{"kubelet", "Kubernetes v1.13.5", affected.Affected, false, "patch", "v1.13.12", "nokmem-v1.13.12-v1.4.4",
			[]string{"runc 871ba2e5"}, "install bundle nokmem-v1.13.12-v1.4.4 "},
		{"kubelet", "Kubernetes v1.14.3", affected.Affected, false, "buildtag", "v1.14.10", "",
			[]string{"runc f000fe11"}, "go tool mage kubelet:build v1.14.10 (no bundle pairs it yet)"},
		{"kubelet", "Kubernetes v1.14.10", affected.Affected, true, "buildtag", "v1.14.10", "",
			[]string{"runc f000fe11", "kmem proof"}, "kubelet:build v1.14.10"},
		{"kubelet", "Kubernetes v1.11.5", affected.Affected, false, "patch", "", "",
			[]string{"fe898e78"}, "no nokmem version of kubelet v1.11 in the matrix yet"},
		{"kubelet", "Kubernetes v1.21.1", affected.Affected, false, "buildtag", "", "",
			[]string{"runc v1.0.0-rc93"}, "no nokmem version of kubelet v1.21"},
		{"kubelet", "Kubernetes v1.21.2", affected.Unaffected, false, "", "", "", []string{"rc95"}, ""},
		{"kubelet", "Kubernetes v1.21.3", affected.Unaffected, false, "", "", "", []string{"rc95", "does not activate kmem"}, ""},
		{"kubelet", "Kubernetes v1.22.0", affected.Unaffected, false, "", "", "", []string{"v1.0.1 or later"}, ""},
		{"kubelet", "Kubernetes v1.8.15", affected.Unknown, false, "", "", "", []string{"older than v1.9.0"}, "by hand"},
		{"kubelet", "my kubelet", affected.Unknown, false, "", "", "", []string{"unrecognised kubelet --version output"}, "by hand"},
		{"runc", runcRC5, affected.Affected, true, "patch", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"runc v1.0.0-rc5 (commit 4fc53a81)", "no kmem_disabled.go"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"runc", "runc version 1.0.0-rc3\ncommit: 992a5be178a62e026f4069f443c6164912adbf09\n", affected.Affected, false, "patch", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"runc v1.0.0-rc3"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"docker-runc", dockerRunc180, affected.Affected, true, "patch", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"commit 69663f0b", "Docker CE 18.06.0, Docker CE 18.06.1, Docker CE 18.06.2, Docker CE 18.09.0"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"docker-runc", dockerRunc063, affected.Affected, false, "patch", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"Docker CE 18.06.3"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"docker-runc", dockerRunc091, affected.Affected, false, "buildtag", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"Docker CE 18.09.1, Docker CE 18.09.2", "-tags nokmem"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"runc", "runc version 1.0.0-rc6+dev\ncommit: 6635b4f0c6af3810594d2770f662f34ddc15b40d\n", affected.Affected, false, "buildtag", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"Docker CE 18.09.3"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"runc", "runc version 1.0.0-rc6+dev\ncommit: 2b18fe1d885ee5083ef9f0838fee39b62d653e30\n", affected.Affected, false, "buildtag", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"Docker CE 18.09.4, Docker CE 18.09.5, Docker CE 18.09.6"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"docker-runc", dockerRunc097, affected.Affected, false, "buildtag", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"Docker CE 18.09.7"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"runc", "runc version 1.0.0-rc6\ncommit: ccb5efd37fb7c86364786e9137e22948751de7ed\n", affected.Affected, true, "buildtag", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"kmem proof"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"runc", "runc version 1.0.0-rc9\ncommit: d736ef14f0288d6993a1845745d6756cfc9ddd5a\n", affected.Affected, false, "buildtag", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			nil, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"runc", runcRC93, affected.Affected, true, "buildtag", "v1.4.4", "nokmem-v1.12.4-v1.4.4",
			[]string{"runc v1.0.0-rc93"}, "install the bundle whose kubelet is the node's: nokmem-v1.12.4-v1.4.4, nokmem-v1.12.8-v1.4.4"},
		{"runc", "runc version 1.0.0-rc93+dev\ncommit: 0123456789abcdef0123456789abcdef01234567\n", affected.Unknown, false, "", "", "",
			[]string{"between v1.0.0-rc93 and v1.0.0-rc94"}, "by hand"},
		{"runc", "runc version 1.0.0-rc94\ncommit: 2c7861bc5e1b3e756392236553ec14a78a09f8bf\n", affected.Unaffected, false, "", "", "", []string{"#2840"}, ""},
		{"runc", runcRC95, affected.Unaffected, false, "", "", "", []string{"no longer activates kmem"}, ""},
		{"runc", runc102, affected.Unaffected, false, "", "", "", []string{"#2840"}, ""},
		{"runc", "runc version 1.1.12\ncommit: v1.1.12-0-g51d5e946\n", affected.Unaffected, false, "", "", "", nil, ""},
		{"runc", "runc version 0.1.1\ncommit: 5fd4c4d\nspec: 0.6.0\n", affected.Unknown, false, "", "", "", []string{"older than v1.0.0-rc2"}, "by hand"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+strings.SplitN(tt.out, "\n", 2)[0], func(t *testing.T) {
			f := affected.Classify(tt.name, tt.out)
			if f.Verdict != tt.verdict || f.Proven != tt.proven || f.Fix != tt.fix || f.FixVersion != tt.fixVer || f.Bundle != tt.bundle {
				t.Errorf("verdict %q proven %v fix %q %q bundle %q; want %q %v %q %q %q", f.Verdict, f.Proven, f.Fix, f.FixVersion, f.Bundle, tt.verdict, tt.proven, tt.fix, tt.fixVer, tt.bundle)
			}
			for _, r := range tt.reason {
				if !strings.Contains(f.Reason, r) {
					t.Errorf("reason %q lacks %q", f.Reason, r)
				}
			}
			if !strings.Contains(f.Remedy, tt.remedy) || tt.verdict == affected.Affected && f.Remedy == "" {
				t.Errorf("remedy %q, want %q", f.Remedy, tt.remedy)
			}
		})
	}
}

// TestBuiltWithNokmemTag: a binary built with -tags nokmem is unaffected
// whatever its version says, and keeps no fix.
func TestBuiltWithNokmemTag(t *testing.T) {
	for _, out := range []string{runcRC93, "runc version 1.0.0-rc93+dev\ncommit: 0123456789abcdef0123456789abcdef01234567\n", runcRC95} {
		f := affected.Classify("runc", out)
		before := f.Verdict
		f.BuiltWithNokmemTag()
		if f.Verdict != affected.Unaffected || !f.NokmemTag || f.Remedy != "" || f.Fix != "" || f.Bundle != "" {
			t.Errorf("%q: %+v", out, f)
		}
		if before != affected.Unaffected && !strings.Contains(f.Reason, "built with -tags nokmem") {
			t.Errorf("%q: reason %q", out, f.Reason)
		}
	}
}
