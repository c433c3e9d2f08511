#!/usr/bin/env python3
"""The speed goals of the CUDA engine against one survey run, with PyTorch's figures from the same device call.

    bench/goal_table.py SURVEY.json [ANCHORS.txt]     markdown table on stdout (bench/device.sh stage `goal`)
    bench/goal_table.py --self-test                    checks the parsing and the verdicts (CTest runs it)

Goals (docs/benchmarks/h200.md; batch 1, graph mode, % of the read bandwidth measured in the same run, each
format's actual bytes per token): bf16 >= 90 %, int8 >= 85 %, int4 g128 >= 80 %, every other weight-only
format >= 75 %. They are the H200's: the table says which GPU the run was on, and a run on another GPU meets
or misses them only for that GPU. ANCHORS.txt is the output of ../shared/anchors/gptfast_style_anchor.py: its
lines `<format>/<mode>: {...}` give PyTorch's tok/s for bf16, int8 and int4; the ratio is lowbit's TPS over
PyTorch's TPS.
"""
import ast
import json
import re
import sys

GOALS = {"bf16": 90.0, "int8": 85.0, "int4": 80.0}  # % of the read bandwidth; int4 with groups of 128
OTHER_GOAL = 75.0


def goal_for(weights, group):
    if weights == "int4" and group not in (0, 128):
        return OTHER_GOAL  # the goal names int4 g128
    return GOALS.get(weights, OTHER_GOAL)


def scalar(v):
    """A survey figure: a number, or {median, min, max}."""
    return v["median"] if isinstance(v, dict) else v


def parse_anchors(text):
    """{format: tps} from the anchor script's lines `bf16/reduce-overhead: {'tps': 162.3, ...}`."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+)/([\w-]+): (\{.*\})\s*$", line.strip())
        if not m:
            continue
        try:
            d = ast.literal_eval(m.group(3))
        except (ValueError, SyntaxError):
            continue
        if isinstance(d, dict) and isinstance(d.get("tps"), (int, float)):
            out[m.group(1)] = float(d["tps"])
    return out


def table(survey, anchors):
    rows = [r for r in survey.get("rows", []) if r.get("acts") == "bf16" and r.get("mode") == "graph"]
    lines = [
        f"speed goals: {survey.get('device', '?')}, driver {survey.get('driver', '?')}, commit "
        f"{survey.get('commit', '?')}, {survey.get('date', '?')}; read bandwidth {survey.get('read_bw_gbps', 0):.0f} GB/s",
        "",
        "| weights | TPS tok/s | decode tok/s | % of BW | goal | met | PyTorch tok/s | lowbit / PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    met = 0
    for r in rows:
        w = r["weights"] + (f" g{r['group']}" if r.get("group") else "")
        goal = goal_for(r["weights"], r.get("group", 0))
        if r.get("error"):
            lines.append(f"| {w} | error: {r['error']} | | | {goal:.0f} % | no | | |")
            continue
        tps, pct = scalar(r["tps"]), scalar(r["pct_of_read_bw"])
        ok = pct >= goal
        met += ok
        peer = anchors.get(r["weights"]) if r.get("group", 0) in (0, 128) else None
        lines.append(
            f"| {w} | {tps:.1f} | {scalar(r['decode_tps']):.1f} | {pct:.1f} | {goal:.0f} % | {'yes' if ok else 'no'} | "
            + (f"{peer:.1f} | {tps / peer:.2f}x |" if peer else "| |"))
    lines.append("")
    lines.append(f"goals met: {met} of {len(rows)} rows")
    return "\n".join(lines)


def self_test():
    survey = {
        "device": "GPU", "driver": "1", "commit": "abc", "date": "today", "read_bw_gbps": 4000.0,
        "rows": [
            {"acts": "bf16", "weights": "bf16", "group": 0, "mode": "graph", "tps": 250.0,
             "decode_tps": {"median": 252.0}, "pct_of_read_bw": {"median": 91.0}},
            {"acts": "bf16", "weights": "int4", "group": 128, "mode": "graph", "tps": {"median": 700.0},
             "decode_tps": 710.0, "pct_of_read_bw": 79.9},
            {"acts": "bf16", "weights": "int4", "group": 64, "mode": "graph", "tps": 600.0, "decode_tps": 610.0,
             "pct_of_read_bw": 76.0},
            {"acts": "bf16", "weights": "fp8-e4m3", "group": 0, "mode": "graph", "tps": 300.0, "decode_tps": 305.0,
             "pct_of_read_bw": 74.9},
            {"acts": "bf16", "weights": "int8", "group": 0, "mode": "graph", "error": "out of memory"},
            {"acts": "bf16", "weights": "int8", "group": 0, "mode": "eager", "tps": 1.0, "decode_tps": 1.0,
             "pct_of_read_bw": 99.0},
        ],
    }
    anchors = parse_anchors("loading...\nbf16/reduce-overhead: {'tps': 200.0, 'decode_tps': 201.0}\n"
                            "int4/reduce-overhead: {'tps': 350.0}\nint8/reduce-overhead: not a dict\n"
                            "RESULT {\"bf16:reduce-overhead\": {\"tps\": 200.0}}\n")
    assert anchors == {"bf16": 200.0, "int4": 350.0}, anchors
    t = table(survey, anchors)
    assert "| bf16 | 250.0 | 252.0 | 91.0 | 90 % | yes | 200.0 | 1.25x |" in t, t
    assert "| int4 g128 | 700.0 | 710.0 | 79.9 | 80 % | no | 350.0 | 2.00x |" in t, t
    assert "| int4 g64 | 600.0 | 610.0 | 76.0 | 75 % | yes | | |" in t, t  # other groups: the 75 % goal, no peer
    assert "| fp8-e4m3 | 300.0 | 305.0 | 74.9 | 75 % | no | | |" in t, t
    assert "| int8 | error: out of memory | | | 85 % | no | | |" in t, t
    assert "99.0" not in t, t  # eager rows are not the goal's
    assert "goals met: 2 of 5 rows" in t, t
    print("goal_table self-test: ok")


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            survey = json.load(f)
    except (OSError, ValueError) as e:
        print(f"goal_table: cannot read the survey {argv[1]}: {e}", file=sys.stderr)
        return 1
    anchors = {}
    if len(argv) == 3:
        try:
            with open(argv[2]) as f:
                anchors = parse_anchors(f.read())
        except OSError as e:
            print(f"goal_table: no PyTorch figures ({argv[2]}: {e})", file=sys.stderr)
    print(table(survey, anchors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
