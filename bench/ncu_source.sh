#!/usr/bin/env bash
# Where the warps of a kernel stall, instruction by instruction: one Nsight Compute profile of COUNT
# consecutive launches matching KERNEL (after SKIP of them) with warp-state sampling, then the kernel-level
# stall breakdown of each launch and the SASS instructions of the first profiled function holding the most
# samples (bench/ncu_top.py: with their stall reasons where this ncu exports them). For the GPU machine
# (docs/device.md).
#
#   bench/ncu_source.sh <command ...>
# Environment: KERNEL=gemv_stream_mma_kernel (regex), SKIP=512, COUNT=4, TOP=30, OUT=out, NCU_TIMEOUT=240,
# NCU_ARGS (more ncu options, e.g. "--cache-control none --clock-control none": warm caches, boost clocks).
# The source page sums the profiled launches of one function (one table per function).
# Example (int4, eager decode; a 6-token prompt takes 256 stream launches, a decode step 128):
#   bench/ncu_source.sh .carry/bin/lowbit bench --formats int4 --reps 1 --new-tokens 8 --modes eager
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
mkdir -p "$OUT"
if ! command -v ncu >/dev/null; then
  echo "ncu_source: ncu not found: skipped"
  exit 0
fi
rep="$OUT/ncu_source"
timeout "${NCU_TIMEOUT:-240}" ncu -f -o "$rep" -k "regex:${KERNEL:-gemv_stream_mma_kernel}" --launch-skip "${SKIP:-512}" \
  --launch-count "${COUNT:-4}" --section WarpStateStats --section SourceCounters --section SpeedOfLight \
  ${NCU_ARGS:-} --import-source no "$@" >"$OUT/ncu_source.log" 2>&1
rc=$?
[ $rc -eq 0 ] || { echo "ncu_source: ncu exit $rc"; tail -5 "$OUT/ncu_source.log"; }
[ -f "$rep.ncu-rep" ] || exit 0
ncu -i "$rep.ncu-rep" --print-details all --section WarpStateStats --section SpeedOfLight >"$OUT/ncu_source_details.txt" 2>&1
ncu -i "$rep.ncu-rep" --page source --print-source sass --csv >"$OUT/ncu_source_sass.csv" 2>"$OUT/ncu_source_sass.err"
echo "ncu_source: kernel-level (per launch)"
grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Warp Cycles Per Issued|Stall|stall" "$OUT/ncu_source_details.txt" | head -60
python3 bench/ncu_top.py "$OUT/ncu_source_sass.csv" "${TOP:-30}"
