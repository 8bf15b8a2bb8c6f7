package toolchain_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/modfetch/modfetchtest"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/toolchain"
)

const pinned = "v0.0.1-go1.26.11.linux-amd64"

// fakeToolchain is a toolchain module whose bin/go is a script printing out.
func fakeToolchain(version, out string) modfetchtest.Module {
	return modfetchtest.Module{Path: toolchain.ModulePath, Version: version, Files: map[string]string{
		"bin/go":                       "#!/bin/sh\necho '" + out + "'\n",
		"pkg/tool/linux_amd64/compile": "#!/bin/sh\n",
		"src/_go.mod":                  "module std\n",
		"src/cmd/_go.mod":              "module cmd\n",
	}}
}

func TestGo(t *testing.T) {
	tests := []struct {
		name    string
		publish *modfetchtest.Module // nil: the proxy lacks the toolchain
		edit    func(pins.Module) pins.Module
		wantErr []string
		is      error
	}{
		{name: "good", publish: ptr(fakeToolchain(pinned, "go version go1.26.11 linux/amd64"))},
		{
			name:    "not on the proxy",
			wantErr: []string{"fetch toolchain golang.org/toolchain@" + pinned, "download golang.org/toolchain@" + pinned},
		},
		{
			name:    "wrong h1",
			publish: ptr(fakeToolchain(pinned, "go version go1.26.11 linux/amd64")),
			edit:    func(m pins.Module) pins.Module { m.H1 = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; return m },
			wantErr: []string{"golang.org/toolchain@" + pinned, "h1 hash mismatch"},
			is:      modfetch.ErrHashMismatch,
		},
		{
			name:    "go version disagrees",
			publish: ptr(fakeToolchain(pinned, "go version go1.21.0 linux/amd64")),
			wantErr: []string{"toolchain golang.org/toolchain@" + pinned, `"go version go1.21.0 linux/amd64"`, `want "go version go1.26.11 linux/amd64"`},
		},
		{
			name:    "not a toolchain module",
			edit:    func(m pins.Module) pins.Module { m.Path = "example.com/go"; return m },
			wantErr: []string{"toolchain example.com/go@" + pinned, "must be golang.org/toolchain"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := modfetchtest.New(t)
			m := pins.Module{Path: toolchain.ModulePath, Version: pinned, H1: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
			if tc.publish != nil {
				m = p.Add(t, *tc.publish)
			}
			if tc.edit != nil {
				m = tc.edit(m)
			}
			goBin, err := toolchain.Go(context.Background(), &modfetch.Fetcher{Env: p.Env(t)}, m)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkPrepared(t, filepath.Dir(filepath.Dir(goBin)))
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

// The pinned toolchain comes from a warm module cache with GOPROXY=off (an
// offline build), prepared again after the cache lost its extracted copy.
func TestGoOffline(t *testing.T) {
	p := modfetchtest.New(t)
	m := p.Add(t, fakeToolchain(pinned, "go version go1.26.11 linux/amd64"))
	env := p.Env(t)
	goBin, err := toolchain.Go(context.Background(), &modfetch.Fetcher{Env: env}, m)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(goBin))
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	offline := &modfetch.Fetcher{Env: append(env, "GOPROXY=off", "GOSUMDB=sum.golang.org")}
	if goBin, err = toolchain.Go(context.Background(), offline, m); err != nil {
		t.Fatalf("offline toolchain from a warm cache: %v", err)
	}
	checkPrepared(t, filepath.Dir(filepath.Dir(goBin)))
}

func checkPrepared(t *testing.T, root string) {
	t.Helper()
	for _, f := range []string{"bin/go", "pkg/tool/linux_amd64/compile"} {
		fi, err := os.Stat(filepath.Join(root, f))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s not executable: %v %v", f, fi.Mode(), err)
		}
	}
	for f, want := range map[string]string{"src/go.mod": "module std\n", "src/cmd/go.mod": "module cmd\n"} {
		got, err := os.ReadFile(filepath.Join(root, f))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", f, got, err, want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		version string
		want    toolchain.Version
		wantErr bool
	}{
		{pinned, toolchain.Version{Go: "go1.26.11", GOOS: "linux", GOARCH: "amd64"}, false},
		{"v0.0.1-go1.22rc1.darwin-arm64", toolchain.Version{Go: "go1.22rc1", GOOS: "darwin", GOARCH: "arm64"}, false},
		{"v1.26.11", toolchain.Version{}, true},
		{"v0.0.1-go1.26.11", toolchain.Version{}, true},
	}
	for _, tc := range tests {
		got, err := toolchain.ParseVersion(pins.Module{Path: toolchain.ModulePath, Version: tc.version})
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseVersion(%s) = %+v, %v; want %+v, error %v", tc.version, got, err, tc.want, tc.wantErr)
		}
	}
}

func ptr[T any](v T) *T { return &v }
