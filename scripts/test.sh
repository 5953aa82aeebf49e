#!/usr/bin/env bash
# The README's second command: the whole default test suite.
#   1. installs any missing dependency (apt-get; needs root on a fresh box)
#   2. checks the formatting of every C++ file (scripts/format.sh --check)
#   3. builds the release tree and runs every unit and integration test
#   4. builds with ASan+UBSan and runs them all again, but those labelled
#      "slow" (long by design: loss relays, kill -9 trials)
#   5. builds everything (daemon, peerctl, tests, bench) with clang, TSan and
#      -Wthread-safety -Werror, so the locking annotations are checked, and
#      runs the tests labelled "threaded" (the code that runs threads:
#      registry, reactor, file server, downloader and its hasher;
#      tests/CMakeLists.txt lists them in PCFS_THREADED_TESTS)
#   6. clang-tidy (.clang-tidy) over core/, daemon/, peerctl/, tests/ and
#      bench/, with the clang tree's compile_commands.json (scripts/tidy.sh)
#   7. every libFuzzer target for 10 s on its seeds (scripts/fuzz.sh)
#   8. builds the Debian packages, checks them with lintian, and installs,
#      reloads, upgrades and purges them in a booted Debian 12 container
# docs/TESTING.md says what the clang stages cost.
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

echo "== release build"
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run build

echo "== ASan+UBSan build"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug \
  -DPCFS_SANITIZE=address,undefined -DPCFS_BUILD_BENCH=OFF
# Tests labelled "slow" or "nosan" (tests/CMakeLists.txt) run in the
# release tree only.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run build-asan -LE 'slow|nosan'

# One clang tree does two jobs: GCC ignores the thread-safety annotations,
# and a TSan tree is needed anyway, so building it with clang checks them
# for the cost of building all targets there instead of only the threaded
# tests, rather than for a whole extra tree.
echo "== clang TSan build, -Wthread-safety (threaded tests)"
# (A build-tsan left by the GCC TSan stage of older versions cannot change
# compiler: start it afresh.)
if grep -qs 'CMAKE_CXX_COMPILER_ID "GNU"' \
    build-tsan/CMakeFiles/*/CMakeCXXCompiler.cmake; then
  rm -rf build-tsan
fi
CC=clang CXX=clang++ scripts/build.sh build-tsan -DCMAKE_BUILD_TYPE=Debug \
  -DPCFS_SANITIZE=thread -DPCFS_BUILD_BENCH=ON
TSAN_OPTIONS=halt_on_error=1 run build-tsan -L threaded

echo "== clang-tidy"
scripts/tidy.sh build-tsan --all

echo "== fuzz (10 s a target)"
scripts/fuzz.sh 10

# ---- Debian packages (packaging/build-debs.sh): lintian, then the service
# under systemd in a booted Debian 12 container (tests/system/).
echo "== Debian packages: build and lintian"
packaging/build-debs.sh build-debs/out
tests/system/lintian_test.sh build-debs/out
echo "== Debian packages: the service under systemd (systemd-nspawn)"
tests/system/service_test.sh build-debs/out
# ---- end of the Debian package stages

echo "== all test suites passed"
