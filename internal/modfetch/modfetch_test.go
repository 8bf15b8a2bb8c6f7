package modfetch_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/modfetch/modfetchtest"
	"github.com/nokmem/nokmem/internal/pins"
)

var (
	modA = modfetchtest.Module{Path: "example.com/a", Version: "v1.0.0", Files: map[string]string{"a.go": "package a\n"}}
	modB = modfetchtest.Module{Path: "example.com/Upper/b", Version: "v0.0.0-20200101000000-abcdefabcdef", Files: map[string]string{"b.go": "package b\n", "sub/c.go": "package sub\n"}}
)

func TestFetch(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, p *modfetchtest.Proxy, a, b pins.Module) []pins.Module
		wantErr []string // substrings; nil: success
		is      error
	}{
		{
			name:  "good",
			setup: func(t *testing.T, p *modfetchtest.Proxy, a, b pins.Module) []pins.Module { return []pins.Module{a, b} },
		},
		{
			name: "tampered zip",
			setup: func(t *testing.T, p *modfetchtest.Proxy, a, b pins.Module) []pins.Module {
				evil := modB
				evil.Files = map[string]string{"b.go": "package b\n\nfunc init() { panic(1) }\n", "sub/c.go": "package sub\n"}
				p.WriteZip(t, evil)
				return []pins.Module{a, b}
			},
			wantErr: []string{"example.com/Upper/b@v0.0.0-20200101000000-abcdefabcdef", "h1 hash mismatch", "the lock says h1:"},
			is:      modfetch.ErrHashMismatch,
		},
		{
			name: "wrong h1 in lock",
			setup: func(t *testing.T, p *modfetchtest.Proxy, a, b pins.Module) []pins.Module {
				a.H1 = b.H1
				return []pins.Module{a, b}
			},
			wantErr: []string{"example.com/a@v1.0.0", "h1 hash mismatch"},
			is:      modfetch.ErrHashMismatch,
		},
		{
			name: "missing h1 in lock",
			setup: func(t *testing.T, p *modfetchtest.Proxy, a, b pins.Module) []pins.Module {
				a.H1 = ""
				return []pins.Module{a, b}
			},
			wantErr: []string{"example.com/a@v1.0.0", "no h1 hash"},
			is:      modfetch.ErrMissingHash,
		},
		{
			name: "unknown module",
			setup: func(t *testing.T, p *modfetchtest.Proxy, a, b pins.Module) []pins.Module {
				return []pins.Module{a, {Path: "example.com/missing", Version: "v1.2.3", H1: a.H1}}
			},
			wantErr: []string{"download example.com/missing@v1.2.3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := modfetchtest.New(t)
			a, b := p.Add(t, modA), p.Add(t, modB)
			mods := tc.setup(t, p, a, b)
			var progress bytes.Buffer
			f := modfetch.Fetcher{Env: p.Env(t), Jobs: 2, Progress: &progress}
			got, err := f.Fetch(context.Background(), mods)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkResults(t, mods, got)
				if n := strings.Count(progress.String(), " ok\n"); n != len(mods) {
					t.Errorf("progress shows %d ok lines, want %d:\n%s", n, len(mods), progress.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one containing %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if got != nil {
				t.Errorf("results returned with an error: %v", got)
			}
		})
	}
}

func checkResults(t *testing.T, mods []pins.Module, got []modfetch.Result) {
	t.Helper()
	if len(got) != len(mods) {
		t.Fatalf("got %d results, want %d", len(got), len(mods))
	}
	for i, r := range got {
		if r.Module != mods[i] {
			t.Errorf("result %d is %v, want %v (lock order)", i, r.Module, mods[i])
		}
		if err := modfetch.CheckZip(r.Module, r.Zip); err != nil {
			t.Error(err)
		}
		if fi, err := os.Stat(r.Dir); err != nil || !fi.IsDir() {
			t.Errorf("extracted dir %s: %v", r.Dir, err)
		}
	}
}

// A zip tampered with inside the module cache after a good download is
// caught on the next run: the hash is taken on every run, cached or not.
func TestFetchRehashesCachedZip(t *testing.T) {
	p := modfetchtest.New(t)
	a := p.Add(t, modA)
	f := modfetch.Fetcher{Env: p.Env(t)}
	got, err := f.Fetch(context.Background(), []pins.Module{a})
	if err != nil {
		t.Fatal(err)
	}
	other := p.Add(t, modfetchtest.Module{Path: "example.com/a", Version: "v1.0.1", Files: map[string]string{"a.go": "package a // changed\n"}})
	data, err := os.ReadFile(p.ZipPath(t, other.Path, other.Version))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(got[0].Zip, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = f.Fetch(context.Background(), []pins.Module{a})
	if !errors.Is(err, modfetch.ErrHashMismatch) || !strings.Contains(err.Error(), "example.com/a@v1.0.0") {
		t.Fatalf("got %v, want a hash mismatch naming example.com/a@v1.0.0", err)
	}
}

// The go command's settings reach the download: each variant must fetch
// from the file:// proxy offline, or fail naming the module.
func TestFetchHonoursGoEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		wantErr string
	}{
		{"GOSUMDB=off", []string{"GOSUMDB=off"}, ""},
		{"GONOSUMDB skips the checksum database", []string{"GOSUMDB=sum.golang.org", "GONOSUMDB=example.com"}, ""},
		{"GOPRIVATE skips the checksum database", []string{"GOSUMDB=sum.golang.org", "GOPRIVATE=example.com", "GONOPROXY=none"}, ""},
		{"GOFLAGS reaches go mod download", []string{"GOFLAGS=-modcacherw -no-such-flag"}, "download example.com/a@v1.0.0"},
		{"GOPROXY=off refuses downloads", []string{"GOPROXY=off"}, "download example.com/a@v1.0.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := modfetchtest.New(t)
			a := p.Add(t, modA)
			f := modfetch.Fetcher{Env: append(p.Env(t), tc.env...)}
			_, err := f.Fetch(context.Background(), []pins.Module{a})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// With GOPROXY=off, modules already downloaded into the module cache must
// still be fetched and hashed; only the missing ones may fail. The cache here
// holds only cache/download (the zips, as a CI cache or a copied mirror
// keeps them), so the go command extracts each zip again: it then wants the
// checksum database, which GOPROXY=off cannot reach ("module lookup disabled
// by GOPROXY=off") unless the fetcher turns it off. The h1 check against the
// lock still runs, so a tampered cached zip is still refused.
func TestFetchOfflineWarmCache(t *testing.T) {
	p := modfetchtest.New(t)
	a := p.Add(t, modA)
	b := p.Add(t, modB)
	missing := pins.Module{Path: "example.com/missing", Version: "v1.0.0", H1: a.H1}
	env := p.Env(t)
	warm := modfetch.Fetcher{Env: env}
	got, err := warm.Fetch(context.Background(), []pins.Module{a, b})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if err := os.RemoveAll(r.Dir); err != nil { // GOFLAGS=-modcacherw: writable
			t.Fatal(err)
		}
	}
	offline := modfetch.Fetcher{Env: append(env, "GOPROXY=off", "GOSUMDB=sum.golang.org", "GONOSUMDB=", "GOPRIVATE=")}
	got, err = offline.Fetch(context.Background(), []pins.Module{a, b})
	if err != nil {
		t.Fatalf("offline fetch from a warm cache: %v", err)
	}
	if _, err := os.Stat(got[1].Dir); err != nil {
		t.Fatalf("offline fetch did not extract %s: %v", b, err)
	}
	_, err = offline.Fetch(context.Background(), []pins.Module{a, missing})
	if err == nil || !strings.Contains(err.Error(), "download example.com/missing@v1.0.0") || strings.Contains(err.Error(), "example.com/a@") {
		t.Fatalf("got %v, want only example.com/missing@v1.0.0 to fail", err)
	}
	data, err := os.ReadFile(p.ZipPath(t, b.Path, b.Version))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(got[0].Zip, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := offline.Fetch(context.Background(), []pins.Module{a}); !errors.Is(err, modfetch.ErrHashMismatch) {
		t.Fatalf("got %v, want the tampered cached zip of %s refused offline", err, a)
	}
}

// FetchGoMods checks every go.mod file against the lock's go.mod h1 and
// names the module whose file differs or is missing.
func TestFetchGoMods(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, p *modfetchtest.Proxy) // after the lock was taken
		extra   []pins.Module
		wantErr []string
		is      error
	}{
		{name: "good"},
		{
			name: "go.mod changed on the proxy",
			tamper: func(t *testing.T, p *modfetchtest.Proxy) {
				p.WriteGoMod(t, modA.Path, modA.Version, "module example.com/a\n\nrequire example.com/evil v1.0.0\n")
			},
			wantErr: []string{"example.com/a@v1.0.0", "go.mod h1 hash mismatch", "the lock says h1:"},
			is:      modfetch.ErrGoModMismatch,
		},
		{
			name:    "module not served",
			extra:   []pins.Module{{Path: "example.com/missing", Version: "v1.2.3", H1: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
			wantErr: []string{"example.com/missing@v1.2.3 go.mod"},
		},
		{
			name:    "no go.mod h1 in the lock",
			extra:   []pins.Module{{Path: "example.com/x", Version: "v1.0.0"}},
			wantErr: []string{"example.com/x@v1.0.0 go.mod", "no h1 hash"},
			is:      modfetch.ErrMissingHash,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := modfetchtest.New(t)
			p.Add(t, modA)
			p.Add(t, modB)
			mods := []pins.Module{
				{Path: modA.Path, Version: modA.Version, H1: modfetchtest.GoModH1(t, modA)},
				{Path: modB.Path, Version: modB.Version, H1: modfetchtest.GoModH1(t, modB)},
			}
			mods = append(mods, tc.extra...)
			if tc.tamper != nil {
				tc.tamper(t, p)
			}
			f := modfetch.Fetcher{Env: p.Env(t)}
			got, err := f.FetchGoMods(context.Background(), mods)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range got {
					if r.Module != mods[i] {
						t.Errorf("result %d = %v, want %v", i, r.Module, mods[i])
					}
					if err := modfetch.CheckGoMod(r.Module, r.GoMod); err != nil {
						t.Error(err)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one containing %q", tc.wantErr)
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
