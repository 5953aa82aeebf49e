#!/usr/bin/env bash
# Formats every C++ source of the project with clang-format (.clang-format:
# Google style). Usage: scripts/format.sh [--check]
#   (no flag)  rewrites the files in place
#   --check    changes nothing; lists the files that are not formatted and
#              exits 1 if there is any (scripts/test.sh runs this)
set -euo pipefail
case "${1:-}" in
  "" | --check) ;;
  *) echo "format.sh: unknown argument $1 (usage: scripts/format.sh [--check])" >&2
     exit 2 ;;
esac
cd "$(dirname "$0")/.."
# Tracked files and new ones not yet added (but not what .gitignore keeps
# out, such as build trees), so that a check before `git add` sees them too;
# a tracked file deleted from the working tree is skipped.
mapfile -t files < <(git ls-files --cached --others --exclude-standard \
                       '*.cc' '*.h' | sort -u |
                     while read -r f; do [ -f "$f" ] && echo "$f"; done)
if [ "${1:-}" = --check ]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if [ "${#bad[@]}" -gt 0 ]; then
    echo "format.sh: not formatted (run scripts/format.sh): ${bad[*]}" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files formatted"
else
  clang-format -i "${files[@]}"
fi
