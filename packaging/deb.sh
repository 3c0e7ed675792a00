#!/usr/bin/env bash
# deb.sh DEB_VERSION ARCH...: package DIST/{edgefaasd,edgefaas}_linux_ARCH
# (make cross), the agent's units from systemd/, systemd/agent.conf (the config `edgefaasd install` writes too) and
# the maintainer scripts into DIST/edgefaas_DEB_VERSION_DEBARCH.deb with
# nfpm (packaging/nfpm.yaml), run through `go run` at a fixed version.
# File times come from the last commit (SOURCE_DATE_EPOCH), so the same
# tree packs to the same bytes. Environment: DIST (default dist), GO, NFPM.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/arch.sh
. packaging/arch.sh
GO=${GO:-go}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}
export DIST=${DIST:-dist}
export DEB_VERSION=$1
shift
dpkg --validate-version "$DEB_VERSION" 2>/dev/null || {
  echo "deb: $DEB_VERSION is not a valid dpkg version" >&2
  exit 1
}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
for f in systemd/edgefaasd.service systemd/edgefaasd.socket systemd/edgefaasd-gateway.socket; do
  [ -f "$f" ] || { echo "deb: $f is missing (the systemd units come with the systemd work)" >&2; exit 1; }
done
for arch in "$@"; do
  arch_env "$arch"
  export DEB_ARCH=$DEBARCH DIST_ARCH=$arch
  for c in edgefaasd edgefaas; do
    [ -x "$DIST/${c}_linux_$arch" ] || { echo "deb: $DIST/${c}_linux_$arch is missing: run make cross" >&2; exit 1; }
  done
  # The newest GLIBC_x.y symbol version the binaries import.
  GLIBC_MIN=$(objdump -T "$DIST/edgefaasd_linux_$arch" "$DIST/edgefaas_linux_$arch" |
    grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -V | tail -1)
  [ -n "$GLIBC_MIN" ] || { echo "deb: no glibc symbol versions in $DIST/*_linux_$arch (objdump -T)" >&2; exit 1; }
  export GLIBC_MIN
  out=$DIST/edgefaas_${DEB_VERSION}_${DEBARCH}.deb
  "$GO" run "$NFPM" pkg --config packaging/nfpm.yaml --packager deb --target "$out" >/dev/null
  echo "deb: $out ($(stat -c %s "$out") bytes, Depends: libc6 (>= $GLIBC_MIN))"
done
