//go:build mage

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/magefile/mage/mg"

	"github.com/nokmem/nokmem/internal/ciworkflow"
	"github.com/nokmem/nokmem/internal/pipeline"
	"github.com/nokmem/nokmem/internal/publish"
)

// CI holds the targets the workflows in .github/workflows call; any CI can
// fan out the same way (docs/release-ci.md).
type CI mg.Namespace

// Matrix prints the release workflow's build job matrix as one line of
// JSON: {"include":[{"project":"kubernetes","version":"v1.12.4","target":"kubelet"},...]},
// one entry per buildable version of vendor-pins/matrix.yaml.
func (CI) Matrix() error {
	m, err := ciworkflow.Load(pinsDir)
	if err != nil {
		return err
	}
	b, err := m.JSON()
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

// ReleaseSets writes and checks the release set of every buildable version
// of the matrix from the artifacts already in _output/<project>/<version>
// (the build jobs' downloads): nothing is built, and a version whose folder
// is missing or was built from other inputs fails, naming it. Then it copies
// the public key to _output/nokmem-release.pub. The bundle job runs it with
// NOKMEM_PREBUILT=1 before verify:build, bundle:build and yum:build.
func (CI) ReleaseSets(ctx context.Context) error {
	m, err := ciworkflow.Load(pinsDir)
	if err != nil {
		return err
	}
	pub, err := newPublisher(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range m.Include {
		if err := checkPrebuilt(ctx, j.Project, j.Version); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := pub.WriteRelease(ctx, j.Project, j.Version); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return pub.PublishPublicKey()
}

// Bundle is the release workflow's bundle job in one target: with
// NOKMEM_PREBUILT=1 set for it (nothing the build jobs made is built
// again), ci:releaseSets, then yum:build with its dependencies release:all,
// verify:build and bundle:build, then bundle:matrix (the other pairs of
// matrix.yaml's bundles:), each run once. Listing those targets on
// one mage command line instead would run the shared ones twice.
func (CI) Bundle(ctx context.Context) error {
	if err := os.Setenv(ciworkflow.PrebuiltEnv, "1"); err != nil {
		return err
	}
	mg.SerialCtxDeps(ctx, CI.ReleaseSets, Yum.Build, Bundle.Matrix)
	return nil
}

// prebuilt reports whether NOKMEM_PREBUILT=1 asks to use the artifacts in
// _output instead of building them.
func prebuilt() (bool, error) {
	return ciworkflow.Prebuilt(os.Getenv(ciworkflow.PrebuiltEnv))
}

// checkPrebuilt fails unless _output/<project>/<version> is the published
// build of this checkout's inputs (its INPUTS stamp is the one a build would
// write and its files match their sums), naming the stamp lines that differ.
// The stamp holds the build folder's absolute path, so artifacts are only
// current at the checkout path they were built at.
func checkPrebuilt(ctx context.Context, project, version string) error {
	plan, err := newPipeline().Plan(ctx, pipeline.Project{Name: project}, version)
	if err != nil {
		return err
	}
	ok, err := publish.Current(plan.Dest, plan.Stamp)
	if err != nil {
		return fmt.Errorf("%s %s: %w", project, version, err)
	}
	if ok {
		fmt.Fprintf(os.Stderr, "%s %s: %s is current, used as built\n", project, version, plan.Dest)
		return nil
	}
	why := "missing or its files do not match their sums"
	if got, err := os.ReadFile(filepath.Join(plan.Dest, publish.StampFile)); err == nil {
		if d := plan.Stamp.Diff(string(got)); len(d) > 0 {
			why = "built from other inputs: " + strings.Join(d, ", ")
		}
	}
	return fmt.Errorf("%s %s: %s=1 builds nothing, and %s is not the build of this checkout (%s); bring the build job's artifact for this commit, or unset %s",
		project, version, ciworkflow.PrebuiltEnv, plan.Dest, why, ciworkflow.PrebuiltEnv)
}
