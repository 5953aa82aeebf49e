#!/usr/bin/env bash
# The README's second command: the whole default test suite.
#   1. installs any missing dependency (apt-get; needs root on a fresh box)
#   2. checks the formatting of every C++ file (scripts/format.sh --check)
#   3. configures the clang tree (build-tsan: clang, TSan, -Wthread-safety
#      -Werror) and starts clang-tidy (.clang-tidy) over core/, daemon/,
#      peerctl/, tests/ and bench/ with its compile_commands.json
#      (scripts/tidy.sh) in the background, at idle CPU priority: it uses
#      the CPU the builds leave while tests wait on sockets and timers. Its
#      compile commands carry -Wthread-safety -Werror, so it also checks the
#      locking annotations of every file (GCC ignores them)
#   4. builds the release tree and runs every unit and integration test
#   5. builds with ASan+UBSan and runs them all again, but those labelled
#      "slow" (long by design: loss relays, kill -9 trials)
#   6. builds the threaded tests in the clang tree and runs them under TSan
#      (the tests labelled "threaded": the code that runs threads: registry,
#      reactor, file server, downloader and its hasher; tests/CMakeLists.txt
#      lists them)
#   7. every libFuzzer target for 10 s on its seeds (scripts/fuzz.sh)
#   8. builds the Debian packages, checks them with lintian, and installs,
#      reloads, upgrades and purges them in a booted Debian 12 container
#   9. waits for clang-tidy and fails on any finding (a finding of a tidy
#      that ended earlier stops the script at the next stage instead)
# The test trees keep line tables only (-g1): enough for every sanitizer's
# and debugger's file:line, at about two thirds of the compile time of -g.
# docs/TESTING.md says what each stage costs.
# .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/install-deps.sh

jobs=$(nproc)
run() {  # run DIR [ctest args...]
  local dir=$1; shift
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 300 "$@")
}

echo "== format (scripts/format.sh --check)"
scripts/format.sh --check

# Line tables only, in every tree this script builds (see the top).
lines_only=(-DPCFS_LINE_TABLES_ONLY=ON)

echo "== clang tree: configure; clang-tidy starts in the background"
# (A build-tsan left by the GCC TSan stage of older versions cannot change
# compiler: start it afresh.)
if grep -qs 'CMAKE_CXX_COMPILER_ID "GNU"' \
    build-tsan/CMakeFiles/*/CMakeCXXCompiler.cmake; then
  rm -rf build-tsan
fi
CC=clang CXX=clang++ cmake -S . -B build-tsan -G Ninja \
  -DCMAKE_BUILD_TYPE=Debug "${lines_only[@]}" \
  -DPCFS_SANITIZE=thread -DPCFS_BUILD_BENCH=ON >/dev/null
# SCHED_IDLE: any other runnable task of this session preempts it at once,
# so the builds and the timing of the tests are as without it. (It stays in
# this session: setsid would give it an autogroup of its own, which the
# scheduler shares the CPUs with as an equal.) If a stage fails, the trap
# stops it and everything it started.
chrt --idle 0 scripts/tidy.sh build-tsan --all >build-tsan/tidy.out 2>&1 &
tidy_pid=$!
descendants() {  # descendants PID: PID and its processes, parents first
  local child
  echo "$1"
  for child in $(pgrep -P "$1"); do descendants "$child"; done
}
trap 'kill $(descendants "$tidy_pid") 2>/dev/null || true' EXIT
# Between stages: if clang-tidy has ended with a finding, the suite stops
# there, rather than after every later stage has run. With --wait (at the
# end): waits for it first.
tidy_status=""
tidy_check() {
  [ -z "$tidy_status" ] || return 0
  if [ "${1:-}" != --wait ] && jobs -rp | grep -qx "$tidy_pid"; then
    return 0  # still running
  fi
  tidy_status=0
  wait "$tidy_pid" || tidy_status=$?
  if [ "$tidy_status" -ne 0 ]; then
    echo "== clang-tidy failed (started at the beginning)"
    cat build-tsan/tidy.out
    exit 1
  fi
}

echo "== release build"
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo "${lines_only[@]}"
run build

tidy_check
echo "== ASan+UBSan build"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug "${lines_only[@]}" \
  -DPCFS_SANITIZE=address,undefined -DPCFS_BUILD_BENCH=OFF
# Tests labelled "slow" or "nosan" (tests/CMakeLists.txt) run in the
# release tree only.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run build-asan -LE 'slow|nosan'

# The clang tree (configured above) builds only what the threaded tests
# need; clang-tidy checks the annotations of every other file.
tidy_check
echo "== clang TSan build (threaded tests)"
cmake --build build-tsan -j "$jobs" --target threaded_tests
TSAN_OPTIONS=halt_on_error=1 run build-tsan -L threaded

tidy_check
echo "== fuzz (10 s a target)"
scripts/fuzz.sh 10

# ---- Debian packages (packaging/build-debs.sh): lintian, then the service
# under systemd in a booted Debian 12 container (tests/system/).
tidy_check
echo "== Debian packages: build and lintian"
packaging/build-debs.sh build-debs/out
tests/system/lintian_test.sh build-debs/out
tidy_check
echo "== Debian packages: the service under systemd (systemd-nspawn)"
tests/system/service_test.sh build-debs/out
# ---- end of the Debian package stages

echo "== clang-tidy (started at the beginning; waiting for it to end)"
tidy_check --wait
cat build-tsan/tidy.out

echo "== all test suites passed"
