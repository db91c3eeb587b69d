#!/usr/bin/env bash
# Builds the addon (build/Release/bpfkit.node) and the BPF objects (build/bpf,
# build/test-bpf) with cmake-js. Serialised with a lock so parallel builds (several
# test runs, editors) never race in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 9>"${TMPDIR:-/tmp}/bpfkit-build-$(id -u).lock"
flock 9
exec npx --no-install cmake-js build --out build "$@"
