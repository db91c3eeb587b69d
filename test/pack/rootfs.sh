#!/usr/bin/env bash
# A clean Debian 12 root filesystem for test/pack/clean-root.test.ts: debootstrap
# --variant=minbase (no compiler, cmake, pkg-config or -dev packages), then zlib1g purged,
# so none of libbpf, libnl, libelf or libz is on the library path. Node is not in it: the
# test copies the host's node binary and npm into an overlay on top, per run.
# Cached under .cache/rootfs/<key>/ (key: suite, variant, this recipe); prints its path.
set -euo pipefail
cd "$(dirname "$0")/../.."
SUITE=bookworm
MIRROR=${BPFKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
RECIPE=1
KEY=$SUITE-minbase-r$RECIPE
CACHE=$PWD/.cache/rootfs
ROOT=$CACHE/$KEY
mkdir -p "$CACHE"
exec 8>"$CACHE/.lock"
flock 8
if [ -f "$ROOT/.complete" ]; then echo "$ROOT"; exit 0; fi
if ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  else
    echo "rootfs: needs debootstrap (apt-get install debootstrap) and root" >&2
    exit 1
  fi
fi
TMP=$ROOT.tmp
rm -rf "$TMP"
debootstrap --variant=minbase "$SUITE" "$TMP" "$MIRROR" >"$CACHE/$KEY.log" 2>&1 ||
  { tail -20 "$CACHE/$KEY.log" >&2; exit 1; }
# zlib1g is Priority: required (apt needs it); a user's minimal image may well lack it,
# and the prebuild must not need it: take it out of the library path and dpkg's records.
chroot "$TMP" dpkg --purge --force-depends,remove-essential zlib1g >>"$CACHE/$KEY.log" 2>&1
chroot "$TMP" ldconfig
rm -rf "$TMP"/var/cache/apt/archives/*.deb "$TMP"/var/lib/apt/lists/*
touch "$TMP/.complete"
rm -rf "$ROOT"
mv "$TMP" "$ROOT"
echo "$ROOT"
