#!/usr/bin/env bash
# Builds the Debian packages peerconnectd and peerctl (and their -dbgsym
# debug symbols) with debhelper, from the working tree as it is (committed
# or not), into OUTDIR:
#
#   packaging/build-debs.sh OUTDIR
#
# The tree's files (git ls-files: tracked and new, not ignored) are copied to
# build-debs/src with packaging/debian as debian/, and dpkg-buildpackage
# builds the binary packages there. With CCACHE_DIR set the compiler runs
# through ccache, so a rebuild of an unchanged tree takes seconds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$(realpath -m "$1")
work="$repo/build-debs"
src="$work/src"

for tool in dpkg-buildpackage dh; do
  command -v "$tool" >/dev/null ||
    { echo "build-debs: $tool is missing: run packaging/install-deps.sh" >&2; exit 1; }
done

rm -rf "$src"
mkdir -p "$src" "$out"
# --ignore-failed-read: a tracked file deleted in the working tree is skipped.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
   tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$src"
rm -rf "$src/debian"
cp -a "$repo/packaging/debian" "$src/debian"
chmod +x "$src/debian/rules"

if command -v ccache >/dev/null && [ -z "${CCACHE_DIR:-}" ]; then
  export CCACHE_DIR="$work/ccache"
fi
export CCACHE_BASEDIR="$src"
(cd "$src" && dpkg-buildpackage -b -uc -us --no-sign -j"$(nproc)" \
   > "$work/build.log" 2>&1) || {
  tail -40 "$work/build.log" >&2
  echo "build-debs: dpkg-buildpackage failed; the whole log: $work/build.log" >&2
  exit 1
}
version=$(cd "$src" && dpkg-parsechangelog -S Version)
for f in "$work"/*_"$version"_*.deb "$work"/*_"$version"_*.ddeb \
         "$work"/*_"$version"_*.buildinfo "$work"/*_"$version"_*.changes; do
  [ -e "$f" ] && mv -f "$f" "$out/"
done
ls "$out"/peerconnectd_"$version"_amd64.deb "$out"/peerctl_"$version"_amd64.deb
