#!/usr/bin/env bash
# cross.sh ARCH...: build edgefaasd, edgefaas and edgecloud for linux/ARCH into
# DIST/NAME_linux_ARCH with cgo (go-sqlite3, libcontainer's nsenter) and
# Debian's cross compilers: stripped, -trimpath, the version stamped in.
# A command missing from cmd/ is skipped (edgecloud arrives with a later
# issue). Go's build cache is kept (no -a): a rebuild with
# nothing changed takes about a second per architecture.
#
# Environment: LDFLAGS (the Makefile's version -X flag), GO (default go),
# DIST (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/arch.sh
. packaging/arch.sh
GO=${GO:-go}
DIST=${DIST:-dist}
CMDS=(edgefaasd edgefaas edgecloud)
mkdir -p "$DIST"
for arch in "$@"; do
  arch_env "$arch"
  start=${EPOCHREALTIME/./}
  pkgs=()
  for c in "${CMDS[@]}"; do
    if [ -d "cmd/$c" ]; then pkgs+=("$c"); else echo "cross: skip $c: no cmd/$c yet"; fi
  done
  for c in "${pkgs[@]}"; do
    CGO_ENABLED=1 GOOS=linux GOARCH=$GOARCH GOARM=$GOARM CC=$CC \
      "$GO" build -trimpath -ldflags "-s -w ${LDFLAGS:-}" -o "$DIST/${c}_linux_${arch}" "./cmd/$c"
  done
  ms=$(( (${EPOCHREALTIME/./} - start) / 1000 ))
  printf 'cross: linux/%s (%s) built %s in %d.%01ds\n' "$arch" "$CC" "${pkgs[*]}" $((ms / 1000)) $((ms % 1000 / 100))
done
