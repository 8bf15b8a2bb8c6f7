package affected

import "github.com/nokmem/nokmem/verify/affected/affectedgen"

var checkGenerated = affectedgen.Check
