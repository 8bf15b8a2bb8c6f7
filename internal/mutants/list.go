package mutants

// List is the mutation check's fixed list (`go tool mage mutants`): one
// deliberate bug per entry and the tests that must catch it. Keep every Old
// text exactly once in its file: TestList (an ordinary unit test) fails when
// a code change makes an entry stale, so fix the entry together with the code.
var List = []Mutation{
	// internal/publish: readers of the output folder must never see a half
	// or missing folder, also when a publish is killed.
	{
		Name:    "publish-not-atomic",
		File:    "internal/publish/publish.go",
		Old:     "err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE)",
		New:     "err := errors.Join(os.RemoveAll(dest), os.Rename(staging, dest))",
		Package: "./internal/publish",
		Run:     "^(TestReadersSeeOldOrNewFolder|TestKilledPublishLeavesAWholeFolder)$",
	},
	{
		Name:    "publish-keeps-killed-staging",
		File:    "internal/publish/publish.go",
		Old:     "if err != nil || pid <= 0 || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {",
		New:     "if err != nil || pid <= 0 || pid > 0 {",
		Package: "./internal/publish",
		Run:     "^TestKilledPublishLeavesAWholeFolder$",
	},
	{
		// Every digest stays 64 hex digits and the sums files agree with
		// each other; only the real sha256 of the bytes tells.
		Name:    "sha256-of-first-byte-only",
		File:    "internal/release/sums/sums.go",
		Old:     "if _, err := io.Copy(h, f); err != nil {",
		New:     "if _, err := io.Copy(h, io.LimitReader(f, 1)); err != nil {",
		Package: "./internal/publish",
		Run:     "^TestPublishAndCurrent$",
	},
	// The vulnerability account (internal/vulndb, verify/affected, detect).
	{
		Name:    "vuln-gate-ignores-open-findings",
		File:    "internal/vulndb/account.go",
		Old:     "if f.Status != StatusNotAffected {",
		New:     "if false {",
		Package: "./internal/vulndb",
		Run:     "^(TestRc5Account|TestGatePlantedModule)$",
	},
	{
		Name:    "vuln-supplement-dropped",
		File:    "internal/vulndb/vulndb.go",
		Old:     "if err := db.addSupplement(filepath.Join(pinsDir, SupplementFile)); err != nil {",
		New:     "if err := error(nil); err != nil {",
		Package: "./internal/vulndb",
		Run:     "^TestRc5Account$",
	},
	{
		Name:    "vuln-fix-commit-ignored",
		File:    "verify/affected/vulns.go",
		Old:     `if v.Commit != "" && slices.ContainsFunc(r.FixCommits,`,
		New:     `if false && slices.ContainsFunc(r.FixCommits,`,
		Package: "./verify/affected",
		Run:     "^TestVulnerabilitiesNamed$",
	},
	{
		Name:    "detect-vulnerable-runc-no-problem",
		File:    "verify/detect/status.go",
		Old:     "p = append(p, r.vulnProblems()...)",
		New:     "_ = r.vulnProblems",
		Package: "./verify/detect",
		Run:     "^TestIdentifyUpstream$",
	},
	// The kmem patches, read from their hunks without a build.
	{
		Name:    "kubelet-kmem-guard-always-true",
		File:    "patches/kubernetes/v1.12.4/0001-runc-no-kmem-on-apply.patch",
		Old:     "+\t\t\tif d.config.Resources.KernelMemory != 0 {",
		New:     "+\t\t\tif d.config.Resources.KernelMemory >= 0 {",
		Package: "./internal/patchset",
		Run:     "^TestKubernetesSeries$",
	},
	{
		Name:    "runc-kmem-guard-always-true",
		File:    "patches/runc/v1.0.0-rc5/0001-kmem-only-when-limit-set.patch",
		Old:     "+\t\t\tif d.config.Resources.KernelMemory != 0 {",
		New:     "+\t\t\tif d.config.Resources.KernelMemory >= 0 {",
		Package: "./internal/runcproof",
		Run:     "^TestLockAndPatches$",
	},
	// The systemd unit, checked by systemd's own parser.
	{
		Name:    "unit-bad-service-type",
		File:    "scripts/nokmem-acceptance.service",
		Old:     "Type=oneshot",
		New:     "Type=oneshoot",
		Package: "./verify",
		Run:     "^TestSystemdUnit$",
	},
	// The built release sets must be refused with a foreign key.
	{
		Name:    "signature-check-accepts-any-key",
		File:    "internal/release/sign/sign.go",
		Old:     "if !minisign.Verify(pub, msg, sig) {",
		New:     "if !minisign.Verify(pub, msg, sig) && false {",
		Package: "./internal/release",
		Run:     "^TestBuiltReleaseSets$",
	},
	// The four the first mutation review found caught already.
	{
		Name:    "migrate-drops-soft-limit",
		File:    "verify/migrate/settings.go",
		Old:     "if err := write(memcg.SoftLimit, cur.SoftLimit, want.SoftLimit, &eff.SoftLimit); err != nil {",
		New:     "if err := write(memcg.SoftLimit, cur.SoftLimit, cur.SoftLimit, &eff.SoftLimit); err != nil {",
		Package: "./verify/migrate",
		Run:     "^TestMigrateSim$",
	},
	{
		Name:    "install-skips-signature-check",
		File:    "verify/install/open.go",
		Old:     "b.Manifest, err = bundle.Verify(b.Dir, pubKey)",
		New:     "b.Manifest, err = bundle.VerifyUnsigned(b.Dir)",
		Package: "./verify/install",
		Run:     "^TestOpenRefuses$",
	},
	{
		// The end-to-end run takes the pipeline's signed bundle; a tampered,
		// re-summed bundle must be refused through the real binary.
		Name:    "e2e-run-installs-unsigned-bundle",
		File:    "verify/install/open.go",
		Old:     "b.Manifest, err = bundle.Verify(b.Dir, pubKey)",
		New:     "b.Manifest, err = bundle.VerifyUnsigned(b.Dir)",
		Package: "./verify",
		Run:     "^TestRunRefuses$",
	},
	{
		Name:    "install-record-never-signed",
		File:    "verify/install/install.go",
		Old:     "Signed: o.Signed,",
		New:     "Signed: false,",
		Package: "./verify/install",
		Run:     "^TestInstallRollback$",
	},
	{
		// An injected failure that never fires must fail the test, not skip it.
		Name:    "sim-hook-never-fires",
		File:    "internal/memcgsim/sim.go",
		Old:     "\tif err := s.callHook(op); err != nil {",
		New:     "\tif err := s.callHook(op); false && err != nil {",
		Package: "./verify/migrate",
		Run:     "^TestFailAnyOperationThenRerun$",
	},
	{
		// A cgroup removed through the Go API must be gone for the mount at
		// once (entry cache invalidated), not after a sleep.
		Name:    "sim-keeps-stale-entry",
		File:    "internal/memcgsim/sim.go",
		Old:     "\ts.invalidate(parentRel, name)",
		New:     "\t_, _ = parentRel, name",
		Package: "./internal/memcgsim",
		Run:     "^TestInodes$",
	},
	{
		Name:    "sim-slabinfo-empty-not-eio",
		File:    "internal/memcgsim/files.go",
		Old:     "if cg.isRoot() || cg.kmemID < 0 {\n\t\treturn \"\", syscall.EIO",
		New:     "if cg.isRoot() || cg.kmemID < 0 {\n\t\treturn \"\", nil",
		Package: "./internal/memcgsim",
		Run:     "^TestRules$",
	},
	{
		Name:    "detect-counts-live-cgroups-as-leaked",
		File:    "verify/detect/leaked.go",
		Old:     "if !live.ids[id] {",
		New:     "if true {",
		Package: "./verify/detect",
		Run:     "^TestEstimateLeaked$",
	},
	// The check itself: a survivor must fail the run.
	// Node safety (issue 10): detect reads semantics without writing, the
	// verdict is checked against the kernel release, not against itself.
	{
		Name:    "detect-empty-slabinfo-taken-for-eio",
		File:    "verify/memcg/slabinfo.go",
		Old:     "case s == \"\":\n\t\treturn SlabinfoEmpty, nil",
		New:     "case s == \"\":\n\t\treturn SlabinfoEIO, nil",
		Package: "./verify/detect",
		Run:     "^TestRealHierarchy$",
	},
	{
		Name:    "detect-binary-empty-slabinfo-taken-for-eio",
		File:    "verify/memcg/slabinfo.go",
		Old:     "case s == \"\":\n\t\treturn SlabinfoEmpty, nil",
		New:     "case s == \"\":\n\t\treturn SlabinfoEIO, nil",
		Package: "./verify",
		Run:     "^TestRealHierarchyBinary$",
	},
	{
		Name:    "detect-probes-by-default",
		File:    "verify/flags.go",
		Old:     "\"probe-slabinfo\", false,",
		New:     "\"probe-slabinfo\", true,",
		Package: "./verify",
		Run:     "^TestRealHierarchyBinary$",
	},
	{
		// The acceptance test compares detect's kmem-active list with its
		// own reading of every cgroup's slabinfo.
		Name:    "detect-finds-no-kmem-active-cgroup",
		File:    "verify/memcg/layout.go",
		Old:     "return active, nil",
		New:     "return []string{}, nil",
		Package: "./verify/acceptance",
		Run:     "^TestRealHierarchy$",
	},
	{
		Name:    "no-node-lock",
		File:    "verify/guard.go",
		Old:     "l, err := nodelock.Acquire(g.LockDir, lockRoot, nodelock.Self())",
		New:     "l, err := (*nodelock.Lock)(nil), error(nil); _ = lockRoot",
		Package: "./verify",
		Run:     "^TestTwoMigratesAtOnce$",
	},
	{
		Name:    "mutating-command-as-non-root",
		File:    "verify/guard.go",
		Old:     "if uid := os.Geteuid(); uid != 0 {",
		New:     "if uid := os.Geteuid(); uid == 12345 {",
		Package: "./verify",
		Run:     "^TestInstallAsNobodyWritesFirst$",
	},
	// Fleet rollout (issue 11).
	{
		Name:    "rollout-ignores-failed-batch",
		File:    "deploy/ansible/site.yml",
		Old:     "  max_fail_percentage: 0\n",
		New:     "  max_fail_percentage: 100\n",
		Package: "./deploy/ansible",
		Run:     "^TestRolloutStopsAtFailedBatch$",
	},
	{
		// Issue 25, item 9: check mode's copy of verify is removed, also
		// when a task after it fails.
		Name:    "check-mode-copy-left-behind",
		File:    "deploy/ansible/roles/nokmem_node/tasks/main.yml",
		Old:     "      when: nokmem_check_tmp.path is defined\n",
		New:     "      when: nokmem_check_tmp.path is defined and not ansible_check_mode\n",
		Package: "./deploy/ansible",
		Run:     "^TestCheckModeLeavesNothing$",
	},
	{
		Name:    "kubelet-rpm-sysconfig-not-config",
		File:    "internal/rpmrepo/layout.go",
		Old:     "Body: []byte(KubeletSysconfigBody), Mode: 0o644, Config: true},",
		New:     "Body: []byte(KubeletSysconfigBody), Mode: 0o644},",
		Package: "./internal/rpmrepo",
		Run:     "^TestKubeletLayout$",
	},
	{
		// Issue 25, item 8: the flag is read from an RPM built in the test,
		// and the upgrade's old and new config bodies differ.
		Name:    "rpm-config-without-noreplace",
		File:    "internal/rpmrepo/rpm.go",
		Old:     "e.Type = rpmpack.ConfigFile | rpmpack.NoReplaceFile",
		New:     "e.Type = rpmpack.ConfigFile",
		Package: "./internal/rpmrepo",
		Run:     "^TestConfigFilesSurviveUpgrade$",
	},
	{
		Name:    "alert-on-unwritten-metric",
		File:    "deploy/prometheus/nokmem-alerts.yml",
		Old:     "expr: nokmem_kmem_active_cgroups > 0",
		New:     "expr: nokmem_kmem_active_cgroupz > 0",
		Package: "./deploy/prometheus",
		Run:     "^TestRulesNameWrittenMetrics$",
	},
	// verify detect: which stock binaries are affected (verify/affected).
	{
		Name:    "detect-every-stock-binary-a-problem",
		File:    "verify/binary/binary.go",
		Old:     "return !b.Nokmem() && (b.Upstream == nil || b.Upstream.Verdict != affected.Unaffected)",
		New:     "return !b.Nokmem()",
		Package: "./verify",
		Run:     "^TestDetectStockVersions$",
	},
	{
		Name:    "affected-kubelet-v1.21.1-unaffected",
		File:    "verify/affected/knowledge.go",
		Old:     `{"v1.21.2", "v1.21.5", "runc v1.0.0-rc95", ""},`,
		New:     `{"v1.21.1", "v1.21.5", "runc v1.0.0-rc95", ""},`,
		Package: "./verify/affected",
		Run:     "^TestClassify$",
	},
	{
		Name:    "affected-table-staleness-unchecked",
		File:    "verify/affected/affectedgen/gen.go",
		Old:     "if bytes.Equal(got, want) {",
		New:     "if true {",
		Package: "./verify/affected/affectedgen",
		Run:     "^TestCheckCatchesAnEditedRow$",
	},
	// Release CI: never sign a release with the development key; the
	// workflow's matrix is the matrix file's; one package list.
	{
		Name:    "release-signs-with-development-key",
		File:    "internal/release/signkey/signkey.go",
		Old:     "\tif k.Dev {",
		New:     "\tif k.Dev && false {",
		Package: "./internal/release/signkey",
		Run:     "^TestReleaseRefusesDevelopmentKey$",
	},
	{
		Name:    "ci-matrix-offers-planned-versions",
		File:    "internal/ciworkflow/matrix.go",
		Old:     "if e.Status != pins.StatusBuildable {",
		New:     "if e.Status == pins.StatusUnaffected {",
		Package: "./internal/ciworkflow",
		Run:     "^(TestMatrixIsTheMatrixFile|TestFromPins)$",
	},
	{
		Name:    "ci-run-installs-its-own-packages",
		File:    ".ci/run",
		Old:     "bash scripts/ci-packages.sh install",
		New:     "apt-get install -y -qq gcc",
		Package: "./internal/ciworkflow",
		Run:     "^TestPackagesFromOneScript$",
	},
	{
		Name:    "install-replaces-unaffected-kubelet",
		File:    "verify/install/plan.go",
		Old:     "case id.Upstream != nil && id.Upstream.Verdict == affected.Unaffected:",
		New:     "case false:",
		Package: "./verify/install",
		Run:     "^TestOneBinaryInstall$",
	},
	// The version matrix: refusals, progress, locks without a known commit.
	{
		Name:    "pipeline-builds-unbuildable-version",
		File:    "internal/pins/pins.go",
		Old:     "if err := e.Refuse(); err != nil {",
		New:     "if err := e.Refuse(); err != nil && false {",
		Package: "./internal/pipeline",
		Run:     "^(TestBuildRefused|TestBuildUnknownVersion)$",
	},
	{
		Name:    "progress-counts-everything-cached",
		File:    "internal/gobuild/progress.go",
		Old:     "func (c Count) Cached() int { return max(0, len(c.Packages)-c.Compile) }",
		New:     "func (c Count) Cached() int { return len(c.Packages) }",
		Package: "./internal/pipeline",
		Run:     "^TestBuildProgress$",
	},
	{
		Name:    "lock-without-commit-or-reason",
		File:    "internal/pins/pins.go",
		Old:     `case l.Source.Commit == "" && l.Source.CommitUnknown == "":`,
		New:     "case false:",
		Package: "./internal/pins",
		Run:     "^TestLoadBadInput$",
	},
	// The build flows of internal/pipeline: checks before publishing,
	// gates before writing, one load of the lock, reproducible stamps.
	{
		Name:    "unpatched-binary-unchecked",
		File:    "internal/pipeline/unpatched.go",
		Old:     "if err := p.Builder.Check(ctx, c); err != nil {",
		New:     "if err := p.Builder.Check(ctx, c); err != nil && false {",
		Package: "./internal/pipeline",
		Run:     "^TestBuildUnpatchedRefused$",
	},
	{
		Name:    "stock-binary-unchecked",
		File:    "internal/pipeline/stock.go",
		Old:     "if err := p.Builder.Check(ctx, c); err != nil {",
		New:     "if err := p.Builder.Check(ctx, c); err != nil && false {",
		Package: "./internal/pipeline",
		Run:     "^TestBuildStock$",
	},
	{
		Name:    "release-set-ignores-account-error",
		File:    "internal/pipeline/releaseset.go",
		Old:     "if err := p.Account(dir, in, artifacts); err != nil {",
		New:     "if err := p.Account(dir, in, artifacts); err != nil && false {",
		Package: "./internal/pipeline",
		Run:     "^TestReleaseStep$",
	},
	{
		Name:    "bundle-without-runc-gate",
		File:    "internal/pipeline/bundle.go",
		Old:     "if gate {",
		New:     "if false {",
		Package: "./internal/pipeline",
		Run:     "^TestBundleStep$",
	},
	{
		Name:    "verify-inputs-stamp-scratch-path",
		File:    "internal/pipeline/verify.go",
		Old:     `named.Out = "verify"`,
		New:     "named.Out = bin",
		Package: "./internal/pipeline",
		Run:     "^TestVerifyStep$",
	},
	{
		Name:    "build-checked-loads-again",
		File:    "internal/pipeline/pipeline.go",
		Old:     "if _, err := p.tree(ctx, l, plan.Patches, plan.BuildDir); err != nil {",
		New:     "if _, _, err := p.Tree(ctx, l.Project, l.Version); err != nil {",
		Package: "./internal/pipeline",
		Run:     "^TestBuildCheckedUsesThePlan$",
	},
	{
		Name:    "detect-runc-fix-ignores-node-kubelet",
		File:    "verify/binary/binary.go",
		Old:     "\tpreferNodeKubelet(out)",
		New:     "\t_ = preferNodeKubelet",
		Package: "./verify",
		Run:     "^TestDetectStockVersions$",
	},
	// verify install: the node lock on every command that changes binaries
	// (issue 25, 1), and rollback's foreign-change check on a binary that
	// install created (issue 25, 5).
	{
		Name:    "install-commands-skip-node-lock",
		File:    "verify/guard.go",
		Old:     "\tif !mut {\n\t\treturn nil\n\t}",
		New:     "\tif !mut || !root {\n\t\treturn nil\n\t}",
		Package: "./verify",
		Run:     "^TestInstallCommandsTakeTheNodeLock$",
	},
	{
		Name:    "rollback-checks-only-preexisting-binaries",
		File:    "verify/install/rollback.go",
		Old:     "\t\tif !e.owns(cur) {",
		New:     "\t\tif e.Existed && !e.owns(cur) {",
		Package: "./verify/install",
		Run:     "^TestRollbackCreatedForeign$",
	},
	// Identity by checksum: a "+nokmem" version alone is no nokmem build.
	{
		Name:    "nokmem-by-version-string",
		File:    "verify/binary/binary.go",
		Old:     "\tcase nokmem:\n",
		New:     "\tcase nokmem || strings.Contains(stdout, NokmemMarker):\n",
		Package: "./verify/detect",
		Run:     "^TestFakeNokmemIsUnknown$",
	},
	// Debris: the next install sweeps what a killed one left.
	{
		Name:    "install-does-not-sweep-tmp-dir",
		File:    "verify/install/open.go",
		Old:     "if _, err := atomicfile.Sweep(tmpParent); err != nil {",
		New:     "if _, err := []string(nil), error(nil); err != nil {",
		Package: "./verify",
		Run:     "^TestInstallKilledAtEachStep$",
	},
	{
		Name:    "mutants-ignores-survivors",
		File:    "internal/mutants/mutants.go",
		Old:     "if r.Verdict == Survived {",
		New:     "if r.Verdict == Survived && false {",
		Package: "./internal/mutants",
		Run:     "^TestRun$",
	},
	// Issue 25, round 2 of the mutation review: regressions that the tests
	// let through before (migrate journal and settings model, the
	// simulator's inheritance, bundle metadata, tarball signature path,
	// lockgen's go.sum cross-check).
	{
		// Every earlier ".." case was also caught by another check.
		Name:    "journal-path-rule-allows-dotdot",
		File:    "verify/migrate/journal.go",
		Old:     `if el == "." || el == ".." || strings.ContainsAny(el, "\n\x00") {`,
		New:     `if el == "." || strings.ContainsAny(el, "\n\x00") {`,
		Package: "./verify/migrate",
		Run:     "^(TestJournalPathRule|TestJournalDotDotResigned)$",
	},
	{
		// A fresh cgroup inherits its parent's swappiness: 60 under 30 must be written.
		Name:    "settings-model-swappiness-starts-at-60",
		File:    "verify/migrate/settings.go",
		Old:     "Swappiness:     pick(want.Swappiness, parent.Swappiness),",
		New:     `Swappiness:     pick(want.Swappiness, "60"),`,
		Package: "./verify/migrate",
		Run:     "^TestDefaultValuedSettings(RealKernel)?$",
	},
	{
		Name:    "settings-model-oom-kill-disable-starts-at-0",
		File:    "verify/migrate/settings.go",
		Old:     "OOMKillDisable: pick(want.OOMKillDisable, parent.OOMKillDisable),",
		New:     `OOMKillDisable: pick(want.OOMKillDisable, "0"),`,
		Package: "./verify/migrate",
		Run:     "^TestDefaultValuedSettings(RealKernel)?$",
	},
	{
		Name:    "sim-swappiness-not-inherited",
		File:    "internal/memcgsim/sim.go",
		Old:     "cg.swappiness = parent.swappiness",
		New:     "cg.swappiness = 60",
		Package: "./internal/memcgsim",
		Run:     "^TestRules$",
	},
	{
		// Killed between the swap's rename and its journal write.
		Name: "rollback-unrecorded-swap-renames-old-tree-back-first",
		File: "verify/migrate/rollback.go",
		Old: `		if err := e.fs.Rename(e.kubepods, e.temp); err != nil {
			return err
		}
		if err := e.fs.Rename(e.aside, e.kubepods); err != nil {
			return err
		}
`,
		New: `		if err := e.fs.Rename(e.aside, e.kubepods); err != nil {
			return err
		}
		if err := e.fs.Rename(e.kubepods, e.temp); err != nil {
			return err
		}
`,
		Package: "./verify/migrate",
		Run:     "^TestUnrecordedSwap(RealKernel)?$",
	},
	{
		Name:    "bundle-any-sha-file-is-metadata",
		File:    "internal/bundle/bundle.go",
		Old:     "return a.SumsFile == n })",
		New:     "return a.SumsFile == n || filepath.Ext(n) == a.Ext })",
		Package: "./internal/bundle",
		Run:     "^TestVerifyRejectsExtraMetadata$",
	},
	{
		Name:    "install-checks-signature-over-tarball-path",
		File:    "verify/install/open.go",
		Old:     "b.Manifest, err = bundle.Verify(b.Dir, pubKey)",
		New:     "b.Manifest, err = bundle.Verify(source, pubKey)",
		Package: "./verify/install",
		Run:     "^(TestInstallFromTarball|TestOpenTarballRefuses)$",
	},
	{
		Name:    "lockgen-crosscheck-zip-wrong-key",
		File:    "internal/lockgen/gomod.go",
		Old:     `if h, ok := up[m.Path+" "+m.Version]; ok && m.H1 != "" && h != m.H1 {`,
		New:     `if h, ok := up[m.Path+"@"+m.Version]; ok && m.H1 != "" && h != m.H1 {`,
		Package: "./internal/lockgen",
		Run:     "^TestCrossCheckZipAndGoMod$",
	},
	// Issue 24: the reported downtime ends at the scan that saw the
	// kubelet, not after its (slow) identification.
	{
		Name:    "downtime-ends-after-identification",
		File:    "verify/acceptance/kubelet.go",
		Old:     "b.Seen, b.Identify = scanned, time.Since(scanned)",
		New:     "b.Seen, b.Identify = time.Now(), time.Since(scanned)",
		Package: "./verify/acceptance",
		Run:     "^TestKubeletCheckSlowHash$",
	},
	// A container's cgroup removed by the runtime during the critical
	// part is accepted only when none of its processes is alive.
	{
		Name:    "missing-cgroup-accepted-with-live-process",
		File:    "verify/migrate/invariants.go",
		Old:     "if stage == checkCleanup || !e.plannedAlive(n.Rel) {",
		New:     "if stage == checkCleanup || true {",
		Package: "./verify/migrate",
		Run:     "^TestExitedContainerRemovedDuringCriticalPart$",
	},
}
