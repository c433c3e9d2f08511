#!/usr/bin/env bash
# On the development machine: builds the CUDA binaries (build-device/) and gathers what a GPU run needs
# into .carry/ (git-ignored): bin/ (lowbit, lowbit_cuda_tests, lowbit_gemv_bench), models/ (stories260K,
# the Llama-3 tokenizer) and anchors/ (the PyTorch peer scripts). Then call the device with carry [".carry"]
# and `bench/device.sh ...` (docs/device.md).
# .carry grows past the 64 MiB a call may carry once it holds more (e.g. a second build for an A/B of two
# commits under .carry/old, or AB_KNOBS=1 below): PACK=1 also writes .carry.tar.xz.d/carry.tar.xz (~12-16 MB); carry
# [".carry.tar.xz.d"] instead, and bench/device.sh / bench/ab.sh unpack it into .carry first.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared}
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA=ON -DLOWBIT_GEMV_AB_KNOBS=OFF >/dev/null
ninja -C build-device -j "${JOBS:-2}" lowbit lowbit_cuda_tests lowbit_gemv_bench lowbit_memqueue_bench
mkdir -p .carry/bin .carry/models .carry/anchors
cp build-device/lowbit build-device/lowbit_cuda_tests build-device/lowbit_gemv_bench build-device/lowbit_memqueue_bench .carry/bin/
# AB_KNOBS=1: also a build with -DLOWBIT_GEMV_AB_KNOBS=ON (the stream MMA kernel reads LOWBIT_GEMV_REST,
# _TRIGGER and LOWBIT_PDL_WAIT at run time) in .carry/knobs/, for `BUILD=.carry/knobs bench/ab.sh "" "VAR=..."`
if [ "${AB_KNOBS:-0}" = 1 ]; then
  cmake -S . -B build-device-knobs -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA=ON -DLOWBIT_TESTS=OFF \
    -DLOWBIT_GEMV_AB_KNOBS=ON >/dev/null
  ninja -C build-device-knobs -j "${JOBS:-2}" lowbit
  mkdir -p .carry/knobs && cp build-device-knobs/lowbit .carry/knobs/
fi
strip .carry/bin/* .carry/knobs/* 2>/dev/null || true  # host symbols only: the device code stays (carry limit 64 MiB)
cp -r "$shared/models/stories260K" "$shared/models/llama3-tokenizer" .carry/models/
cp "$shared"/anchors/*.py .carry/anchors/
du -sh .carry
if [ "${PACK:-0}" = 1 ]; then
  mkdir -p .carry.tar.xz.d
  tar -C .carry -cf - . | xz -T2 -6 >.carry.tar.xz.d/carry.tar.xz
  du -sh .carry.tar.xz.d
fi
