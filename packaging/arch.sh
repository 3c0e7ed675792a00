# shellcheck shell=bash disable=SC2034
# Sourced by the packaging scripts: the target table. arch_env ARCH sets
# GOARCH, GOARM, CC, DEBARCH (dpkg's name), QEMU and SYSROOT (qemu's -L) for
# one of amd64, arm64, armv7. ARCHES lists them all. The build machine's
# own architecture uses plain gcc.
ARCHES=(amd64 arm64 armv7)

arch_env() {
  GOARM='' QEMU='' SYSROOT=''
  case "$1" in
  amd64) GOARCH=amd64 CC=x86_64-linux-gnu-gcc DEBARCH=amd64 ;;
  arm64) GOARCH=arm64 CC=aarch64-linux-gnu-gcc DEBARCH=arm64
         QEMU=qemu-aarch64-static SYSROOT=/usr/aarch64-linux-gnu ;;
  armv7) GOARCH=arm GOARM=7 CC=arm-linux-gnueabihf-gcc DEBARCH=armhf
         QEMU=qemu-arm-static SYSROOT=/usr/arm-linux-gnueabihf ;;
  *) echo "unknown architecture $1 (want one of ${ARCHES[*]})" >&2; return 1 ;;
  esac
  if [ "$DEBARCH" = "$(dpkg --print-architecture 2>/dev/null)" ]; then
    CC=gcc
  fi
}
