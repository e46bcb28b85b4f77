#!/bin/sh
# Installs drover from a build tree into a fresh prefix and builds a user's project against the
# installed files only: with find_package (static, shared, supervise) and with pkg-config, then
# runs each program. Usage: tests/consumer/run.sh BUILD_DIR [WORK_DIR]
set -eu
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/drover-consumer-XXXXXX")}
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }

# Nothing of the source or build tree may be needed: the project sees only the prefix.
cmake -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 ||
  { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake" -j 2 >"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
"$work/cmake/consumer_static"
LD_LIBRARY_PATH=$prefix/lib "$work/cmake/consumer_shared"
"$work/cmake/consumer_supervise"
# The shared one really uses the installed libdrover.so.
LD_LIBRARY_PATH=$prefix/lib ldd "$work/cmake/consumer_shared" | grep -q "$prefix/lib/libdrover.so" ||
  { echo "consumer_shared does not load $prefix/lib/libdrover.so"; exit 1; }

# pkg-config, the way a Makefile would build it.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# shellcheck disable=SC2046
g++ -O1 -o "$work/pc_static" "$here/main.cpp" $(pkg-config --cflags drover) \
  "$prefix/lib/libdrover.a" $(pkg-config --libs --static drover | sed 's/-ldrover //')
"$work/pc_static"
# shellcheck disable=SC2046
g++ -O1 -o "$work/pc_shared" "$here/main.cpp" $(pkg-config --cflags --libs drover)
LD_LIBRARY_PATH=$prefix/lib "$work/pc_shared"
# shellcheck disable=SC2046
g++ -O1 -DCONSUMER_SUPERVISE -o "$work/pc_supervise" "$here/main.cpp" $(pkg-config --cflags --libs drover-supervise)
LD_LIBRARY_PATH=$prefix/lib "$work/pc_supervise"
# The installed binary is stripped, its debug info beside it.
if readelf -S "$prefix/bin/drover" | grep -q '\.debug_info'; then echo "bin/drover has debug info"; exit 1; fi
"$prefix/bin/drover" --version
# Man pages and completions where man and the shells look.
for f in share/man/man1/drover.1 share/man/man1/drover-parallel.1 share/bash-completion/completions/drover \
         share/zsh/vendor-completions/_drover share/fish/vendor_completions.d/drover.fish; do
  [ -s "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
# The installed bench finds its helpers (the floor, the static program) in libexec/drover with
# the build tree out of sight: the path the build recorded is tried first, so the tree is
# hidden under a tmpfs in a mount namespace of this test's own. Needs root and unshare(1).
# A build without the benchmarks (DROVER_BUILD_BENCH=OFF, as CI's sanitizer builds)
# installs no helpers: nothing to check there.
if grep -q '^DROVER_BUILD_BENCH:BOOL=OFF' "$build/CMakeCache.txt"; then
  echo "consumer: no benchmarks in this build: the installed bench is not checked"
elif [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1; then
  env -u DROVER_STATIC_TRUE -u DROVER_FLOOR unshare -m sh -c \
    "mount -t tmpfs none '$build' && '$prefix/bin/drover' bench --ns none -n 2 --warmup 0 --workload exec-static --json '$work/bench.json'" \
    >"$work/bench.log" 2>&1 || { cat "$work/bench.log"; exit 1; }
  for f in "\"floor_source\": \"helper $prefix/libexec/drover/drover_floor\"" \
           "\"workload_path\": \"$prefix/libexec/drover/drover_static_true\""; do
    grep -qF "$f" "$work/bench.json" || { echo "installed bench: no $f in its report"; exit 1; }
  done
fi
echo "consumer: all builds ran"
