#!/usr/bin/env bash
# Where the warps of a kernel stall, instruction by instruction: one Nsight Compute profile of COUNT
# consecutive launches matching KERNEL (after SKIP of them) with warp-state sampling, then per launch the
# kernel-level stall breakdown and the SASS instructions holding the most samples (with their stall reasons
# where this ncu exports them). For the GPU machine (docs/device.md).
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
python3 - "$OUT/ncu_source_sass.csv" "${TOP:-30}" <<'EOF'
# The source page: one CSV table per profiled launch (a header row naming the columns, then one row per
# SASS instruction). Prints per table the instructions with the most warp-state samples.
import csv, sys
path, top = sys.argv[1], int(sys.argv[2])
tables, cur, head = [], None, None
with open(path, newline="") as f:
    for row in csv.reader(f):
        if not row:
            continue
        if any(c.strip() == "Source" for c in row) and any("Sampl" in c for c in row):
            head, cur = row, []
            tables.append((head, cur))
        elif cur is not None and len(row) == len(head):
            cur.append(row)
if not tables:
    print("ncu_source: no source table in", path)
    print(open(path).read()[:1500])
    sys.exit(0)
print("source columns:", " | ".join(tables[0][0]))
def num(s):
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return 0.0
for t, (head, rows) in enumerate(tables):
    src = head.index("Source")
    all_col = next(i for i, c in enumerate(head) if "Sampling (All" in c or ("Sampl" in c and "Not" not in c))
    reasons = [i for i, c in enumerate(head) if c.lower().startswith("stall") or "stalled" in c.lower()]
    total = sum(num(r[all_col]) for r in rows) or 1.0
    if any(rows == r2 for _, r2 in tables[:t]):
        continue  # the same function again
    print(f"\n== function {t}: {len(rows)} instructions, {total:.0f} samples")
    by_op = {}
    for r in rows:
        op = r[src].split()[0] if r[src].split() else "?"
        if op.startswith("@"):
            op = r[src].split()[1] if len(r[src].split()) > 1 else op
        by_op[op.split(".")[0]] = by_op.get(op.split(".")[0], 0.0) + num(r[all_col])
    print("by opcode: " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in
                                    sorted(by_op.items(), key=lambda kv: -kv[1])[:12]))
    for i, r in sorted(enumerate(rows), key=lambda ir: -num(ir[1][all_col]))[:top]:
        why = sorted(((num(r[j]), head[j]) for j in reasons if num(r[j]) > 0), reverse=True)[:3]
        print(f"{i:5d} {100 * num(r[all_col]) / total:5.1f}%  {r[src][:70]:70s} " +
              " ".join(f"{n.replace('stall_', '')}={v:.0f}" for v, n in why))
EOF
