package layout

import "testing"

// The magefiles run in the repository root and print these paths: with
// Root "." they stay relative; with another root they are under it.
func TestPaths(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{New(".").Output("runc", "v1.4.4"), "_output/runc/v1.4.4"},
		{New(".").Build("kubernetes", "v1.12.4"), "_build/kubernetes/v1.12.4"},
		{New(".").Unpatched("runc", "v1.0.0-rc5"), "_build/runc/v1.0.0-rc5-unpatched"},
		{New(".").Stock("kubernetes", "v1.12.4"), "_build/kubernetes/v1.12.4-stock"},
		{New(".").Record("verify"), "_build/stamps/verify"},
		{New(".").Pins(), "vendor-pins"},
		{New("/r").Patches("runc", "v1"), "/r/patches/runc/v1"},
		{New("/r").Verify(), "/r/_output/verify"},
		{New("/r").Bundle(), "/r/_output/bundle"},
		{New("/r").Bundles(), "/r/_output/bundles"},
		{New("/r").Yum(), "/r/_output/yum"},
		{New("/r").ReleasePub(), "/r/_output/nokmem-release.pub"},
		{New("/r").DevKey(), "/r/_build/release-key/nokmem-dev.key"},
		{New("/r").DevPub(), "/r/_build/release-key/nokmem-dev.pub"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}
