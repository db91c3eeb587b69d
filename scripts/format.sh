#!/usr/bin/env bash
# Formats the tree (prettier for TypeScript/JavaScript, clang-format for C/C++), or with
# --check says which files are not formatted and exits 1. `npm run lint` runs the check.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
mapfile -t c_files < <(git ls-files 'addon/*.cc' 'addon/*.h' 'bpf/*.c' 'bpf/*.h' 'test/bpf/*.c' 'test/bpf/*.h' 'bench/c/*.c' 'examples/*.c')
js_globs=("lib/**/*.ts" "test/**/*.ts" "bench/**/*.mjs" "examples/**/*.mjs" "scripts/**/*.mjs" "*.ts" "*.js")
if [ "$mode" = --check ]; then
  npx --no-install prettier --check --log-level warn "${js_globs[@]}"
  clang-format --dry-run --Werror "${c_files[@]}"
else
  npx --no-install prettier --write --log-level warn "${js_globs[@]}"
  clang-format -i "${c_files[@]}"
fi
