#!/usr/bin/env bash
# Installs a packed bpfkit tarball in a clean root (test/pack/rootfs.sh) as a user would
# and runs the user scripts of test/pack there; test/pack/install.test.ts reads the results.
#   clean-root.sh <tarball> <netns> <outdir>      (env: IFACE SRC DST COUNT for the scripts)
# The root is an overlay over the cached rootfs in a private mount namespace: every mount
# is gone when this script ends, however it ends, and the temporary upper layer is removed.
# Writes to <outdir>: tools.txt (compilers etc. found on PATH), packages.txt (dpkg), ldconfig.txt,
# libs.txt (library files of libbpf/libnl/libelf/libz anywhere), npm-install.txt, esm.json,
# cjs.json, missing.json.
set -euo pipefail
if [ -z "${BPFKIT_CLEAN_ROOT_NS:-}" ]; then
  exec env BPFKIT_CLEAN_ROOT_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi
TARBALL=$(readlink -f "$1")
NETNS=$2
OUT=$(readlink -f "$3")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOTFS=$(bash "$HERE/rootfs.sh")

T=$(mktemp -d "${TMPDIR:-/tmp}/bpfkit-clean-root.XXXXXX")
M=$T/merged
cleanup() {
  umount -R "$M" 2>/dev/null || umount -R -l "$M" 2>/dev/null || true
  rm -rf --one-file-system "$T"
}
trap cleanup EXIT
mkdir -p "$T/upper" "$T/work" "$M"
mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$T/upper,workdir=$T/work" "$M"
mount -t proc proc "$M/proc"

# Node and npm from the host: the binary only (its own libraries: libc, libstdc++, libgcc_s, libm)
install -m 0755 "$(readlink -f "$(command -v node)")" "$M/usr/local/bin/node"
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$M/usr/local/lib/node_modules"
cp -a "$NPM_DIR" "$M/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$M/usr/local/bin/npm"
mkdir -p "$M/srv/app"
cp "$TARBALL" "$M/tmp/bpfkit.tgz"
cp "$HERE/user-esm.mjs" "$HERE/user-cjs.cjs" "$HERE/user-missing.mjs" "$M/srv/app/"

# What the root has (and must not have)
chroot "$M" /bin/sh -c 'for c in clang gcc cc c++ g++ cmake pkg-config pkgconf make ld; do command -v $c || true; done' >"$OUT/tools.txt"
chroot "$M" dpkg-query -W -f '${Package}\n' >"$OUT/packages.txt"
chroot "$M" /sbin/ldconfig -p >"$OUT/ldconfig.txt"
find "$M" -xdev \( -name 'libbpf.so*' -o -name 'libnl-*.so*' -o -name 'libelf*.so*' -o -name 'libz.so*' -o -name 'libpcap.so*' \) \
  -printf '/%P\n' >"$OUT/libs.txt"

# npm install, install scripts never run (npm 11's default for dependencies, forced here).
# Offline: the tarball's dependencies go into the root's npm cache first, fetched by the
# host's npm (the host's registry settings and certificates stay out of the root).
DEPS=$(tar -xOzf "$TARBALL" package/package.json |
  node -e 'const d=JSON.parse(require("fs").readFileSync(0)).dependencies||{};console.log(Object.entries(d).map(([n,v])=>n+"@"+v).join(" "))')
# shellcheck disable=SC2086
npm cache add $DEPS --cache "$M/root/.npm" >/dev/null 2>"$OUT/npm-cache.txt" || { cat "$OUT/npm-cache.txt" >&2; exit 1; }
start=$(date +%s%N)
chroot "$M" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root /bin/sh -c 'cd /srv/app && npm init -y >/dev/null &&
  npm install /tmp/bpfkit.tgz --ignore-scripts --offline --no-audit --no-fund' >"$OUT/npm-install.txt" 2>&1 ||
  { cat "$OUT/npm-install.txt" >&2; exit 1; }
echo "ms $(( ($(date +%s%N) - start) / 1000000 ))" >>"$OUT/npm-install.txt"

# The user's scripts, in the test's namespace (a fresh sysfs for it: libbpf reads the CPU list there)
run_in_ns() {
  env -u NODE_EXTRA_CA_CERTS ip netns exec "$NETNS" /bin/sh -c 'mount -t sysfs sysfs "$1/sys" && cd "$1/srv/app" && exec chroot "$1" /bin/sh -c "cd /srv/app && exec /usr/local/bin/node $2"' _ "$M" "$1"
}
run_in_ns user-esm.mjs >"$OUT/esm.json"
run_in_ns user-cjs.cjs >"$OUT/cjs.json"
# and with no addon that fits: the error a user would see
rm -rf "$M/srv/app/node_modules/bpfkit/prebuilds"
env -u NODE_EXTRA_CA_CERTS chroot "$M" /bin/sh -c 'cd /srv/app && exec /usr/local/bin/node user-missing.mjs' >"$OUT/missing.json"
