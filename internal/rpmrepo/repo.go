package rpmrepo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
)

// RepoData is the folder createrepo_c writes.
const RepoData = "repodata"

// Published describes a repository Publish wrote.
type Published struct {
	Dir string
	// RPMs are the package file names, sorted.
	RPMs []string
	// Took is the time createrepo_c took.
	RepoTook time.Duration
}

// Publish writes pkgs into a fresh folder beside dest, makes the yum
// metadata with createrepo_c (no sqlite databases, timestamps and revision
// set to mtime, so a rebuild from the same sources gives the same bytes),
// writes SHA256SUMS and SHA512SUMS over the RPMs, signs SHA256SUMS with the
// minisign key at key, checks the signature with pub, and only then
// replaces dest. On any error dest is left as it was.
func Publish(ctx context.Context, dest string, pkgs []*Package, key, pub string, mtime time.Time) (*Published, error) {
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	staging, err := os.MkdirTemp(parent, ".yum-staging-")
	if err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	defer os.RemoveAll(staging)
	dir := filepath.Join(staging, "yum")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	out := &Published{Dir: dest}
	for _, p := range pkgs {
		if _, err := WriteFile(dir, p); err != nil {
			return nil, err
		}
		out.RPMs = append(out.RPMs, p.FileName())
	}
	sort.Strings(out.RPMs)
	start := time.Now()
	if err := CreateRepo(ctx, dir, mtime); err != nil {
		return nil, err
	}
	out.RepoTook = time.Since(start)
	if _, err := sums.Write(dir, out.RPMs, nil); err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	sumsFile := filepath.Join(dir, sums.SHA256.SumsFile)
	if err := sign.File(sumsFile, key); err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	if err := Check(dir, pub); err != nil {
		return nil, fmt.Errorf("yum repo just written: %w", err)
	}
	if err := os.Rename(dest, filepath.Join(staging, "old")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("yum repo: move the old one aside: %w", err)
	}
	if err := os.Rename(dir, dest); err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	return out, nil
}

// CreateRepo runs createrepo_c on dir with reproducible settings.
func CreateRepo(ctx context.Context, dir string, mtime time.Time) error {
	bin, err := exec.LookPath("createrepo_c")
	if err != nil {
		return fmt.Errorf("yum repo: createrepo_c not found (Debian package createrepo-c): %w", err)
	}
	rev := strconv.FormatInt(mtime.Unix(), 10)
	cmd := exec.CommandContext(ctx, bin, "--quiet", "--no-database", "--workers", "1",
		"--revision", rev, "--set-timestamp-to-revision", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("yum repo: createrepo_c %s: %w\n%s", dir, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, RepoData, "repomd.xml")); err != nil {
		return fmt.Errorf("yum repo: createrepo_c wrote no repomd.xml: %w", err)
	}
	return nil
}

// Check verifies a published repository: the signature over SHA256SUMS
// with the public key at pub, every RPM's checksum, that every RPM in dir is
// listed and that the metadata exists.
func Check(dir, pub string) error {
	sumsFile := filepath.Join(dir, sums.SHA256.SumsFile)
	if err := sign.Verify(sumsFile, pub); err != nil {
		return err
	}
	listed, err := sums.Check(dir)
	if err != nil {
		return err
	}
	rpms, err := filepath.Glob(filepath.Join(dir, "*.rpm"))
	if err != nil {
		return err
	}
	in := map[string]bool{}
	for _, n := range listed {
		in[n] = true
	}
	for _, r := range rpms {
		if !in[filepath.Base(r)] {
			return fmt.Errorf("%s is not listed in %s", r, sumsFile)
		}
	}
	if len(rpms) == 0 {
		return fmt.Errorf("%s holds no RPM", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, RepoData, "repomd.xml")); err != nil {
		return fmt.Errorf("yum metadata: %w", err)
	}
	return nil
}
