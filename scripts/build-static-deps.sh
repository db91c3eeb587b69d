#!/usr/bin/env bash
# Builds position-independent static archives of everything the prebuilt addon links
# in (Debian's own .a files are not PIC, so they cannot go into a shared object):
#   zlib, libelf (elfutils), libbpf, libnl-3 + libnl-route-3, libpcap.
# Sources are Debian's orig tarballs from deb.debian.org's pool, pinned by version and
# sha256 below (taken from the bookworm / bookworm-backports Sources indexes) and checked
# before use. The result is cached under .cache/static-deps/<key>/, where <key> hashes
# the pins and RECIPE: bump RECIPE when a change below alters what gets built.
#
# Prints the prefix (include/, lib/, lib/pkgconfig/) as the last line of stdout.
# Usage: bash scripts/build-static-deps.sh [--print-prefix]   (--print-prefix: no build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MIRROR=${BPFKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# name version pool-path sha256 (one line each; the licence texts in LICENSES/ come from these)
PINS="zlib 1.2.13 pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2 71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1
elfutils 0.188 pool/main/e/elfutils/elfutils_0.188.orig.tar.bz2 fb8b0e8d0802005b9a309c60c1d8de32dd2951b56f0c3a3cb56d21ce01595dff
libbpf 1.4.6 pool/main/libb/libbpf/libbpf_1.4.6.orig.tar.gz d4cf3ee697d9bd959ad3c0f5c6757370a2559e54448761271e15a23c31c1082e
libnl3 3.7.0 pool/main/libn/libnl3/libnl3_3.7.0.orig.tar.gz 9fe43ccbeeea72c653bdcf8c93332583135cda46a79507bfd0a483bb57f65939
libpcap 1.10.3 pool/main/libp/libpcap/libpcap_1.10.3.orig.tar.gz 2a8885c403516cf7b0933ed4b14d6caa30e02052489ebd414dc75ac52e7559e6"

# what the source builds need beyond the compiler (a fresh Debian 12 has none of them)
BUILD_PACKAGES=(gcc make bison flex m4 gawk pkg-config curl ca-certificates bzip2 xz-utils)

CACHE=$ROOT/.cache/static-deps
RECIPE=2
KEY=$( { echo "$PINS"; echo "recipe $RECIPE"; } | sha256sum | cut -c1-16)
PREFIX=$CACHE/$KEY
if [ "${1:-}" = --print-prefix ]; then echo "$PREFIX"; exit 0; fi

mkdir -p "$CACHE/dl"
exec 8>"$CACHE/.lock"
flock 8
if [ -f "$PREFIX/.complete" ]; then echo "$PREFIX"; exit 0; fi

missing=()
for c in gcc make bison flex m4 gawk pkg-config curl bzip2 xz; do command -v "$c" >/dev/null || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build-static-deps: installing ${BUILD_PACKAGES[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${BUILD_PACKAGES[@]}" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${BUILD_PACKAGES[@]}" >/dev/null; }
  else
    echo "build-static-deps: missing ${missing[*]}; install: sudo apt-get install -y ${BUILD_PACKAGES[*]}" >&2
    exit 1
  fi
fi

# fetch <pool path> <sha256>: the verified tarball's path
fetch() {
  local f=$CACHE/dl/${1##*/}
  if [ ! -f "$f" ] || ! echo "$2  $f" | sha256sum -c --status; then
    curl -fsSL --retry 3 -o "$f.part" "$MIRROR/$1"
    echo "$2  $f.part" | sha256sum -c --status || { echo "build-static-deps: checksum mismatch for $1" >&2; rm -f "$f.part"; exit 1; }
    mv "$f.part" "$f"
  fi
  echo "$f"
}

WORK=$CACHE/$KEY.work
OUT=$CACHE/$KEY.tmp
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK" "$OUT/lib/pkgconfig" "$OUT/include"
JOBS=$(nproc)
export SOURCE_DATE_EPOCH=1700000000 ZERO_AR_DATE=1
# -ffile-prefix-map keeps this machine's paths out of the objects
export CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections -ffile-prefix-map=$WORK=."
export CPPFLAGS="-I$OUT/include" LDFLAGS="-L$OUT/lib"
export PKG_CONFIG_LIBDIR=$OUT/lib/pkgconfig PKG_CONFIG_PATH=
log() { echo "build-static-deps: $*" >&2; }

while read -r name version path sum; do
  tarball=$(fetch "$path" "$sum")
  src=$WORK/$name
  mkdir -p "$src"
  tar -xf "$tarball" -C "$src" --strip-components=1
  log "$name $version"
  # licence texts, as the source tarball has them
  mkdir -p "$OUT/licenses/$name"
  for l in COPYING COPYING-LGPLV3 COPYING-GPLV2 LICENSE LICENSE.LGPL-2.1 LICENSE.BSD-2-Clause README; do
    [ -f "$src/$l" ] && cp "$src/$l" "$OUT/licenses/$name/"
  done
  (
    cd "$src"
    case $name in
      zlib)
        ./configure --static --prefix="$OUT"
        make -j"$JOBS" libz.a
        make install ;;
      elfutils)
        # only libelf (and the lib/ helpers it is built from)
        ./configure --prefix="$OUT" --disable-debuginfod --disable-libdebuginfod --disable-nls \
          --without-bzlib --without-lzma --without-zstd
        make -j"$JOBS" -C lib
        make -j"$JOBS" -C libelf libelf.a
        cp libelf/libelf.a "$OUT/lib/"
        cp libelf/libelf.h libelf/gelf.h libelf/nlist.h "$OUT/include/"
        cat >"$OUT/lib/pkgconfig/libelf.pc" <<EOF
prefix=$OUT
libdir=\${prefix}/lib
includedir=\${prefix}/include
Name: libelf
Description: elfutils libelf (static, PIC)
Version: $version
Libs: -L\${libdir} -lelf
Libs.private: -lz
Cflags: -I\${includedir}
EOF
        ;;
      libbpf)
        mkdir -p "$src/obj"
        make -j"$JOBS" -C src BUILD_STATIC_ONLY=y EXTRA_CFLAGS="$CFLAGS" OBJDIR="$src/obj" \
          PREFIX="$OUT" LIBDIR="$OUT/lib" INCLUDEDIR="$OUT/include" install ;;
      libnl3)
        ./configure --prefix="$OUT" --disable-shared --enable-static --with-pic --disable-cli \
          --disable-debug
        make -j"$JOBS"
        make install ;;
      libpcap)
        # the classic BPF filter compiler is what bpfkit uses: no capture back ends beyond Linux's own
        ./configure --prefix="$OUT" --disable-shared --without-libnl --disable-usb --disable-netmap \
          --disable-bluetooth --disable-dbus --disable-rdma --disable-remote --without-dpdk
        make -j"$JOBS" libpcap.a
        make install ;;
    esac
  ) >"$WORK/$name.log" 2>&1 &
  # (in the background and waited for: errexit holds inside, which it would not left of ||)
  wait $! || { tail -40 "$WORK/$name.log" >&2; log "$name failed (log: $WORK/$name.log)"; exit 1; }
done <<<"$PINS"

# Static linking: nothing but archives, and pkg-config files that need no Requires.private lookup
rm -rf "$OUT/share" "$OUT/bin" "$OUT/etc" "$OUT/libexec"
find "$OUT/lib" -name '*.so*' -delete
find "$OUT/lib" -name '*.la' -delete
for a in libz libelf libbpf libnl-3 libnl-route-3 libpcap; do
  [ -f "$OUT/lib/$a.a" ] || { log "missing $OUT/lib/$a.a"; exit 1; }
done
echo "$PINS" >"$OUT/PINS"
touch "$OUT/.complete"
rm -rf "$WORK" "$PREFIX"
mv "$OUT" "$PREFIX"
# the pkg-config files name the temporary prefix: point them at the final one; and no
# rpath (libpcap.pc asks for one): the addon must not name a directory of this machine
sed -i -e "s|$OUT|$PREFIX|g" -e 's|-Wl,-rpath,${libdir} ||' "$PREFIX"/lib/pkgconfig/*.pc
# older keys are stale
find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name dl ! -name "$KEY" -exec rm -rf {} +
echo "$PREFIX"
