package binary

import (
	"fmt"

	"github.com/nokmem/nokmem/verify/affected"
)

// ClaimsNokmem starts the reason of a binary whose version carries
// NokmemMarker but whose sha256 is no nokmem build this project published
// nor one of --known-sums: anyone can print "+nokmem", so it is unknown.
const ClaimsNokmem = "claims nokmem"

// nokmemBuild says why the binary with digest sum is a nokmem build: its
// sha256 is one this project published (the committed CHECKSUMS of the
// matrix, embedded in verify/affected) or one of known (--known-sums).
// ok is false otherwise, whatever its version says.
func nokmemBuild(sum string, known map[string]string) (reason string, ok bool) {
	if p, ok := affected.PublishedBuild(sum); ok {
		return fmt.Sprintf("sha256 is the published nokmem build of %s %s", p.Project, p.Version), true
	}
	if n := known[sum]; n != "" {
		return "sha256 matches " + n + " of --known-sums", true
	}
	return "", false
}

// claimsNokmemReason is the reason of a binary that prints NokmemMarker
// with an unknown sha256.
func claimsNokmemReason(sum string) string {
	return fmt.Sprintf("%s: its version has %s but its sha256 %s is no nokmem build this project published, nor one of --known-sums", ClaimsNokmem, NokmemMarker, sum)
}
