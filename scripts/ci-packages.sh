#!/usr/bin/env bash
# The Debian 12 packages the build and the tests need: the one list that .ci/run and the release
# workflow's jobs (.github/workflows/release.yml) install, so both build with the same C toolchain.
#
#   scripts/ci-packages.sh list      print the packages, one a line
#   scripts/ci-packages.sh install   apt-get update, then install them (root)
#
# Why each is there:
# gcc, libc6-dev, binutils: cgo and static linking (libc.a); libseccomp-dev: runc's seccomp (static
# libseccomp.a); busybox-static: rootfs of the real runc containers; strace: observes runc's kmem
# writes; minisign: the reference tool checks our signatures; systemtap: parse-checks scripts/*.stp;
# systemd: systemd-analyze verify checks scripts/*.service (it needs no running systemd); git: the
# mutation check copies the files git lists; rpm, dnf, createrepo-c: the RPMs and the yum repository
# (internal/rpmrepo); ansible-core, ansible-lint: the fleet playbook (deploy/ansible); prometheus:
# promtool checks the alert rules (deploy/prometheus); containerd (with ctr and the runc v2 shim),
# docker.io: the engine tests run real containers through Debian's containerd 1.6 and Docker 20.10
# with our runc (internal/enginetest, docs/engines.md); containerd (1.6, CRI v1alpha2) is also the
# runtime of the real-kubelet node test (internal/kubeletnode, go tool mage e2e:kubelet); strace
# there also traces the kubelet and runc, gcc builds the static pause image and busybox-static is
# the pods' image.
set -euo pipefail

packages=(
  gcc libc6-dev binutils libseccomp-dev busybox-static strace minisign systemtap systemd git
  rpm dnf createrepo-c ansible-core ansible-lint prometheus
  containerd docker.io
)

case "${1:-}" in
list)
  printf '%s\n' "${packages[@]}"
  ;;
install)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  ;;
*)
  echo "usage: $0 list|install" >&2
  exit 2
  ;;
esac
