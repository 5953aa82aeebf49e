#!/usr/bin/env bash
# Checks that every #include in core/ points down the module stack
# (core/CMakeLists.txt draws it), and that core/ never includes the binaries'
# code, nor daemon/ and peerctl/ each other's. Prints each offending line;
# exit 1 if there is one. Also that no code takes an absl::MutexLock itself.
#   tests/layering_test.sh [REPO]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# Modules each module may include, besides itself.
declare -A allowed=(
  [base]=""
  [proto]="base"
  [auth]="base proto"
  [index]="base proto auth"
  [io]="base proto"
  [client]="base proto auth"
)
bad=0
complain() { echo "layering: $1: includes $2 ($3)"; bad=1; }

for module in "${!allowed[@]}"; do
  [ -d "core/$module" ] || { echo "layering: core/$module is missing"; exit 1; }
done
for dir in core/*/; do
  module=$(basename "$dir")
  [ -n "${allowed[$module]+set}" ] || { complain "$dir" "-" "unknown module: add it to this script"; continue; }
  while IFS=: read -r file line; do
    target=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$line")
    case $target in
      core/*/*)
        to=$(cut -d/ -f2 <<<"$target")
        [ "$to" = "$module" ] && continue
        [[ " ${allowed[$module]} " == *" $to "* ]] ||
          complain "$file" "$target" "$module may include only: ${allowed[$module]:-nothing}"
        ;;
      core/*) complain "$file" "$target" "core headers live in a module folder" ;;
      daemon/* | peerctl/* | bench/* | tests/*)
        complain "$file" "$target" "core/ is below the binaries" ;;
    esac
  done < <(grep -Hn '^#include "' -r "$dir" | sed -E 's/^([^:]+):[0-9]+:/\1:/')
done
while IFS=: read -r file line; do
  complain "$file" "$(sed -E 's/.*"([^"]+)".*/\1/' <<<"$line")" "daemon/ and peerctl/ are separate binaries"
done < <(grep -Hn '^#include "peerctl/' -r daemon; grep -Hn '^#include "daemon/' -r peerctl) || true
# Locks go through core/base/mutex_lock.h: Debian's abseil is built without
# TSan, which cannot see an absl::MutexLock (or reader lock) order anything.
while IFS=: read -r file _ line; do
  echo "layering: $file: $line (use pcfs::MutexLock, core/base/mutex_lock.h)"; bad=1
done < <(grep -HnE 'absl::(Reader|Writer)?MutexLock|absl::(Reader|Writer)MutexLock' \
  -r core daemon peerctl bench --include='*.h' --include='*.cc' | grep -v '^core/base/mutex_lock.h:') || true
[ "$bad" -eq 0 ] && echo "layering: every include points down, every lock is visible to TSan"
exit "$bad"
