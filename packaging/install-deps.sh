#!/usr/bin/env bash
# Installs every package PeerConnectFS needs to build, test and benchmark on
# Debian 12, with apt-get (run as root). Safe to run again: when every
# package is already installed it does nothing and touches no network.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  liburing-dev libabsl-dev libssl-dev libsystemd-dev
  # peerctl's shell: line editing and history.
  libedit-dev
  # The cluster store (peerconnectd --redis): Redis's C client to build
  # against, and redis-server, which the tests start on loopback.
  libhiredis-dev redis-server
  libgtest-dev libgmock-dev libbenchmark-dev
  curl iproute2 procps
  python3 gnuplot-nox
  # bench/measure/cost_split.sh: perf samples the daemon and the echo.
  linux-perf
  # The test suite's clang stages: the format check, the TSan tree with
  # -Wthread-safety, clang-tidy (run-clang-tidy), libFuzzer with ASan+UBSan.
  clang clang-format clang-tidy libclang-rt-14-dev
  # llvm-symbolizer-14, with which the sanitizers and libFuzzer name the
  # file and line of each frame.
  llvm-14
  # Debian packages (packaging/build-debs.sh) and their checks:
  # lintian, promtool on the metrics, the service test under systemd-nspawn.
  debhelper lintian prometheus debootstrap systemd-container
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Two of them come with a daemon their package enables and starts:
# prometheus (wanted only for promtool; it would listen on :9090) and
# redis-server (the tests start their own, on ports of their own). Newly
# installed here, they are stopped and disabled again; one that was
# installed before is left as it was.
if [ -d /run/systemd/system ]; then
  for service in prometheus redis-server; do
    if [[ " ${missing[*]} " == *" $service "* ]]; then
      systemctl disable --now "$service" > /dev/null 2>&1 || true
      echo "install-deps: stopped and disabled the $service service (only its tools are used)"
    fi
  done
fi
