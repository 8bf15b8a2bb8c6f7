//go:build mage

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/elfcheck"
	"github.com/nokmem/nokmem/internal/gobuild"
	"github.com/nokmem/nokmem/internal/publish"
	"github.com/nokmem/nokmem/internal/release"
	"github.com/nokmem/nokmem/internal/release/signkey"
	"github.com/nokmem/nokmem/internal/stepstamp"
	"github.com/nokmem/nokmem/internal/toolchain"
	"github.com/nokmem/nokmem/internal/verifybuild"
)

// Verify builds the node program.
type Verify mg.Namespace

// verifyOutput is where the node program is published.
var verifyOutput = filepath.Join("_output", "verify")

// Build builds the verify node program with the toolchain pinned in
// vendor-pins/verify/lock.yaml as a static binary (CGO_ENABLED=0, -trimpath,
// empty build id, stamped with its source commit and bundle name, so
// rebuilds are byte-identical), checks it (pinned Go, static ELF that runs
// on CentOS 7) and publishes it atomically into _output/verify with its
// release set: SHA256SUMS, SHA512SUMS, SBOM (module graph from go.sum),
// provenance, vulnerability account and signature. A sha256 that differs from
// vendor-pins/verify/verify.CHECKSUMS is a warning here and an error in
// verify:checksums.
//
// With nothing changed it does no work, and runs no go command: its record
// (_build/stamps/verify) holds the content of every source file of the
// last build (go.mod, go.sum, the packages verify imports), the file names
// in those packages' folders, the stamped version (last commit of those
// files, dirty or not), the lock, the GO* environment, the bundle name,
// the signing key and the build tool, and the identity of every file in
// _output/verify.
func (Verify) Build(ctx context.Context) error {
	k, err := releaseKey()
	if err != nil {
		return err
	}
	files, _ := readSourceList()
	in, err := verifyInputs(ctx, k, files)
	if err != nil {
		return err
	}
	s := &stepstamp.Step{Name: "verify", File: verifyRecord, Inputs: in, Outputs: []string{verifyOutput}}
	return runStep(s, func() error {
		_, built, err := buildVerify(ctx, verifyOutput)
		if err != nil {
			return err
		}
		if !slices.Equal(built, files) {
			// New source list: stamp what the build read.
			if s.Inputs, err = verifyInputs(ctx, k, built); err != nil {
				return err
			}
		}
		return writeSourceList(built)
	})
}

// verifySources lists the source files of the last verify build, one a line.
var verifySources = verifyRecord + ".sources"

func readSourceList() ([]string, error) {
	b, err := os.ReadFile(verifySources)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

func writeSourceList(files []string) error {
	if err := os.MkdirAll(filepath.Dir(verifySources), 0o755); err != nil {
		return err
	}
	return os.WriteFile(verifySources, []byte(strings.Join(files, "\n")+"\n"), 0o644)
}

// verifyInputs is the input stamp of the verify build from files, its
// source files (none: no earlier build, the stamp then matches no record).
func verifyInputs(ctx context.Context, k signkey.Key, files []string) (*publish.Stamp, error) {
	in, err := stepInputs(k)
	if err != nil {
		return nil, err
	}
	if err := in.AddFile("lock", verifybuild.LockFile); err != nil {
		return nil, err
	}
	addGoEnv(in)
	name, err := bundleName()
	if err != nil {
		return nil, err
	}
	in.Add("bundle name", []byte(name))
	if len(files) == 0 {
		return in, nil
	}
	in.Add("source list", []byte(strings.Join(files, "\n")))
	dirs := map[string]bool{}
	for _, f := range files {
		if err := in.AddFile("source "+f, f); err != nil {
			return nil, err
		}
		if strings.HasSuffix(f, ".go") {
			dirs[filepath.Dir(f)] = true
		}
	}
	for d := range dirs {
		// A file added to a package folder may join the build.
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("verify sources: %w", err)
		}
		var names []string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), "_test.go") {
				names = append(names, e.Name())
			}
		}
		in.Add("folder "+d, []byte(strings.Join(names, "\n")))
	}
	st, err := verifybuild.SourceStamp(ctx, ".", files, name)
	if err != nil {
		return nil, err
	}
	in.Add("version", []byte(st.Version+" "+st.Commit+" "+st.CommitTime.String()))
	return in, nil
}

// Checksums builds verify and fails unless its sha256 equals the one
// committed in vendor-pins/verify/verify.CHECKSUMS. verify's sources change
// often: after committing a change to them, run verify:updateChecksums and
// commit vendor-pins/verify/verify.CHECKSUMS (the stamped commit is the
// last one that touched verify's sources, so that second commit does not
// change the binary).
func (Verify) Checksums(ctx context.Context) error {
	sha, _, err := buildVerify(ctx, verifyOutput)
	if err != nil {
		return err
	}
	if err := publish.CheckExpected(verifybuild.ChecksumsFile, sha); err != nil {
		return fmt.Errorf("%w\nif verify's sources changed on purpose, commit them, then run `go tool mage verify:updateChecksums` and commit %s", err, verifybuild.ChecksumsFile)
	}
	fmt.Fprintf(os.Stderr, "verify: built binary matches %s\n", verifybuild.ChecksumsFile)
	return nil
}

// UpdateChecksums builds verify from committed sources and writes its
// sha256 to vendor-pins/verify/verify.CHECKSUMS. It refuses a dirty tree,
// whose binary no clean checkout can reproduce.
func (Verify) UpdateChecksums(ctx context.Context) error {
	sha, _, err := buildVerify(ctx, verifyOutput)
	if err != nil {
		return err
	}
	if v, err := publishedVersion(); err != nil {
		return err
	} else if strings.HasSuffix(v, "-dirty") {
		return fmt.Errorf("verify %s: commit verify's sources first; a dirty build cannot be reproduced", v)
	}
	line := fmt.Sprintf("%s  verify\n", sha["verify"])
	if err := os.WriteFile(verifybuild.ChecksumsFile, []byte(line), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "verify: wrote %s: %s", verifybuild.ChecksumsFile, line)
	return nil
}

// buildVerify builds, checks and publishes verify with its release set
// into dest and returns its sha256 by file name and its source files.
func buildVerify(ctx context.Context, dest string) (map[string]string, []string, error) {
	l, err := verifybuild.LoadLock(verifybuild.LockFile)
	if err != nil {
		return nil, nil, err
	}
	goBin, err := toolchain.Go(ctx, newFetcher(), l.Toolchain)
	if err != nil {
		return nil, nil, err
	}
	tv, err := toolchain.ParseVersion(l.Toolchain)
	if err != nil {
		return nil, nil, err
	}
	name, err := bundleName()
	if err != nil {
		return nil, nil, err
	}
	files, err := verifybuild.SourceFiles(ctx, goBin, ".")
	if err != nil {
		return nil, nil, err
	}
	stamp, err := verifybuild.SourceStamp(ctx, ".", files, name)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll("_build", 0o755); err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp("_build", "verify-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	bin, err := filepath.Abs(filepath.Join(tmp, "verify"))
	if err != nil {
		return nil, nil, err
	}
	spec := verifybuild.Spec{Go: goBin, Root: ".", Out: bin, Stamp: stamp, GoVers: tv.Go}
	if err := verifybuild.Build(ctx, spec); err != nil {
		return nil, nil, err
	}
	if err := gobuild.CheckGoVersion(ctx, goBin, bin, tv.Go); err != nil {
		return nil, nil, err
	}
	r, err := elfcheck.Check(bin, elfcheck.CentOS7GLIBC)
	if err != nil {
		return nil, nil, err
	}
	if !r.Static() {
		return nil, nil, fmt.Errorf("%s: want a static binary, it has interpreter %q and needs %v", bin, r.Interp, r.Needed)
	}
	in, err := verifybuild.Inputs(ctx, spec, l, files)
	if err != nil {
		return nil, nil, err
	}
	ps := &publish.Stamp{}
	ps.Add("verify", []byte(strings.Join(spec.Args(), " ")))
	sha, err := publish.Publish(dest, []string{bin}, ps)
	if err != nil {
		return nil, nil, err
	}
	key, pub, err := signingKey()
	if err != nil {
		return nil, nil, err
	}
	if err := writeAccount(dest, in, []string{"verify"}); err != nil {
		return nil, nil, err
	}
	if err := release.Write(dest, in, []string{"verify"}, key); err != nil {
		return nil, nil, err
	}
	if err := release.Verify(dest, pub); err != nil {
		return nil, nil, fmt.Errorf("verify release set: %w", err)
	}
	if err := publish.CheckExpected(verifybuild.ChecksumsFile, sha); err != nil {
		// Build publishes what it built; verify:checksums turns this into a failure.
		fmt.Fprintf(os.Stderr, "WARNING: verify: %v\n  (expected while verify's sources change; the gate is `go tool mage verify:checksums`)\n", err)
	}
	fmt.Fprintf(os.Stderr, "verify: published %s (sha256 %s, %s, %s, %d modules in its SBOM)\n", dest, sha["verify"], stamp.Version, tv.Go, len(in.Vendor))
	return sha, files, nil
}

// publishedVersion asks the published verify for its version.
func publishedVersion() (string, error) {
	bin := filepath.Join(verifyOutput, "verify")
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", bin, err)
	}
	var v struct{ Version string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("%s version printed %q: %v", bin, out, err)
	}
	return v.Version, nil
}
