#!/usr/bin/env bash
# npm run prebuild: the self-contained addon for this machine's platform, written where
# node-gyp-build looks when there is no local build (prebuilds/<platform>-<arch>/, tags
# napi + glibc: one binary serves every Node version with N-API 9).
#   1. PIC static libbpf, libelf, zlib, libnl, libpcap (scripts/build-static-deps.sh, cached)
#   2. cmake-js with -DBPFKIT_STATIC_DEPS (CMakeLists.txt, prebuild mode) into its own
#      build tree, so the developer build in build/Release is left as it is
# Run by npm run prebuild and by test/pack (which checks what it made). Never run from
# an install script of the published package.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! getconf GNU_LIBC_VERSION >/dev/null 2>&1; then
  echo "prebuild: only glibc prebuilds are made (this is not a glibc system)" >&2
  exit 1
fi
prefix=$(bash scripts/build-static-deps.sh | tail -1)
tuple=$(node -p 'process.platform + "-" + process.arch')
out=.cache/prebuild-build
dest=prebuilds/$tuple/bpfkit.napi.glibc.node

# the same lock as scripts/build-native.sh: one native build at a time on this machine
exec 9>"${TMPDIR:-/tmp}/bpfkit-build-$(id -u).lock"
flock 9
npx --no-install cmake-js build --out "$out" --target bpfkit --CDBPFKIT_STATIC_DEPS="$prefix" >&2
mkdir -p "prebuilds/$tuple"
cp "$out/Release/bpfkit.node" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "$dest"
