#!/usr/bin/env bash
# Brings a fresh clone to a runnable state, doing only what is missing or stale:
#   1. system packages the build, tests and demo need (apt-get when root on
#      Debian/Ubuntu; otherwise prints the exact command and stops)
#   2. the BPF filesystem at /sys/fs/bpf (for pins), and tracefs at /sys/kernel/tracing
#      (classic tracepoint programs need it for the event ids; tp_btf/raw_tp do not)
#   3. npm ci when node_modules does not match package-lock.json
#   4. the native addon + BPF objects (cmake-js, incremental) and dist/ (tsup)
# Never run from an npm lifecycle hook of the published package.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang clang-format llvm libbpf-dev libelf-dev zlib1g-dev libnl-3-dev libnl-route-3-dev
  pkg-config cmake make g++ iproute2 bpftool tcpdump python3-scapy iptables nftables
  xdp-tools util-linux kmod ethtool libpcap-dev)

missing=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
for c in clang clang-format cmake make g++ pkg-config ip bpftool tcpdump iptables nft xdp-filter setpriv ethtool; do
  have_cmd "$c" || missing+=("$c")
done
if have_cmd pkg-config; then
  for p in libbpf libelf zlib libnl-3.0 libnl-route-3.0 libpcap; do have_pc "$p" || missing+=("$p"); done
fi
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import scapy' 2>/dev/null || missing+=("python3-scapy")

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: missing system packages for: ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ] && have_cmd apt-get; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  else
    echo "bootstrap: install them with:" >&2
    echo "  sudo apt-get install -y ${APT_PACKAGES[*]}" >&2
    exit 1
  fi
fi

if [ "$(id -u)" = 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf
fi
if [ "$(id -u)" = 0 ] && [ -d /sys/kernel/tracing ] && [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing || echo "bootstrap: cannot mount tracefs (tracepoint programs will say so)" >&2
fi

lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.bpfkit-lock-sum 2>/dev/null)" != "$lock_sum" ]; then
  npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.bpfkit-lock-sum
fi

bash scripts/build-native.sh >/dev/null

newest_src=$(find lib tsup.config.ts package.json -type f -newer dist/index.js 2>/dev/null | head -1 || true)
if [ ! -f dist/index.js ] || [ ! -f dist/cli.js ] || [ -n "$newest_src" ]; then
  npx --no-install tsup >/dev/null
fi
