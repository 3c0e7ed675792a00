#!/usr/bin/env bash
# Builds the example functions' image archives into build/ with `edgefaas
# build` (no Docker): hello-http from Go sources, hello-sh on a busybox root
# taken from Debian's busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
bin/edgefaas build examples/hello-http -t hello-http:latest -o build/hello-http.tar
bb=$(command -v busybox || true)
if [ -z "$bb" ]; then
  echo "hello-sh needs busybox-static: apt-get install busybox-static" >&2
  exit 1
fi
root=build/hello-sh-root
rm -rf "$root"
mkdir -p "$root/bin"
cp "$bb" "$root/bin/busybox"
for a in sh cat echo; do ln -s busybox "$root/bin/$a"; done
cp examples/hello-sh/handler.sh "$root/handler.sh"
bin/edgefaas build "$root" -t hello-sh:latest --mode exec --entrypoint "/bin/sh /handler.sh" -o build/hello-sh.tar
