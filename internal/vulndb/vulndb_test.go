package vulndb_test

import (
	"archive/zip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nokmem/nokmem/internal/modfetch"
	"github.com/nokmem/nokmem/internal/pins"
	"github.com/nokmem/nokmem/internal/release/inputs"
	"github.com/nokmem/nokmem/internal/release/inputs/inputstest"
	"github.com/nokmem/nokmem/internal/release/sbom"
	"github.com/nokmem/nokmem/internal/vulndb"
)

const pinsDir = "../../vendor-pins"

// anyH1 is a well-formed h1 (the SBOM records it; the scan ignores it).
const anyH1 = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

var fakeDB = pins.Module{Path: vulndb.DatabaseModule, Version: "v0.0.0-20990101000000-000000000000", H1: "h1:fake"}

// osvZip writes a database module zip holding the named OSV records.
func osvZip(t *testing.T, records map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "db.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range records {
		w, err := zw.Create(fakeDB.Path + "@" + fakeDB.Version + "/data/osv/" + name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

const (
	runcRecord = `{"schema_version":"1.3.1","id":"GO-2024-2491","modified":"0001-01-01T00:00:00Z","aliases":["CVE-2024-21626","GHSA-xr7r-f8xq-vfvv"],
"summary":"Container breakout through process.cwd trickery and leaked fds in github.com/opencontainers/runc",
"affected":[{"package":{"name":"github.com/opencontainers/runc","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0-rc93"},{"fixed":"1.1.12"}]}]}]}`
	netRecord = `{"schema_version":"1.3.1","id":"GO-2022-0236","modified":"0001-01-01T00:00:00Z","aliases":["CVE-2021-31525"],"summary":"x/net",
"affected":[{"package":{"name":"golang.org/x/net","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.0.0-20210428140749-89ef3d95e781"}]}]}]}`
	withdrawn = `{"schema_version":"1.3.1","id":"GO-2025-3543","modified":"0001-01-01T00:00:00Z","withdrawn":"2025-03-20T00:00:00Z","summary":"WITHDRAWN",
"affected":[{"package":{"name":"github.com/opencontainers/runc","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`
)

// TestReadZip: Go SEMVER ranges become ranges, withdrawn records are left
// out, and a malformed record stops the read naming its file.
func TestReadZip(t *testing.T) {
	db, err := vulndb.ReadZip(osvZip(t, map[string]string{"GO-2024-2491.json": runcRecord, "GO-2025-3543.json": withdrawn, "GO-2022-0236.json": netRecord}), fakeDB)
	if err != nil {
		t.Fatal(err)
	}
	rs := db.Records(vulndb.RuncModule)
	if len(rs) != 1 || rs[0].ID != "GO-2024-2491" || len(rs[0].Ranges) != 1 || rs[0].Ranges[0] != (vulndb.Range{Introduced: "v1.0.0-rc93", Fixed: "v1.1.12"}) {
		t.Fatalf("runc records: %+v", rs)
	}
	for v, want := range map[string]bool{"v1.0.0-rc5": false, "v1.0.0-rc93": true, "v1.1.11": true, "v1.1.12": false} {
		if got := rs[0].Affects(v, ""); got != want {
			t.Errorf("Affects(%s) = %v, want %v", v, got, want)
		}
	}
	_, err = vulndb.ReadZip(osvZip(t, map[string]string{"GO-2024-2491.json": runcRecord, "GO-2099-0001.json": `{"id": 3}`}), fakeDB)
	if !errors.Is(err, vulndb.ErrRecord) || !strings.Contains(err.Error(), "data/osv/GO-2099-0001.json") {
		t.Fatalf("malformed record: %v", err)
	}
}

// TestReviewedFilesRefused: a supplement entry without its citation and a
// statement outside the OpenVEX vocabulary or without evidence are
// refused, naming the file and the entry.
func TestReviewedFilesRefused(t *testing.T) {
	dir := t.TempDir()
	sup := filepath.Join(dir, "supplement.yaml")
	os.WriteFile(sup, []byte("entries:\n  - {id: X-1, module: m, summary: s, ranges: [{fixed: v1.0.0}], reviewed: me}\n"), 0o644)
	if _, _, err := vulndb.LoadSupplement(sup); !errors.Is(err, vulndb.ErrRecord) || !strings.Contains(err.Error(), sup) || !strings.Contains(err.Error(), "references") {
		t.Errorf("supplement without references: %v", err)
	}
	for _, c := range []struct{ stmt, want string }{
		{"{vulnerability: GO-1, products: [kubelet], status: not_affected, justification: trust_me, impact_statement: x, reviewed: me}", "justification"},
		{"{vulnerability: GO-1, products: [kubelet], status: not_affected, justification: vulnerable_code_not_in_execute_path, reviewed: me}", "impact_statement"},
		{"{vulnerability: GO-1, products: [kubelet], status: affected, reviewed: me}", "action_statement"},
		{"{vulnerability: GO-1, products: [kubelet], status: fixed, reviewed: me}", "status \"fixed\""},
		{"{vulnerability: GO-1, products: [kubelet], status: affected, action_statement: x}", "reviewed"},
	} {
		p := filepath.Join(dir, "vex.yaml")
		os.WriteFile(p, []byte("statements:\n  - "+c.stmt+"\n"), 0o644)
		if _, err := vulndb.LoadVEX(p); !errors.Is(err, vulndb.ErrStatement) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", c.stmt, err, c.want)
		}
	}
}

var (
	realOnce sync.Once
	realDB   *vulndb.DB
	realErr  error
)

// pinned opens the pinned database (from the module cache; the zip's h1 is
// checked) once for the tests.
func pinned(t *testing.T) *vulndb.DB {
	t.Helper()
	realOnce.Do(func() { realDB, realErr = vulndb.Open(t.Context(), &modfetch.Fetcher{}, pinsDir) })
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realDB
}

// writeSBOM writes the SBOM of in for one artifact and returns its path.
func writeSBOM(t *testing.T, in *inputs.Inputs, artifact string) string {
	t.Helper()
	doc, err := sbom.Document(in, []inputs.Artifact{{Name: artifact, SHA256: strings.Repeat("ab", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), sbom.FileName)
	if err := sbom.Write(p, doc); err != nil {
		t.Fatal(err)
	}
	return p
}

func account(t *testing.T, db *vulndb.DB, sbomPath string) *vulndb.Account {
	t.Helper()
	arts, err := db.ScanSBOM(sbomPath)
	if err != nil {
		t.Fatal(err)
	}
	a := vulndb.NewAccount(db)
	a.Artifacts = arts
	return a
}

// TestPinnedDatabase: the pinned database has the runc and kubelet
// records: 18 reports for runc, one withdrawn (GO-2025-3543), plus the
// supplement's CVE-2019-5736 and CVE-2026-119101; 45 for k8s.io/kubernetes, one withdrawn
// (GO-2022-0617).
func TestPinnedDatabase(t *testing.T) {
	db := pinned(t)
	if n := len(db.Records(vulndb.RuncModule)); n != 19 {
		t.Errorf("%d runc records, want 19", n)
	}
	if n := len(db.Records(vulndb.KubeletModule)); n != 44 {
		t.Errorf("%d kubernetes records, want 44", n)
	}
	t.Logf("%d records in %s", db.Len(), db.Database)
}

// TestRc5Account: the rc5 release set's account lists CVE-2019-5736 from
// the supplement with its fix, every finding is open, and the default
// bundle's gate refuses it and says what to do.
func TestRc5Account(t *testing.T) {
	db := pinned(t)
	a := account(t, db, writeSBOM(t, inputstest.Runc(), "runc"))
	art := a.Artifact("runc")
	if art == nil || art.Version != "v1.0.0-rc5" {
		t.Fatalf("account: %+v", a.Artifacts)
	}
	var found *vulndb.Finding
	for i, f := range art.Findings {
		if f.ID == "NOKMEM-2019-0001" {
			found = &art.Findings[i]
		}
	}
	if found == nil || found.Aliases[0] != "CVE-2019-5736" || found.Fixed[0] != "v1.0.0-rc7" || found.Source != "supplement" || found.Status != vulndb.StatusOpen {
		t.Fatalf("CVE-2019-5736 finding: %+v in %+v", found, art.Findings)
	}
	err := vulndb.BundleGate(a)
	if !errors.Is(err, vulndb.ErrOpenFinding) || !strings.Contains(err.Error(), "CVE-2019-5736") || !strings.Contains(err.Error(), "what to do") {
		t.Fatalf("gate on rc5: %v", err)
	}
	md := string(a.Markdown())
	if !strings.Contains(md, "| NOKMEM-2019-0001 | CVE-2019-5736 | github.com/opencontainers/runc | v1.0.0-rc5 | v1.0.0-rc7 | open |") {
		t.Errorf("markdown table lacks the CVE-2019-5736 row:\n%s", md)
	}
}

// maintainedRunc is a runc release set with no known vulnerability in the
// pinned database: the shape of the default bundle's runc.
func maintainedRunc() *inputs.Inputs {
	in := inputstest.Runc()
	in.Version = "v1.4.4"
	in.Source.Module.Version, in.Source.Commit = "v1.4.4", ""
	in.Vendor = []inputs.Vendored{{Root: "golang.org/x/sys", Module: pins.Module{Path: "golang.org/x/sys", Version: "v0.49.0", H1: anyH1}}}
	return in
}

// TestGatePlantedModule: the default bundle's gate passes a runc without
// known vulnerabilities and fails, naming the module, the advisory and its
// fixed version, once a vulnerable module version is planted in its SBOM.
func TestGatePlantedModule(t *testing.T) {
	db := pinned(t)
	clean := account(t, db, writeSBOM(t, maintainedRunc(), "runc"))
	if err := vulndb.BundleGate(clean); err != nil {
		t.Fatalf("clean runc: %v", err)
	}
	planted := maintainedRunc()
	planted.Vendor = append(planted.Vendor, inputs.Vendored{Root: "golang.org/x/net", Module: pins.Module{Path: "golang.org/x/net", Version: "v0.0.0-20180124060956-0ed95abb35c4", H1: anyH1}})
	a := account(t, db, writeSBOM(t, planted, "runc"))
	err := vulndb.BundleGate(a)
	if !errors.Is(err, vulndb.ErrOpenFinding) || !strings.Contains(err.Error(), "golang.org/x/net@v0.0.0-20180124060956-0ed95abb35c4") || !strings.Contains(err.Error(), "GO-2022-0236") {
		t.Fatalf("planted x/net: %v", err)
	}
}

// TestStatementsApply: a reviewed not_affected statement turns a finding
// of the named product (and only that product) from open into
// not_affected, and the gate accepts it.
func TestStatementsApply(t *testing.T) {
	db := pinned(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "vex.yaml")
	os.WriteFile(p, []byte(`statements:
  - vulnerability: CVE-2021-31525
    products: [runc]
    module: golang.org/x/net
    status: not_affected
    justification: vulnerable_code_not_in_execute_path
    impact_statement: test
    reviewed: test
`), 0o644)
	stmts, err := vulndb.LoadVEX(p)
	if err != nil {
		t.Fatal(err)
	}
	withVEX := *db
	withVEX.VEX = stmts
	in := maintainedRunc()
	in.Vendor = append(in.Vendor, inputs.Vendored{Root: "golang.org/x/net", Module: pins.Module{Path: "golang.org/x/net", Version: "v0.0.0-20210427000000-000000000000", H1: anyH1}})
	a := account(t, &withVEX, writeSBOM(t, in, "runc"))
	art := a.Artifact("runc")
	if len(art.Findings) == 0 {
		t.Fatal("no finding for x/net")
	}
	for _, f := range art.Findings {
		if f.ID == "GO-2022-0236" && (f.Status != vulndb.StatusNotAffected || f.Justification != "vulnerable_code_not_in_execute_path") {
			t.Errorf("GO-2022-0236: %+v", f)
		}
	}
	other := account(t, &withVEX, writeSBOM(t, in, "kubelet"))
	if other.Artifacts[0].Open == 0 {
		t.Errorf("the runc statement applied to kubelet: %+v", other.Artifacts[0])
	}
}

// TestAccountRoundTrip: VULNERABILITIES.json reads back; accounts of
// different databases do not merge.
func TestAccountRoundTrip(t *testing.T) {
	db := pinned(t)
	a := account(t, db, writeSBOM(t, inputstest.Runc(), "runc"))
	dir := t.TempDir()
	if err := a.Write(dir); err != nil {
		t.Fatal(err)
	}
	b, err := vulndb.Read(filepath.Join(dir, vulndb.JSONFile))
	if err != nil || len(b.Artifacts) != 1 || b.Artifacts[0].Open != a.Artifacts[0].Open {
		t.Fatalf("read back: %+v %v", b, err)
	}
	other := *b
	other.Database.Version = "v0.0.0-older"
	if err := b.Merge(&other); err == nil {
		t.Error("merged accounts of two databases")
	}
}

// TestKubeletStatements: the committed statements make the vendored
// runc's container-setup findings of kubelet v1.12.4 not_affected, leave
// the others open, and do not apply to another kubelet version.
func TestKubeletStatements(t *testing.T) {
	db := pinned(t)
	scan := func(version string) map[string]vulndb.Finding {
		l, err := pins.Load(pinsDir, "kubernetes", version)
		if err != nil {
			t.Fatal(err)
		}
		in, err := inputs.FromLock(l, "")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]vulndb.Finding{}
		for _, f := range account(t, db, writeSBOM(t, in, "kubelet")).Artifacts[0].Findings {
			got[f.ID+" "+f.Module] = f
		}
		return got
	}
	v1124 := scan("v1.12.4")
	for id, want := range map[string]string{
		"NOKMEM-2019-0001 " + vulndb.RuncModule:          vulndb.StatusNotAffected,
		"GO-2022-0914 " + vulndb.RuncModule:              vulndb.StatusNotAffected,
		"GO-2021-0070 " + vulndb.RuncModule:              vulndb.StatusOpen,
		"GO-2021-0085 github.com/opencontainers/selinux": vulndb.StatusOpen,
	} {
		if f, ok := v1124[id]; !ok || f.Status != want {
			t.Errorf("kubelet v1.12.4 %s: %+v (found %v), want %s", id, f, ok, want)
		}
	}
	if f := scan("v1.12.8")["NOKMEM-2019-0001 "+vulndb.RuncModule]; f.Status != vulndb.StatusOpen {
		t.Errorf("kubelet v1.12.8's CVE-2019-5736 finding: %+v, want open (the statement is about v1.12.4)", f)
	}
}

// TestMergeDirsGate: the bundle's account merges its parts' accounts and
// the default bundle's gate reads runc's findings from it; a part without
// an account is an error naming it.
func TestMergeDirsGate(t *testing.T) {
	db := pinned(t)
	runcDir, kubeletDir := t.TempDir(), t.TempDir()
	if err := account(t, db, writeSBOM(t, inputstest.Runc(), "runc")).Write(runcDir); err != nil {
		t.Fatal(err)
	}
	k := inputstest.Runc()
	k.Name, k.Version = "kubernetes", "v1.12.4"
	if err := account(t, db, writeSBOM(t, k, "kubelet")).Write(kubeletDir); err != nil {
		t.Fatal(err)
	}
	a, err := vulndb.MergeDirs(kubeletDir, runcDir)
	if err != nil || len(a.Artifacts) != 2 || a.Artifacts[0].Name != "kubelet" {
		t.Fatalf("merged: %+v %v", a, err)
	}
	if err := vulndb.BundleGate(a); !errors.Is(err, vulndb.ErrOpenFinding) {
		t.Fatalf("gate on a bundle with rc5: %v", err)
	}
	empty := t.TempDir()
	if _, err := vulndb.MergeDirs(kubeletDir, empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Fatalf("part without an account: %v", err)
	}
}

// TestSecurityDocUpToDate fails when the table of docs/security.md no
// longer matches the committed locks, verify's modules and the pinned
// database (run `go tool mage vulnDocs`); an edited table is caught.
func TestSecurityDocUpToDate(t *testing.T) {
	a, err := vulndb.LockAccount(t.Context(), pinned(t), pinsDir, "../..")
	if err != nil {
		t.Fatal(err)
	}
	table := vulndb.DocTable(a)
	const doc = "../../docs/security.md"
	if err := vulndb.CheckDoc(doc, table); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	edited := filepath.Join(t.TempDir(), "security.md")
	os.WriteFile(edited, []byte(strings.Replace(string(data), "| runc | v1.0.0-rc5 |", "| runc | v1.0.0-rc6 |", 1)), 0o644)
	if err := vulndb.CheckDoc(edited, table); !errors.Is(err, vulndb.ErrDocStale) || !strings.Contains(err.Error(), "go tool mage vulnDocs") {
		t.Fatalf("edited table: %v", err)
	}
}

// TestResolve: the go command resolves a query to the pinned version and
// its h1 (from the module cache, checked against the checksum database when
// first downloaded).
func TestResolve(t *testing.T) {
	l, err := vulndb.LoadLock(pinsDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := vulndb.Resolve(t.Context(), l.Database.Version)
	if err != nil || m != l.Database {
		t.Fatalf("Resolve(%s) = %+v, %v; want %+v", l.Database.Version, m, err, l.Database)
	}
}

// runc144 is runc v1.4.4 with the modules of its go.mod, as its go.mod
// lock's SBOM lists them.
func runc144(userVersion string) *inputs.Inputs {
	in := inputstest.Runc()
	in.Version = "v1.4.4"
	in.Source.Module.Version, in.Source.Commit = "v1.4.4", ""
	in.Vendor = nil
	for _, m := range [][2]string{
		{"cyphar.com/go-pathrs", "v0.2.5"}, {"github.com/checkpoint-restore/go-criu/v7", "v7.2.0"},
		{"github.com/containerd/console", "v1.0.5"}, {"github.com/coreos/go-systemd/v22", "v22.7.0"},
		{"github.com/cyphar/filepath-securejoin", "v0.7.0"}, {"github.com/docker/go-units", "v0.5.0"},
		{"github.com/godbus/dbus/v5", "v5.1.0"}, {"github.com/moby/sys/capability", "v0.5.0"},
		{"github.com/moby/sys/mountinfo", "v0.7.2"}, {"github.com/moby/sys/user", userVersion},
		{"github.com/moby/sys/userns", "v0.1.0"}, {"github.com/mrunalp/fileutils", "v0.5.1"},
		{"github.com/opencontainers/cgroups", "v0.1.0"}, {"github.com/opencontainers/runtime-spec", "v1.3.0"},
		{"github.com/opencontainers/selinux", "v1.13.0"}, {"github.com/seccomp/libseccomp-golang", "v0.11.1"},
		{"github.com/sirupsen/logrus", "v1.9.3"}, {"github.com/urfave/cli", "v1.22.17"},
		{"github.com/vishvananda/netlink", "v1.3.1"}, {"github.com/vishvananda/netns", "v0.0.5"},
		{"golang.org/x/net", "v0.43.0"}, {"golang.org/x/sys", "v0.38.0"}, {"google.golang.org/protobuf", "v1.36.8"},
		{"github.com/cilium/ebpf", "v0.17.3"}, {"github.com/cpuguy83/go-md2man/v2", "v2.0.7"}, {"github.com/russross/blackfriday/v2", "v2.1.0"},
	} {
		in.Vendor = append(in.Vendor, inputs.Vendored{Module: pins.Module{Path: m[0], Version: m[1], H1: anyH1}})
	}
	return in
}

// TestMaintainedRuncGate: what the default bundle's gate says about runc
// v1.4.4 built from its own go.mod: the module findings in packages it
// does not contain carry reviewed statements, and the one left open is
// github.com/moby/sys/user v0.4.0 (GO-2026-6686, linked: runc parses the
// container's /etc/passwd); with its fix, v0.4.1, the gate passes.
func TestMaintainedRuncGate(t *testing.T) {
	db := pinned(t)
	err := vulndb.BundleGate(account(t, db, writeSBOM(t, runc144("v0.4.0"), "runc")))
	if !errors.Is(err, vulndb.ErrOpenFinding) || !strings.Contains(err.Error(), "1 finding(s)") || !strings.Contains(err.Error(), "GO-2026-6686") {
		t.Fatalf("runc v1.4.4 with its go.mod: %v", err)
	}
	if err := vulndb.BundleGate(account(t, db, writeSBOM(t, runc144("v0.4.1"), "runc"))); err != nil {
		t.Fatalf("runc v1.4.4 with moby/sys/user v0.4.1: %v", err)
	}
}
