#!/usr/bin/env python3
"""Top instructions of an Nsight Compute source page by warp stall samples.

  ncu ... --section SourceCounters --section WarpStateStats --page source --print-source sass --csv CMD > src.csv
  bench/ncu_top.py src.csv [N]

Prints the N (default 40) SASS lines with the most samples (all stall reasons), with their index in the
kernel, so that a reader can tell the staging from the main loop, and the share of samples per region of
64 instructions (where in the kernel the warps wait).
"""
import csv
import sys


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    rows = list(csv.reader(open(path, newline="", errors="replace")))
    head_i = next((i for i, r in enumerate(rows) if any("Source" == c.strip() for c in r)), None)
    if head_i is None:
        print("no source table in", path)
        print("".join(",".join(r)[:200] + "\n" for r in rows[:20]))
        return 1
    head = [c.strip() for c in rows[head_i]]
    src = head.index("Source")
    samp = next((i for i, c in enumerate(head) if "Sampling (All" in c), None)
    if samp is None:
        samp = next((i for i, c in enumerate(head) if "Sampling" in c), None)
    if samp is None:
        print("no stall-sampling column; columns:", head)
        return 1
    body = []
    for r in rows[head_i + 1:]:
        if len(r) <= max(src, samp):
            continue
        try:
            n = float(r[samp].replace(",", "") or 0)
        except ValueError:
            continue
        body.append((len(body), n, r[src].strip()))
    total = sum(n for _, n, _ in body) or 1.0
    print(f"{len(body)} instructions, {total:.0f} samples ({head[samp]})")
    regions = {}
    for i, n, _ in body:
        regions[i // 64] = regions.get(i // 64, 0) + n
    print("samples per 64-instruction region (>= 1%):",
          " ".join(f"[{k * 64}]{100 * v / total:.1f}%" for k, v in sorted(regions.items()) if v / total >= 0.01))
    for i, n, s in sorted(body, key=lambda t: -t[1])[:top]:
        print(f"{i:6d} {100 * n / total:5.1f}% {s[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
