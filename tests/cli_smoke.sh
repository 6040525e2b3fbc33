#!/usr/bin/env bash
# The `tessel` command as a user runs it. Usage: cli_smoke.sh path/to/tessel
set -uo pipefail
tessel="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() { # check NAME EXPECTED_RC PATTERN -- command...
  local name="$1" want_rc="$2" pattern="$3"; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ "$want_rc" == "nonzero" && $rc -eq 0 ]] || [[ "$want_rc" != "nonzero" && $rc -ne $want_rc ]]; then
    echo "FAIL $name: exit code $rc (wanted $want_rc)"; echo "$out" | head -20; failures=$((failures + 1)); return
  fi
  if ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL $name: output lacks /$pattern/"; echo "$out" | head -20; failures=$((failures + 1)); return
  fi
  echo "ok   $name"
}

check help 0 "Examples" -- "$tessel" --help
for sub in ops show run compile space targets db tracker server fleet tune report; do check "help-$sub" 0 "Example" -- "$tessel" "$sub" --help; done
check no-subcommand 2 "subcommand" -- "$tessel"
check ops 0 "conv2d" -- "$tessel" ops
check run-matmul 0 "verify +ok.*matches the reference interpreter" -- "$tessel" run matmul:M=64,N=48,K=32 --repeat 3
check run-gflops 0 "GFLOP/s" -- "$tessel" run matmul:M=64,N=64,K=64 --repeat 1
check run-threads 0 "2 threads" -- "$tessel" run conv2d:N=1,C=8,H=12,W=12,K=8,R=3,S=3,stride=1,pad=1 --threads 2 --repeat 1
check run-file 0 "verify +ok" -- "$tessel" run configs/workloads/matmul_64.te --repeat 1
check bad-spec nonzero "column" -- "$tessel" run matmul:M=2x,N=4,K=4
check bad-op nonzero "unknown operator" -- "$tessel" run matmull:M=4
check bad-threads nonzero "threads" -- "$tessel" run matmul:M=4,N=4,K=4 --threads 0
check missing-file nonzero "error" -- "$tessel" run does/not/exist.te
check show-ir 0 "for \(" -- "$tessel" show matmul:M=8,N=8,K=8 --ir
check show-te 0 "sum\(" -- "$tessel" show matmul:M=8,N=8,K=8 --te
check show-llvm 0 "define" -- "$tessel" show softmax:M=4,N=16 --llvm
check show-asm 0 "ret" -- "$tessel" show relu:M=4,N=16 --asm
export TESSEL_DB="$tmp/no-such.db" # compile: no database, so default schedules with a warning
check compile 0 "wrote .*1 object" -- "$tessel" compile mm@matmul:M=8,N=8,K=8 -o "$tmp/lib" --name my
[[ -s "$tmp/lib/libmy.a" && -s "$tmp/lib/my.h" && -s "$tmp/lib/my.json" ]] && grep -q "int32_t my_mm(" "$tmp/lib/my.h" &&
  echo "ok   compile-files" || { echo "FAIL compile-files"; failures=$((failures + 1)); }
check compile-warns 0 "warning: no tuning database" -- "$tessel" compile matmul:M=8,N=8,K=8 -o "$tmp/lib2"
check compile-require-tuned nonzero "no tuning database" -- "$tessel" compile matmul:M=8,N=8,K=8 -o "$tmp/lib3" --require-tuned
check compile-missing-db nonzero "no tuning database at $tmp/missing.db" -- "$tessel" compile matmul:M=8,N=8,K=8 --db "$tmp/missing.db"
check compile-bad-name nonzero "identifier" -- "$tessel" compile matmul:M=8,N=8,K=8 -o "$tmp/x" --name 9bad
check compile-aarch64 0 "cross .*aarch64" -- "$tessel" compile matmul:M=16,N=16,K=16 --target aarch64-neon -o "$tmp/arm"
unset TESSEL_DB

check targets 0 "cpu-avx512" -- "$tessel" targets
check space 0 "sketch 1: tile\+cache_write" -- "$tessel" space matmul:M=32,N=32,K=32 --sample 2
check space-gpu 0 "threadIdx.x" -- "$tessel" space matmul:M=32,N=32,K=32 --target h100 --sample 2
check space-rowwise 0 "sketch [0-9]+: rowwise" -- "$tessel" space softmax:M=8,N=32 --sample 1 --sketch rowwise
conv="conv2d:N=1,C=8,H=7,W=7,K=16,R=3,S=3,pad=1"
check space-padding-one-thread 0 "inline pad \(or keep it in a buffer" -- "$tessel" space $conv --sample 0
if "$tessel" space $conv --sample 0 --threads 2 | grep -q "keep it in a buffer"; then
  echo "FAIL space-padding-two-threads: a 2-thread space offers a padding buffer"; failures=$((failures + 1))
else echo "ok   space-padding-two-threads"; fi
check space-bad-threads nonzero "--threads must be 1 or more" -- "$tessel" space $conv --threads 0
check space-bad-target nonzero "did you mean|available|unknown target|no target" -- "$tessel" space matmul:M=32,N=32,K=32 --target cpu-avx51
"$tessel" space dense:M=16,N=32,K=24 --sample 3 --seed 5 | awk '/^# sample 2/{p=1;next} p' > "$tmp/t.json"
check run-sampled-trace 0 "verify +ok" -- "$tessel" run dense:M=16,N=32,K=24 --trace "$tmp/t.json" --repeat 1
check show-trace 0 "allocate|for \(" -- "$tessel" show dense:M=16,N=32,K=24 --trace "$tmp/t.json" --ir
check trace-wrong-workload nonzero "was made for workload" -- "$tessel" run dense:M=16,N=32,K=8 --trace "$tmp/t.json"
# Committed traces for this host's ISA as tessel sees it (TESSEL_MAX_CPU_ISA may cap it); the others emulated.
host_line=$("$tessel" targets | head -1)
echo "     host: $host_line"
if grep -q "512-bit vectors" <<<"$host_line"; then isa=avx512; else isa=avx2; fi
echo "     committed traces run natively: *_$isa*"
check run-gemm-trace 0 "pack .*ahead of time" -- "$tessel" run configs/workloads/matmul_1024_constb.te --trace configs/traces/matmul_1024_constb_avx512.json --no-verify --repeat 1
if grep -q "256-bit vectors\|512-bit vectors" <<<"$host_line"; then fma_flag=""; else fma_flag="--emulate-intrinsics"; fi
check run-avx2-gemm-trace 0 "avx2|pack .*ahead of time" -- "$tessel" run configs/workloads/matmul_1024_constb.te --trace configs/traces/matmul_1024_constb_avx2_tensorized.json --no-verify --repeat 1 $fma_flag
check run-conv-trace-$isa 0 "verify +ok" -- "$tessel" run conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1,layout=NCHW --trace configs/traces/conv2d_resnet50_3x3_64_$isa.json --repeat 1
# The AVX2 space has a tensorize sketch, and its samples verify (emulated where this host lacks FMA).
check space-avx2-tensorize 0 "tile\+cache_write\+tensorize.*|avx2_fma_f32" -- "$tessel" space matmul:M=512,N=512,K=512 --target cpu-avx2 --sample 0
check space-avx2-sample 0 "avx2_fma_f32" -- "$tessel" space matmul:M=96,N=64,K=48 --target cpu-avx2 --sketch tile+cache_write+tensorize --sample 1 --seed 3 -o "$tmp/avx2.json"
check run-avx2-sample 0 "verify +ok" -- "$tessel" run matmul:M=96,N=64,K=48 --trace "$tmp/avx2.json" --repeat 1 $fma_flag
# Runs that cannot fit in memory are refused before anything is allocated, naming the tensor.
check too-big-spec 1 "C needs 149 GiB .* available" -- "$tessel" run matmul:M=200000,N=200000,K=1
printf 'input A: f32[99999999999, 99999999999]\nB[i, j] = A[i, j]\n' >"$tmp/big.te"
check too-big-text 1 "more than the limit of 2\^31" -- "$tessel" run "$tmp/big.te"
check compile-trace 0 "wrote" -- "$tessel" compile dense:M=16,N=32,K=24 --trace "$tmp/t.json" -o "$tmp/d"
check run-unrunnable-target nonzero "lacks|CUDA" -- "$tessel" run matmul:M=4,N=4,K=4 --target h100
# Tensor intrinsics for hardware this machine may lack, checked through their emulations.
tc=matmul:M=64,N=32,K=32,dtype=f16
check space-tensorcore 0 "wmma_f16_m16n16k16" -- "$tessel" space $tc --target h100 --sketch gpu-tensorcore --sample 1 -o "$tmp/tc.json"
check run-tensorcore-emulated 0 "verify +ok" -- "$tessel" run $tc --target h100 --trace "$tmp/tc.json" --emulate-gpu --repeat 1
# The CUDA back end: the generated source, its NVRTC resources, and a clear answer where there is no GPU.
check show-cuda 0 "TESSEL_KERNEL.*tessel_matmul_.*_k0|tessel_wmma_f16_m16n16k16\(" -- "$tessel" show $tc --target h100 --trace "$tmp/tc.json" --cuda
check show-cuda-cpu nonzero "need a GPU target" -- "$tessel" show $tc --cuda
if [[ -e /usr/local/cuda/lib64/libnvrtc.so || -n "${TESSEL_NVRTC:-}" ]]; then
  check show-resources 0 "^fits a100" -- "$tessel" show $tc --target a100 --trace "$tmp/tc.json" --resources
  # NVRTC's binaries are cached on disk: a second process reuses them; a damaged file is compiled again.
  check nvrtc-disk-cache-miss 0 "NVRTC, sm_80, [0-9]+ ms" -- env TESSEL_CACHE_DIR="$tmp/cache" "$tessel" show $tc --target a100 --trace "$tmp/tc.json" --resources
  check nvrtc-disk-cache-hit 0 "NVRTC, sm_80, cached" -- env TESSEL_CACHE_DIR="$tmp/cache" "$tessel" show $tc --target a100 --trace "$tmp/tc.json" --resources
  for f in "$tmp"/cache/nvrtc/*.cubin; do head -c 200 "$f" >"$f.cut" && mv "$f.cut" "$f"; done
  check nvrtc-disk-cache-damaged 0 "NVRTC, sm_80, [0-9]+ ms" -- env TESSEL_CACHE_DIR="$tmp/cache" "$tessel" show $tc --target a100 --trace "$tmp/tc.json" --resources
  # A CUDA kernel library: cubins, the launchers as C (compiled and linked against the toolkit's driver stub), a header.
  check compile-cuda 0 "wrote .*gk_cuda.c.*2 cubins" -- "$tessel" compile $tc softmax:M=4,N=64 --target h100 --name gk -o "$tmp/gk"
  printf '#include "gk.h"\nint main(void) { return gk_softmax_36551ea9(0, 0, 0) == 0; }\n' >"$tmp/gk/main.c"
  check compile-cuda-links 0 "^linked$" -- bash -c "cc -std=c99 -Wall -Wextra -Werror -I/usr/local/cuda/include -I'$tmp/gk' '$tmp/gk/main.c' '$tmp/gk/gk_cuda.c' -L/usr/local/cuda/lib64/stubs -lcuda -o '$tmp/gk/app' && echo linked"
  if ! ldconfig -p 2>/dev/null | grep -q libcuda.so.1; then
    check run-gpu-no-driver nonzero "cannot run it here: no CUDA driver" -- "$tessel" run $tc --target h100 --trace "$tmp/tc.json"
  fi
else
  echo "     skipped show-resources: no NVRTC (the CUDA toolkit) on this machine"
fi
check space-bad-sketch nonzero "no sketch 'gpu-tile-typo'.*gpu-tensorcore" -- "$tessel" space $tc --target h100 --sketch gpu-tile-typo
amx=matmul:M=32,N=48,K=64,dtype=bf16
check space-amx 0 "amx_bf16" -- "$tessel" space $amx --target cpu-avx512-amx --sketch tile+cache_write+tensorize --sample 1 -o "$tmp/amx.json"
check run-amx-emulated 0 "verify +ok" -- "$tessel" run $amx --target cpu-avx512-amx --trace "$tmp/amx.json" --emulate-intrinsics --repeat 1
if ! grep -q amx /proc/cpuinfo; then
  check run-amx-unrunnable nonzero "emulate-intrinsics" -- "$tessel" run $amx --target cpu-avx512-amx --trace "$tmp/amx.json"
fi

# Tuning: a small matmul into a fresh database, its best run from the database, a report.
check tune 0 "speed-up" -- "$tessel" tune matmul:M=32,N=32,K=32 --trials 8 --batch 8 --db "$tmp/tune.db"
check tune-run-db 0 "verify +ok" -- "$tessel" run matmul:M=32,N=32,K=32 --db "$tmp/tune.db" --repeat 1
check tune-resume 0 "speed-up" -- "$tessel" tune matmul:M=32,N=32,K=32 --trials 8 --db "$tmp/tune.db"
check tune-saved-model 0 "model +loaded .*cost_model.json" -- "$tessel" tune matmul:M=48,N=32,K=32 --trials 8 --batch 8 --db "$tmp/tune2.db" --cost-model-from "$tmp/tune.db.cost_model.json"
check tune-compile-db 0 "record [0-9]+" -- "$tessel" compile matmul:M=32,N=32,K=32 --db "$tmp/tune.db" -o "$tmp/tuned_lib"
check report 0 "wrote" -- "$tessel" report --db "$tmp/tune.db" -o "$tmp/r.html"
check tune-bad-trials nonzero "trials" -- "$tessel" tune matmul:M=32,N=32,K=32 --trials 0 --db "$tmp/tune.db"
check tune-bad-suite nonzero "cannot read suite" -- "$tessel" tune nope.spec --db "$tmp/tune.db"

if [[ $failures -gt 0 ]]; then echo "$failures CLI check(s) failed"; exit 1; fi
echo "all CLI checks passed"
