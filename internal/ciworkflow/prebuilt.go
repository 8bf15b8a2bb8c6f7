package ciworkflow

import "fmt"

// PrebuiltEnv set to 1 (the release workflow's bundle job) makes the
// release targets use the artifacts already in _output/<project>/<version>
// (downloaded from the build jobs) and fail, naming the version, when one
// is missing or not the build of the current inputs, instead of building it.
const PrebuiltEnv = "NOKMEM_PREBUILT"

// Prebuilt parses the value of PrebuiltEnv.
func Prebuilt(v string) (bool, error) {
	switch v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s=%q: want 1 (use the artifacts in _output, build nothing) or 0", PrebuiltEnv, v)
}
