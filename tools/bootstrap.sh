#!/usr/bin/env bash
# Installs what drover needs from Debian 12's archive (only what is missing), then configures
# and builds. Environment: DROVER_BUILD_DIR (default build), DROVER_CMAKE_ARGS (extra flags),
# DROVER_EXTRA_PACKAGES (more packages, e.g. the fuzz build's clang-14 libclang-rt-14-dev),
# DROVER_BUILD_TARGETS (build only these targets; default all).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config git
  libasio-dev liburing-dev libspdlog-dev libgtest-dev
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libseccomp-dev
  # used by tests and the benchmark: peers to compare with, tools a user would look with
  util-linux bubblewrap runc procps iproute2 bsdutils
  # the shells whose completions drover installs (tests/completions.sh)
  zsh fish
  # the cluster test's private single-node Slurm (tests/cluster/slurm.sh)
  munge slurmctld slurmd slurm-client
)
# shellcheck disable=SC2206
packages+=(${DROVER_EXTRA_PACKAGES:-})
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # dpkg's progress goes to a log, shown only if something fails.
  log=$(mktemp)
  if ! { apt-get update -q && apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}"; } \
    >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    echo "bootstrap: installing ${missing[*]} failed" >&2
    exit 1
  fi
  rm -f "$log"
fi

build=${DROVER_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=${DROVER_BUILD_TYPE:-RelWithDebInfo} ${DROVER_CMAKE_ARGS:-}
targets=()
for t in ${DROVER_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}"
