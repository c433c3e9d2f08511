#!/usr/bin/env bash
# A/B of environment settings on the GPU machine: one `lowbit bench --settings` run, in which each format's
# model is built and uploaded once and then measured under every setting in turn (the graph re-captured
# under each); prints each row's TPS / TTFT / TPOT / % of BW under its setting (docs/device.md).
#
#   bench/ab.sh "LOWBIT_GEMV_IMMA=0" "LOWBIT_GEMV_IMMA=1" ...   a setting: space-separated VAR=value (or "")
# Environment: BUILD=.carry/bin, OUT=out, FORMATS=bf16,int8,int4, REPS=1, NEW=200, AB_TIMEOUT=540,
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
settings=""
i=0
for s in "$@"; do
  [ $i -gt 0 ] && settings="$settings;"
  settings="$settings$s"
  i=$((i + 1))
done
[ $# -le 1 ] && [ -z "${1:-}" ] && settings=""  # one setting, the defaults: a plain run
tag=${TAG:-ab}
# shellcheck disable=SC2086  # ARGS is a list of words
timeout "${AB_TIMEOUT:-540}" "$BUILD/lowbit" bench --formats "${FORMATS:-bf16,int8,int4}" --reps "${REPS:-1}" \
  --new-tokens "${NEW:-200}" ${settings:+--settings "$settings"} --md "$OUT/$tag.md" ${ARGS:-} \
  >"$OUT/$tag.out" 2>"$OUT/$tag.err"
rc=$?
# progress lines end in carriage returns; a row's result follows its last one
# a knob's warning (lowbit: warning: ...) may cut a row's progress line in two: printed once, then cut out
perl -ne 'print "  $1\n" while /(lowbit: warning: [^\r\n]*)/g' "$OUT/$tag.err" | sort -u
perl -0pe 's/lowbit: warning: [^\n]*\n//g' "$OUT/$tag.err" | tr '\r' '\n' |
  awk '/^bench: read bandwidth/ { print "  " substr($0, 8) }
  /^bench \[/ && /tok\/s|error/ { print "  " $0 }'
[ $rc -eq 0 ] || echo "   (exit $rc; log $OUT/$tag.err)"
# the per-row tables of --timeline / --profile (the survey's own table is left in the file)
awk '/^(step timeline|per-kernel time|the latest-exiting)/ { on = 1 } on { print } /^$/ { on = 0 }' "$OUT/$tag.out"
exit 0
