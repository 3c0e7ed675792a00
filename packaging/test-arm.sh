#!/usr/bin/env bash
# test-arm.sh VERSION ARCH...: for each ARCH (arm64, armv7), cross-compile
# the test binaries (`go test -c`, cgo) of the packages whose tests start
# no sandboxes, run each under qemu-user with the cross sysroot (-L)
# from its package directory, as `go test` would, and check that
# dist/edgefaasd_linux_ARCH --version and dist/edgefaas_linux_ARCH version
# print VERSION. Any failure fails the script.
#
# Left out, and why:
#   agent, sandbox, integration: real sandboxes (namespaces, libcontainer
#     re-executing /proc/self/exe, which under qemu-user is qemu itself).
#   cgroups: only the tests that need no root run (SKIP below): the others
#     create cgroups on this host and run host /bin/sh in them (they do
#     pass under qemu, but they exercise the host's kernel and shell, and
#     the native run of `make test` already covers them).
#   metering TestCrashKeepsAnsweredRecords, systemd TestListeners: they
#     re-execute os.Args[0], an ARM ELF the host kernel cannot exec without
#     binfmt_misc (not registered on CI machines).
#   images TestRealToolArchives: skopeo and umoci (host tools) label the
#     archive linux/amd64, and the import rightly refuses an image for
#     another platform than the (emulated) arm host.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/arch.sh
. packaging/arch.sh
GO=${GO:-go}
version=$1
shift
PKGS=(store metering logs images api errdefs metrics mqtt cloudsync/proto cmd/edgefaas cmd/edgefaasd cgroups systemd)
declare -A SKIP
# cgroups: the tests that call requireCgroups (root, real cgroups). A skip
# list rather than a -test.run list, so new fixture-only tests run here too.
SKIP[cgroups]='^(TestCleanup|TestCleanupMissingParent|TestCleanupV1Freezer|TestLimitsWritten|TestCPUThrottled|TestMemoryOOMKill|TestPidsLimit)$'
SKIP[metering]='^TestCrashKeepsAnsweredRecords$'
SKIP[images]='^TestRealToolArchives$'
SKIP[systemd]='^TestListeners$'

failed=0
for arch in "$@"; do
  arch_env "$arch"
  out=$PWD/dist/test/$arch
  rm -rf "$out" && mkdir -p "$out"
  start=${EPOCHREALTIME/./}
  for p in "${PKGS[@]}"; do
    CGO_ENABLED=1 GOOS=linux GOARCH=$GOARCH GOARM=$GOARM CC=$CC \
      "$GO" test -c -o "$out/$(basename "$p").test" "./$p"
  done
  built=$(( (${EPOCHREALTIME/./} - start) / 1000 ))
  echo "test-arm: linux/$arch: test binaries built in $((built / 1000)).$((built % 1000 / 100))s"
  for p in "${PKGS[@]}"; do
    bin=$out/$(basename "$p").test
    if [ ! -e "$bin" ]; then
      echo "test-arm: linux/$arch $p: no test files"
      continue
    fi
    args=(-test.count=1 -test.timeout=10m)
    skip=${SKIP[$p]:-}
    [ -n "${SKIP[$p@$arch]:-}" ] && skip+=${skip:+|}${SKIP[$p@$arch]}
    [ -n "$skip" ] && args+=(-test.skip "$skip")
    t0=${EPOCHREALTIME/./}
    if log=$(cd "$p" && "$QEMU" -L "$SYSROOT" "$bin" "${args[@]}" 2>&1); then
      res=ok
    else
      res=FAIL failed=1
      printf '%s\n' "$log"
    fi
    ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
    printf 'test-arm: linux/%-5s %-4s %-14s %3d.%01ds %s\n' "$arch" "$res" "$p" \
      $((ms / 1000)) $((ms % 1000 / 100)) "${args[*]:2}"
  done
  # Each binary prints its version first; the CLI then says the agent is
  # not reachable.
  for cmd in edgefaasd:--version edgefaas:version; do
    bin=dist/${cmd%%:*}_linux_$arch arg=${cmd#*:} want="${cmd%%:*} $version"
    got=$(EDGEFAAS_AGENT=unix:///nonexistent "$QEMU" -L "$SYSROOT" "$bin" "$arg" 2>&1 || true)
    got=${got%%$'\n'*}
    if [ "$got" = "$want" ]; then
      echo "test-arm: linux/$arch ok   $bin $arg: $got"
    else
      echo "test-arm: linux/$arch FAIL $bin $arg: got \"$got\", want \"$want\""
      failed=1
    fi
  done
done
exit $failed
