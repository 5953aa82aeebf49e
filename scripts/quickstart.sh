#!/usr/bin/env bash
# The README's first command: installs the dependencies (apt-get, as root),
# builds, and runs the daemon on UDP port 50000 with the example users
# (hans/hanspass, vader/vaderpass, yoda/yodapass) in examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/install-deps.sh
# The two programs only, configured as scripts/test.sh configures this tree,
# so that the suite's release build reuses what this one compiled.
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPCFS_LINE_TABLES_ONLY=ON -- peerconnectd peerctl
echo "Daemon starting. In other terminals: build/peerctl/peerctl 50000"
cd examples
exec ../build/daemon/peerconnectd 50000 --verbose
