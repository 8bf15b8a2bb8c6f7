// Package vulnorder orders Go module versions for matching them against
// the affected ranges of a vulnerability database. It is the one order
// that the build's vulnerability account (internal/vulndb) and verify's
// table (verify/affected) share, and imports nothing of either.
package vulnorder

import (
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// oldRC matches runc's pre-1.0 release candidates (v1.0.0-rc5, rc93, and
// a pseudo-version after one: v1.0.0-rc8.0.20190930145003-cad42f6e0932).
var oldRC = regexp.MustCompile(`^(v\d+\.\d+\.\d+)-rc(\d+)(\..*)?$`)

// Compare orders versions a and b as Go semver does (what the "SEMVER"
// ranges of the Go vulnerability database mean), except that for runc
// (runc true) two pre-1.0 release candidates of the same release are
// ordered by their number, as runc released them (semver orders rc10
// before rc6 and before rc8.0.2019…), and a pseudo-version after a
// candidate comes after it. runc's later candidates (v1.2.0-rc.1) are
// semver already.
func Compare(runc bool, a, b string) int {
	if runc {
		ma, mb := oldRC.FindStringSubmatch(a), oldRC.FindStringSubmatch(b)
		if ma != nil && mb != nil && ma[1] == mb[1] {
			na, _ := strconv.Atoi(ma[2])
			nb, _ := strconv.Atoi(mb[2])
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
			return strings.Compare(ma[3], mb[3])
		}
	}
	return semver.Compare(a, b)
}
