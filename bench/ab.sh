#!/usr/bin/env bash
# A/B of environment settings on the GPU machine: runs `lowbit bench` once per setting (same formats, same
# process order) and prints each row's TPS / TTFT / TPOT / % of BW under its setting (docs/device.md).
#
#   bench/ab.sh "LOWBIT_GEMV_IMMA=0" "LOWBIT_GEMV_IMMA=1" ...   a setting: space-separated VAR=value (or "")
# Environment: BUILD=.carry/bin, OUT=out, FORMATS=bf16,int8,int4, REPS=1, NEW=200, AB_TIMEOUT=120 (per setting),
# ARGS="..." more `lowbit bench` arguments (with --timeline or --profile their tables are printed too)
set -uo pipefail
cd "$(dirname "$0")/.."
# a packed carry (bench/prepare-carry.sh PACK=1): unpack it once
if [ ! -d .carry/bin ] && [ -f .carry.tar.xz.d/carry.tar.xz ]; then
  mkdir -p .carry && xz -dc .carry.tar.xz.d/carry.tar.xz | tar -C .carry -xf -
fi
BUILD=${BUILD:-.carry/bin}
OUT=${OUT:-out}
mkdir -p "$OUT"
i=0
for setting in "$@"; do
  i=$((i + 1))
  echo "== [$i] ${setting:-(defaults)}"
  # shellcheck disable=SC2086  # the setting is a list of VAR=value words
  env $setting timeout "${AB_TIMEOUT:-120}" "$BUILD/lowbit" bench --formats "${FORMATS:-bf16,int8,int4}" \
    --reps "${REPS:-1}" --new-tokens "${NEW:-200}" ${ARGS:-} >"$OUT/ab_$i.out" 2>"$OUT/ab_$i.err"
  rc=$?
  # progress lines end in carriage returns; a row's result follows its last one
  tr '\r' '\n' <"$OUT/ab_$i.err" | awk '/^bench: read bandwidth/ { print "  " substr($0, 8) }
    /^bench \[/ { label = substr($0, 7, index($0, ": ") - 7) }
    /tok\/s/ { print "  " label ": " $0 }'
  [ $rc -eq 0 ] || echo "   (exit $rc; log $OUT/ab_$i.err)"
  # the per-row tables of --timeline / --profile (the survey's own table is left in the file)
  awk '/^(step timeline|per-kernel time)/ { on = 1 } on { print } /^$/ { on = 0 }' "$OUT/ab_$i.out"
done
