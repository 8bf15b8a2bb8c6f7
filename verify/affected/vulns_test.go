package affected

import "testing"

func TestVulnerabilitiesSeed(t *testing.T) {
	for _, c := range []struct {
		v    Version
		want int
	}{
		{Version{Project: Runc, Version: "v1.0.0-rc5"}, 11},
		{Version{Project: Runc, Version: "v1.0.0-rc5", Commit: "a592beb5"}, 10},
		{Version{Project: Runc, Version: "v1.0.0-rc93"}, 8},
		{Version{Project: Runc, Version: "v1.1.12"}, 3},
		{Version{Project: Runc, Version: "v1.3.6"}, 0},
		{Version{Project: Runc, Version: "v1.4.2"}, 1},
		{Version{Project: Runc, Version: "v1.4.4"}, 0},
	} {
		if got := OpenCount(c.v); got != c.want {
			t.Errorf("OpenCount(%s %s) = %d %v, want %d", c.v.Version, c.v.Commit, got, Vulnerabilities(c.v), c.want)
		}
	}
}
