#!/usr/bin/env bash
# Builds reuse tuning databases, end to end as a user does it: `cmake --install` into a
# prefix, then examples/mlp configured with find_package(Tessel) from that prefix, built
# once without a tuned database and once with one, run and checked against the reference
# interpreter. Also: the compile step reruns only when its inputs change; --require-tuned;
# a stale record is reported, not applied.
# Usage: package_example.sh BUILD_DIR (run from the repository root)
set -uo pipefail
build=$(cd "$1" && pwd)
src=$(pwd)
tmp=$(mktemp -d /tmp/tessel_package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; failures=$((failures + 1)); }
step() { # name, command...: runs it, keeps its output in $tmp/<name>.log
  local name=$1; shift
  if "$@" >"$tmp/$name.log" 2>&1; then ok "$name"; else bad "$name"; tail -30 "$tmp/$name.log"; fi
}
has() { # name, regex, log
  if grep -Eq "$2" "$tmp/$3.log"; then ok "$1"; else bad "$1 (no /$2/ in $3.log)"; tail -20 "$tmp/$3.log"; fi
}

prefix="$tmp/prefix"
step install cmake --install "$build" --prefix "$prefix"
for f in bin/tessel bin/tessel-worker lib/libtessel_runtime.a lib/libtessel.so include/tessel/jit/load_best.h \
  include/tessel/runtime/runtime.h lib/cmake/Tessel/TesselConfig.cmake share/tessel/configs/targets/x86-64-v4.json; do
  [[ -e "$prefix/$f" ]] && ok "installed $f" || bad "installed $f"
done
# The kernel runtime needs no LLVM.
if nm -u "$prefix/lib/libtessel_runtime.a" | grep -qi llvm; then bad "runtime-without-llvm"; else ok "runtime-without-llvm"; fi
tessel="$prefix/bin/tessel"
export TESSEL_CACHE_DIR="$tmp/cache"

# 1. No tuned database: default schedules, with a warning; the output is still right.
step configure-untuned cmake -S examples/mlp -B "$tmp/untuned" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
step build-untuned cmake --build "$tmp/untuned"
has untuned-warns "default schedule|no tuning database" build-untuned
step run-untuned "$tmp/untuned/mlp" --check --bench 20
has untuned-matches "check +ok" run-untuned

# 2. A tuned database (a short real tuning run of the three layers).
step tune "$tessel" tune examples/mlp/fc1.te examples/mlp/fc2.te examples/mlp/fc3.te --trials 24 --db "$tmp/tuned.db" --seed 3
step configure-tuned cmake -S examples/mlp -B "$tmp/tuned" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release -DTESSEL_DB="$tmp/tuned.db"
step build-tuned cmake --build "$tmp/tuned"
has tuned-uses-records "record [0-9]+" build-tuned
if grep -q '"source": "default"' "$tmp/tuned/tessel_mlp/mlp.json"; then bad "manifest-all-tuned"; else ok "manifest-all-tuned"; fi
step run-tuned "$tmp/tuned/mlp" --check --bench 20
has tuned-matches "check +ok" run-tuned
cat "$tmp/run-untuned.log" "$tmp/run-tuned.log" | grep -E "check|tessel|onednn" | sed 's/^/     /'

# 3. Reruns only on change: nothing to do, then a changed database recompiles.
step rebuild-noop cmake --build "$tmp/tuned"
if grep -q "Tessel: kernel library" "$tmp/rebuild-noop.log"; then bad "no-rerun-without-change"; else ok "no-rerun-without-change"; fi
step retune "$tessel" tune examples/mlp/fc3.te --trials 8 --db "$tmp/tuned.db" --seed 4
step rebuild-after-tune cmake --build "$tmp/tuned"
has rerun-after-db-change "Tessel: kernel library" rebuild-after-tune

# 4. --require-tuned: a workload without records is an error naming it.
step compile-tuned "$tessel" compile examples/mlp/fc1.te --db "$tmp/tuned.db" --require-tuned -o "$tmp/lib1"
if "$tessel" compile examples/mlp/fc1.te matmul:M=8,N=8,K=8 --db "$tmp/tuned.db" --require-tuned -o "$tmp/lib2" >"$tmp/require.log" 2>&1; then
  bad "require-tuned-fails"
else ok "require-tuned-fails"; fi
has require-tuned-names-it "require-tuned: 1 workload has no record.*|matmul:M=8,N=8,K=8" require

# 5. A stale record (its stored workload text no longer gives its hash) is reported, not applied.
cp "$tmp/tuned.db" "$tmp/stale.db"
sqlite3 "$tmp/stale.db" "update workloads set text_form = replace(text_form, '784', '785')"
step compile-stale "$tessel" compile examples/mlp/fc1.te --db "$tmp/stale.db" -o "$tmp/lib3"
has stale-reported "stale" compile-stale
has stale-not-applied "default" compile-stale
if "$tessel" compile examples/mlp/fc1.te --db "$tmp/stale.db" --require-tuned -o "$tmp/lib4" >"$tmp/stale-req.log" 2>&1; then
  bad "stale-require-tuned-fails"
else ok "stale-require-tuned-fails"; fi

# 6. Cross-compiled objects: AArch64 and x86-64-v4 (whatever this host has).
step cross-arm "$tessel" compile examples/mlp/fc2.te --db "$tmp/tuned.db" --target aarch64-neon -o "$tmp/arm"
readelf -h "$tmp/arm/"*.o | grep -q "Machine:.*AArch64" && ok "aarch64-object" || bad "aarch64-object"
step cross-v4 "$tessel" compile examples/mlp/fc2.te --db "$tmp/tuned.db" --target x86-64-v4 --compatible -o "$tmp/v4"
readelf -h "$tmp/v4/"*.o | grep -q "Machine:.*X86-64" && ok "x86-64-v4-object" || bad "x86-64-v4-object"

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
