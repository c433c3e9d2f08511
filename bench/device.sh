#!/usr/bin/env bash
# One command for the GPU machine: uses the carried CUDA build (or builds one), runs the CUDA tests,
# checks the GPU against the CPU on a real model, runs the kernel and survey benchmarks, optionally the
# PyTorch peers, and prints a short table last. See docs/device.md.
#
#   bench/device.sh [stage ...]      stages: info tests sanitizer kernels memqueue survey anchors goal (default: all but
#                                    anchors and goal; `survey anchors goal` = deliverable 7's run: the goal table
#                                    of bench/goal_table.py from this call's survey and PyTorch figures, printed last)
# Environment:
#   BUILD=.carry/bin        the CUDA binaries (carried, see bench/prepare-carry.sh; built here if absent)
#   DATA=.carry             folder with models/ (stories260K) and anchors/ (the peer scripts)
#   OUT=...                 where logs and tables go (the device tool sets it; default ./out)
#   FORMATS=...             survey formats (default: all weight formats); REPS=3; NEW=200
#   NCU_RUNS="name|kernel-regex|command ...[|skip]"   stage ncu: one Nsight Compute profile per ';'-separated
#                           run (one launch after `skip` (default 3) matching ones; details in ncu_<name>.txt,
#                           raw metrics as CSV in ncu_<name>.csv); NCU_SECTIONS="--section ..." replaces the sections
set -uo pipefail
cd "$(dirname "$0")/.."
# a packed carry (bench/prepare-carry.sh PACK=1): unpack it once
if [ ! -d .carry/bin ] && [ -f .carry.tar.xz.d/carry.tar.xz ]; then
  mkdir -p .carry && xz -dc .carry.tar.xz.d/carry.tar.xz | tar -C .carry -xf -
fi
BUILD=${BUILD:-.carry/bin}
DATA=${DATA:-.carry}
OUT=${OUT:-out}
REPS=${REPS:-3}
NEW=${NEW:-200}
mkdir -p "$OUT"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(info tests sanitizer kernels survey)
has() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
summary=()
note() { summary+=("$*"); echo "== $*"; }

if [ ! -x "$BUILD/lowbit" ]; then
  echo "== no carried build in $BUILD: building (needs libpcre2-dev, CLI11, nlohmann-json headers)"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA=ON -DLOWBIT_TESTS=ON >"$OUT/cmake.log" 2>&1 &&
    cmake --build "$BUILD" -j 16 >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
LB="$BUILD/lowbit"

if has info; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | tee "$OUT/gpu.txt"
fi

if has tests; then
  if [ -x "$BUILD/lowbit_cuda_tests" ]; then
    # line-buffered so that a test cut by the time limit still leaves its log
    LOWBIT_SHARED_MODELS="$DATA/models" timeout "${TEST_TIMEOUT:-300}" stdbuf -oL -eL "$BUILD/lowbit_cuda_tests" \
      --gtest_filter="${TEST_FILTER:-*}" >"$OUT/cuda_tests.log" 2>&1
    rc=$?
    grep -E '^\[ +(OK|FAILED|SKIPPED) +\]|Failure|error' "$OUT/cuda_tests.log" | tail -40
    note "cuda tests (${TEST_FILTER:-*}): rc=$rc $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/cuda_tests.log" | tr '\n' ' ')"
  else
    note "cuda tests: $BUILD/lowbit_cuda_tests missing"
  fi
  # the whole model on the GPU against the CPU: stories260K, greedy, 200 tokens from BOS
  m="$DATA/models/stories260K/stories260K.bin"
  if [ -f "$m" ]; then
    "$LB" generate --model "$m" --prompt "" -n 200 --temperature 0 --device cpu -q >"$OUT/s260k_cpu.txt" 2>"$OUT/s260k_cpu.err"
    for mode in eager graph; do
      "$LB" generate --model "$m" --prompt "" -n 200 --temperature 0 --device cuda --mode $mode -q \
        >"$OUT/s260k_gpu_$mode.txt" 2>"$OUT/s260k_gpu_$mode.err"
      if cmp -s "$OUT/s260k_cpu.txt" "$OUT/s260k_gpu_$mode.txt"; then note "stories260K GPU($mode) == CPU greedy 200 tokens: SAME"
      else note "stories260K GPU($mode) vs CPU: DIFFERENT"; diff <(fold -w 80 "$OUT/s260k_cpu.txt") <(fold -w 80 "$OUT/s260k_gpu_$mode.txt") | head -10; cat "$OUT/s260k_gpu_$mode.err" | tail -3; fi
    done
    # sampling runs on the GPU too
    timeout 60 "$LB" generate --model "$m" --prompt "Once upon a time" -n 60 --temperature 0.8 --top-k 40 --top-p 0.95 --device cuda -q 2>&1 | tail -3
    note "sampled generation on the GPU: rc=${PIPESTATUS[0]}"
  else
    note "stories260K absent in $DATA/models: whole-model GPU check skipped"
  fi
fi

if has sanitizer; then
  m="$DATA/models/stories260K/stories260K.bin"
  if command -v compute-sanitizer >/dev/null && [ -f "$m" ]; then
    for mode in eager graph; do
      timeout "${SANITIZER_TIMEOUT:-180}" compute-sanitizer --tool memcheck --error-exitcode 9 "$LB" generate --model "$m" --prompt "Once" -n 24 \
        --temperature 0 --device cuda --mode $mode -q >"$OUT/sanitizer_$mode.log" 2>&1
      note "compute-sanitizer memcheck ($mode): rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer_$mode.log" | head -1)"
    done
    timeout "${SANITIZER_TIMEOUT:-180}" compute-sanitizer --tool memcheck --error-exitcode 9 "$LB" generate --model synthetic:llama-3.2-1b --weights int4 \
      --prompt "x" --tokenizer "$DATA/models/llama3-tokenizer/tokenizer.model" -n 4 --temperature 0 --device cuda -q \
      >"$OUT/sanitizer_1b.log" 2>&1 || true
    note "compute-sanitizer memcheck (synthetic 1b int4): $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer_1b.log" | head -1)"
    # a 6-token prompt on plain bf16 weights: the short-prompt cuBLAS path (gemm_parts) and its epilogues
    timeout "${SANITIZER_TIMEOUT:-180}" compute-sanitizer --tool memcheck --error-exitcode 9 "$LB" generate --model synthetic:llama-3.2-1b --weights bf16 \
      --prompt "Hello, my name is" --tokenizer "$DATA/models/llama3-tokenizer/tokenizer.model" -n 2 --temperature 0 --device cuda -q \
      >"$OUT/sanitizer_1b_bf16.log" 2>&1 || true
    note "compute-sanitizer memcheck (synthetic 1b bf16, 6-token prompt): $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer_1b_bf16.log" | head -1)"
  else
    note "compute-sanitizer or stories260K absent: skipped"
  fi
fi

if has kernels; then
  if [ -x "$BUILD/lowbit_gemv_bench" ]; then
    timeout "${KERNEL_TIMEOUT:-180}" stdbuf -oL "$BUILD/lowbit_gemv_bench" --json "$OUT/gemv.json" ${KERNEL_ARGS:-} >"$OUT/gemv.txt" 2>&1
    note "gemv bench: rc=$? (table in gemv.txt)"
    cat "$OUT/gemv.txt" | tail -60
  fi
fi

if has memqueue; then
  if [ -x "$BUILD/lowbit_memqueue_bench" ]; then
    timeout 120 "$BUILD/lowbit_memqueue_bench" >"$OUT/memqueue.txt" 2>&1
    note "memqueue bench: rc=$? (table in memqueue.txt)"
    cat "$OUT/memqueue.txt"
  fi
fi

if has ncu; then
  if command -v ncu >/dev/null; then
    IFS=';' read -ra runs <<<"${NCU_RUNS:-}"
    for r in "${runs[@]}"; do
      IFS='|' read -r name kre cmd skip <<<"$r"
      name=$(echo $name)
      skip=${skip:-3}
      timeout "${NCU_TIMEOUT:-120}" ncu -k "regex:$kre" --launch-skip "$skip" --launch-count 1 \
        ${NCU_SECTIONS:---section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats} \
        --print-details all $cmd >"$OUT/ncu_$name.txt" 2>&1
      rc=$?
      timeout "${NCU_TIMEOUT:-120}" ncu -k "regex:$kre" --launch-skip "$skip" --launch-count 1 \
        --section WarpStateStats --section SchedulerStats --section SpeedOfLight --page raw --csv $cmd \
        >"$OUT/ncu_$name.csv" 2>/dev/null
      note "ncu $name: rc=$rc"
      grep -E "Duration|DRAM Throughput|Memory Throughput|Issue Slots Busy|Warp Cycles Per Issued|No Eligible|Active Warps Per|Registers Per|Stall|stall" "$OUT/ncu_$name.txt" | head -40
    done
  else
    note "ncu absent: profiles skipped"
  fi
fi

if has survey; then
  args=(--reps "$REPS" --new-tokens "$NEW" --json "$OUT/survey.json" --md "$OUT/survey.md" --csv "$OUT/survey.csv")
  [ -n "${FORMATS:-}" ] && args+=(--formats "$FORMATS")
  [ -n "${MODES:-}" ] && args+=(--modes "$MODES")
  [ -n "${PROFILE:-}" ] && args+=(--profile)
  [ -n "${TIMELINE:-}" ] && args+=(--timeline)
  timeout "${SURVEY_TIMEOUT:-540}" "$LB" bench "${args[@]}" >"$OUT/survey.txt" 2>"$OUT/survey.err"
  note "survey: rc=$? $(grep -c 'tok/s' "$OUT/survey.err") rows done"
  grep -E '^bench \[' "$OUT/survey.err" | tail -30
fi

if has anchors; then
  a="$DATA/anchors/gptfast_style_anchor.py"
  if [ -f "$a" ]; then
    PYTHONUNBUFFERED=1 timeout "${ANCHOR_TIMEOUT:-420}" python3 "$a" ${ANCHOR_SPECS:-bf16:reduce-overhead int8:reduce-overhead int4:reduce-overhead} \
      >"$OUT/anchors.txt" 2>&1
    note "anchors: rc=$? $(grep RESULT "$OUT/anchors.txt" | cut -c1-600)"
  else
    note "anchor script absent in $DATA/anchors"
  fi
fi

if has goal; then
  if [ -f "$OUT/survey.json" ]; then
    python3 bench/goal_table.py "$OUT/survey.json" "$OUT/anchors.txt" >"$OUT/goal.md" 2>"$OUT/goal.err"
    note "goal table: rc=$? ($OUT/goal.md)"
  else
    rm -f "$OUT/goal.md"
    note "goal table: no $OUT/survey.json (run the survey stage in the same call)"
  fi
fi

echo
echo "================ summary ================"
for s in "${summary[@]}"; do echo "$s"; done
[ -f "$OUT/survey.txt" ] && cat "$OUT/survey.txt"
[ -f "$OUT/goal.md" ] && { echo; cat "$OUT/goal.md"; }
exit 0
