#!/usr/bin/env python3
"""Top instructions of an Nsight Compute source page by warp stall samples.

  ncu ... --section SourceCounters --section WarpStateStats --page source --print-source sass --csv CMD > src.csv
  bench/ncu_top.py src.csv [N]

Prints the N (default 40) SASS lines with the most samples (all stall reasons), with their index in the
kernel (so that a reader can tell the staging from the main loop) and their top stall reasons where the
CSV has them, the share of samples per region of 64 instructions (where in the kernel the warps wait) and
per opcode. The first function's table only (the source page has one per profiled function).
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
    # per-reason sample columns where this ncu exports them (stall_mio, stall_long_sb, ...; not the
    # "(Not Issued)" copies)
    reasons = [i for i, c in enumerate(head) if c.startswith("stall_") and "Not Issued" not in c]

    def num(v):
        try:
            return float(v.replace(",", "") or 0)
        except ValueError:
            return None

    body = []
    for r in rows[head_i + 1:]:
        if len(r) != len(head):  # the next table (another function) or a trailer
            if body:
                break
            continue
        if r[src].strip() == "Source":  # the next function's table
            break
        n = num(r[samp])
        if n is None:
            continue
        why = sorted(((num(r[j]) or 0.0, head[j][6:]) for j in reasons), reverse=True)[:3]
        body.append((len(body), n, r[src].strip(), [(v, k) for v, k in why if v > 0]))
    total = sum(t[1] for t in body) or 1.0
    print(f"{len(body)} instructions, {total:.0f} samples ({head[samp]})")
    regions, ops = {}, {}
    for i, n, s, _ in body:
        regions[i // 64] = regions.get(i // 64, 0) + n
        words = [w for w in s.split() if not w.startswith("@")]
        op = words[0].split(".")[0] if words else "?"
        ops[op] = ops.get(op, 0) + n
    print("samples per 64-instruction region (>= 1%):",
          " ".join(f"[{k * 64}]{100 * v / total:.1f}%" for k, v in sorted(regions.items()) if v / total >= 0.01))
    print("by opcode:", ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:12]))
    for i, n, s, why in sorted(body, key=lambda t: -t[1])[:top]:
        print(f"{i:6d} {100 * n / total:5.1f}% {s[:80]:80s} " + " ".join(f"{k}={v:.0f}" for v, k in why))
    return 0


if __name__ == "__main__":
    sys.exit(main())
