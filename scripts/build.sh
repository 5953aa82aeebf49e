#!/usr/bin/env bash
# Configures and builds one tree: every target, or only the TARGETs given
# after "--".
#   scripts/build.sh DIR [cmake args...] [-- TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1; shift
cmake_args=() targets=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then
    shift
    targets=("$@")
    break
  fi
  cmake_args+=("$1")
  shift
done
cmake -S . -B "$dir" -G Ninja "${cmake_args[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" ${targets[@]:+--target "${targets[@]}"}
