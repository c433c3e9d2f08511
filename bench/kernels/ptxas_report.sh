#!/usr/bin/env bash
# Register / spill report and load widths of the GEMV kernels (no GPU needed):
#   bench/kernels/ptxas_report.sh [outdir]
# Compiles each src/backend/cuda/gemv_*.cu for sm_90a with -Xptxas -v; when cuobjdump (and nvdisasm) are
# on PATH, also counts global loads by width and tensor-core instructions per kernel from the SASS.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/lowbit_ptxas}
mkdir -p "$out"
NVCC=${NVCC:-nvcc}
command -v "$NVCC" >/dev/null || NVCC=/usr/local/cuda/bin/nvcc
for f in src/backend/cuda/gemv_*.cu; do
  b=$(basename "$f" .cu)
  "$NVCC" -DLOWBIT_HAVE_CUDA=1 -Iinclude -Isrc -O3 -DNDEBUG -std=c++20 --expt-relaxed-constexpr \
    -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -c "$f" -o "$out/$b.o" 2>"$out/$b.ptxas" || { cat "$out/$b.ptxas"; exit 1; }
  echo "== $b"
  # kernel name, registers, stack/spills on one line
  awk '/Compiling entry function/{n=$7; gsub(/[\x27]/,"",n)} /stack frame/{s=$0} /Used [0-9]+ registers/{print n, $5, "regs |", s}' \
    "$out/$b.ptxas" | sed -E 's/_ZN6lowbit4cuda//; s/ +/ /g'
  if command -v cuobjdump >/dev/null; then
    cuobjdump -sass "$out/$b.o" >"$out/$b.sass" 2>&1 &&
      awk '/Function :/{if(n)print n, c; n=$3; c=""} /LDG|HMMA|LDL|STL/{match($0,/(LDG|HMMA|LDL|STL)[.A-Z0-9]*/); k=substr($0,RSTART,RLENGTH); cnt[n,k]++}
           END{for (i in cnt){split(i,p,SUBSEP); print p[1], p[2], cnt[i]}}' "$out/$b.sass" | sed 's/_ZN6lowbit4cuda//' | sort
  fi
done
