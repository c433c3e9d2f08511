#!/usr/bin/env bash
# On the development machine: builds the CUDA binaries (build-device/) and gathers what a GPU run needs
# into .carry/ (git-ignored): bin/ (lowbit, lowbit_cuda_tests, lowbit_gemv_bench), models/ (stories260K,
# the Llama-3 tokenizer) and anchors/ (the PyTorch peer scripts). Then call the device with carry [".carry"]
# and `bench/device.sh ...` (docs/device.md).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared}
cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA=ON >/dev/null
ninja -C build-device -j "${JOBS:-2}" lowbit lowbit_cuda_tests lowbit_gemv_bench
mkdir -p .carry/bin .carry/models .carry/anchors
cp build-device/lowbit build-device/lowbit_cuda_tests build-device/lowbit_gemv_bench .carry/bin/
strip .carry/bin/* 2>/dev/null || true  # host symbols only: the device code stays (carry limit 64 MiB)
cp -r "$shared/models/stories260K" "$shared/models/llama3-tokenizer" .carry/models/
cp "$shared"/anchors/*.py .carry/anchors/
du -sh .carry
