// Fast chunk decoders for the CPU kernels: the same values as formats/codec.h (bit for bit), eight
// elements per step with AVX2 where the build targets it.
#pragma once
#include <cstdint>

#include "formats/qtensor.h"

namespace lowbit::cpu {

// The longest span decode_chunk takes, and the most blocks (of 16) it spans.
inline constexpr int64_t kMaxChunk = 1024;
inline constexpr int64_t kMaxChunkBlocks = kMaxChunk / 16;

// Columns [k0, k1) of row n of W into out (k0 a multiple of 32): the fully decoded values (scaled) or
// only the element values before any scale (the activation kernels apply the scales themselves).
void decode_chunk(const QTensor& W, int64_t n, int64_t k0, int64_t k1, bool scaled, float* out);

// The unsigned codes of a group-affine row (U4/U2/U1), one byte each, columns [0, K).
void unpack_uint_codes(ElemType e, const uint8_t* row, int64_t K, uint8_t* out);

}  // namespace lowbit::cpu
