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
	"strings"
	"time"

	"github.com/nokmem/nokmem/internal/release/gpgsign"
	"github.com/nokmem/nokmem/internal/release/sign"
	"github.com/nokmem/nokmem/internal/release/sums"
)

// RepoData is the folder createrepo_c writes.
const RepoData = "repodata"

// Files of a published repository besides the RPMs and repodata/.
const (
	// RepoMDSig is the armored detached OpenPGP signature of repomd.xml
	// (yum and dnf read it with repo_gpgcheck=1).
	RepoMDSig = "repomd.xml.asc"
	// GPGKeyFile is the OpenPGP public key (gpgkey= of the .repo file).
	GPGKeyFile = "RPM-GPG-KEY-nokmem"
	// RepoFileName is the .repo file for /etc/yum.repos.d.
	RepoFileName = "nokmem.repo"
	// PackagesFile names the exact packages of this repository, as Ansible
	// variables (deploy/ansible: `-e @nokmem-packages.yml`).
	PackagesFile = "nokmem-packages.yml"
	// RepoID is the repository's id in RepoFileName.
	RepoID = "nokmem"
)

// Published describes a repository Publish wrote.
type Published struct {
	Dir string
	// RPMs are the package file names, sorted.
	RPMs []string
	// RepoTook is the time createrepo_c took, SignTook the OpenPGP
	// signatures (every RPM and repomd.xml).
	RepoTook, SignTook time.Duration
}

// Options are Publish's keys and settings.
type Options struct {
	// Key and Pub are the minisign key pair that signs SHA256SUMS.
	Key, Pub string
	// GPG signs every RPM and repodata/repomd.xml.
	GPG *gpgsign.Key
	// BaseURL is where the repository is served (baseurl= of the .repo file).
	BaseURL string
	// SourceDate is the metadata's revision and timestamps and the signature time.
	SourceDate time.Time
}

// RepoFile is the .repo file of a repository served at baseURL: packages
// and metadata signatures checked (gpgcheck=1, repo_gpgcheck=1) with the
// key published beside them.
func RepoFile(baseURL string) string {
	base := strings.TrimSuffix(baseURL, "/")
	return fmt.Sprintf(`# nokmem yum repository (docs/fleet.md). Every RPM and repodata/repomd.xml
# are signed with the nokmem release key; nokmem-release-key installs it as
# %s.
[%s]
name=nokmem: kubelet builds without kmem accounting, and verify
baseurl=%s
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=%s/%s
`, ReleaseKeyPath, RepoID, base, base, GPGKeyFile)
}

// Publish writes pkgs, signed with o.GPG, into a fresh folder beside dest,
// makes the yum metadata with createrepo_c (no sqlite databases,
// timestamps and revision set to the source date, so a rebuild from the
// same sources gives the same bytes), signs repomd.xml (repomd.xml.asc),
// adds the public key, the .repo file and the package list, writes
// SHA256SUMS and SHA512SUMS over all of them, signs SHA256SUMS with the
// minisign key, checks both kinds of signature, and only then replaces
// dest. On any error dest is left as it was.
func Publish(ctx context.Context, dest string, pkgs []*Package, o Options) (*Published, error) {
	if o.GPG == nil {
		return nil, fmt.Errorf("yum repo: no OpenPGP key to sign the RPMs with")
	}
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
	start := time.Now()
	for _, p := range pkgs {
		signed := *p
		signed.Sign = o.GPG.RPMSigner(o.SourceDate)
		if _, err := WriteFile(dir, &signed); err != nil {
			return nil, err
		}
		out.RPMs = append(out.RPMs, p.FileName())
	}
	out.SignTook = time.Since(start)
	sort.Strings(out.RPMs)
	start = time.Now()
	if err := CreateRepo(ctx, dir, o.SourceDate); err != nil {
		return nil, err
	}
	out.RepoTook = time.Since(start)
	start = time.Now()
	repomd := filepath.Join(dir, RepoData, "repomd.xml")
	md, err := os.ReadFile(repomd)
	if err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	sig, err := o.GPG.ArmoredSign(md, o.SourceDate)
	if err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	out.SignTook += time.Since(start)
	pubKey, err := o.GPG.Public()
	if err != nil {
		return nil, err
	}
	extra := map[string][]byte{
		filepath.Join(RepoData, RepoMDSig): sig,
		GPGKeyFile:                         pubKey,
		RepoFileName:                       []byte(RepoFile(o.BaseURL)),
		PackagesFile:                       packageList(pkgs),
	}
	for name, data := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("yum repo: %w", err)
		}
	}
	listed := append(append([]string(nil), out.RPMs...), GPGKeyFile, RepoFileName, PackagesFile)
	sort.Strings(listed)
	if _, err := sums.Write(dir, listed, nil); err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	sumsFile := filepath.Join(dir, sums.SHA256.SumsFile)
	if err := sign.File(sumsFile, o.Key); err != nil {
		return nil, fmt.Errorf("yum repo: %w", err)
	}
	if err := Check(dir, o.Pub); err != nil {
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

// packageList is PackagesFile: each package's name-version-release.arch
// under nokmem_<name>_package (the name without its nokmem- prefix, dashes
// as underscores: nokmem_kubelet_package, nokmem_node_package,
// nokmem_release_key_package), for the role to install exactly these.
func packageList(pkgs []*Package) []byte {
	var b strings.Builder
	b.WriteString("# The exact packages of this nokmem repository (deploy/ansible: -e @" + PackagesFile + ").\n")
	sorted := append([]*Package(nil), pkgs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, p := range sorted {
		fmt.Fprintf(&b, "nokmem_%s_package: %s-%s-%s.%s\n", strings.ReplaceAll(strings.TrimPrefix(p.Name, "nokmem-"), "-", "_"), p.Name, p.Version, p.Release, p.Arch)
	}
	return []byte(b.String())
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
// with the public key at pub, every listed file's checksum, that every RPM
// in dir is listed, that the metadata exists and that repomd.xml.asc is a
// good signature by the listed OpenPGP key.
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
	md, err := os.ReadFile(filepath.Join(dir, RepoData, "repomd.xml"))
	if err != nil {
		return fmt.Errorf("yum metadata: %w", err)
	}
	if !in[GPGKeyFile] {
		return fmt.Errorf("%s is not listed in %s", GPGKeyFile, sumsFile)
	}
	key, err := os.ReadFile(filepath.Join(dir, GPGKeyFile))
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(filepath.Join(dir, RepoData, RepoMDSig))
	if err != nil {
		return fmt.Errorf("yum metadata: %w", err)
	}
	return gpgsign.VerifyArmored(filepath.Join(dir, RepoData, "repomd.xml"), key, md, sig)
}
