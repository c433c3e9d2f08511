#!/usr/bin/env bash
# SmolLM2-135M on the GPU machine (CudaRunner.SmolLM2FollowsCpu). Its file (~94 MiB) is larger than one
# call may carry (64 MiB), and it does not compress, so it travels in two halves, in two calls made while
# the machine stays warm (ignored paths a call brought stay for the next; docs/device.md):
#   bench/smollm2-carry.sh split      here: models/SmolLM2-135M-Instruct.Q4_1.gguf -> .smol-a/, .smol-b/
#   call 1: carry [".carry.tar.xz.d", ".smol-a"]   (anything)
#   call 2: carry [".smol-b"], command: bench/smollm2-carry.sh join && LOWBIT_MODELS=$PWD/models ...
#   bench/smollm2-carry.sh join       there: the halves -> models/..., checked against its SHA-256
set -euo pipefail
cd "$(dirname "$0")/.."
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
case "${1:-}" in
  split)
    [ -f "models/$name" ] || { echo "smollm2-carry: models/$name absent (scripts/setup.sh fetches it)" >&2; exit 1; }
    rm -rf .smol-a .smol-b
    mkdir -p .smol-a .smol-b
    head -c 48M "models/$name" >.smol-a/part
    tail -c +$((48 * 1048576 + 1)) "models/$name" >.smol-b/part
    du -sh .smol-a .smol-b
    ;;
  join)
    for p in .smol-a/part .smol-b/part; do
      [ -f "$p" ] || { echo "smollm2-carry: $p absent (carried by an earlier call on a machine since released?)" >&2; exit 1; }
    done
    mkdir -p models
    cat .smol-a/part .smol-b/part >"models/$name"
    echo "$sha  models/$name" | sha256sum -c --status || { echo "smollm2-carry: checksum mismatch for models/$name" >&2; exit 1; }
    echo "smollm2-carry: models/$name ok"
    ;;
  *)
    echo "usage: bench/smollm2-carry.sh split|join" >&2
    exit 2
    ;;
esac
