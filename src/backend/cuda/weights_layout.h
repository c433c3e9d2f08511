// The GPU weight layout: how a canonical QTensor (format.h) is repacked for the batch-1..8 GEMV kernels,
// in pure C++ so that the repack, its inverse and the element decoders are tested on the CPU.
//
// Plain formats (f32, bf16, fp16): rows back to back, each padded to a multiple of 16 bytes.
//
// Every other format: rows in tiles of 16 (rows padded to a multiple of 16), the columns of a tile cut
// into packets of PC columns (K padded to a multiple of PC). A packet is what one warp decodes into the
// A operands of the tensor-core instruction mma.m16n8k16 (fp16 in, fp32 accumulate) for PC/16 k-steps:
// lane (g = lane/4, t = lane%4) holds, per k-step s, the 8 elements
//   reg 0: row g,   cols 16s+2t, +1      reg 2: row g,   cols 16s+2t+8, +9
//   reg 1: row g+8, cols 16s+2t, +1      reg 3: row g+8, cols 16s+2t+8, +9
// (first column in the low fp16 half). A lane's share of a packet is PW 16-byte words; they are stored
// [tile][packet][word j][lane] so that each 16-byte load of a warp reads 512 contiguous bytes. Inside a
// lane's words the codes sit where a few bit operations turn them into fp16 pairs (see gemv_decode.h).
// Scales are a second stream in tile order (the two rows g, g+8 a lane needs side by side); per-tensor
// and per-row scales become one fp32 per row, so that tensors can be concatenated along rows.
// docs/cuda-kernels.md describes every layout with the byte counts.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "formats/format.h"
#include "formats/minifloat.h"
#include "util/half.h"
#include "util/hd.h"

namespace lowbit {
struct QTensor;
}

namespace lowbit::cuda {

// The kernel family of a format: the element decoder and the scale scheme (int4 and int4-hqq share one).
enum class GpuCodec : uint8_t {
  PlainF32, PlainBF16, PlainF16,    // scalar fp32 kernel
  I8, E4M3, E5M2, E3M2, E2M3,       // per-row fp32 multiplier (RowF32 or the tensor scale)
  U4, U2, U1,                       // group affine: x = q * s + m, bf16 s and m per group
  T2, T5,                           // ternary: (code - 1) * gamma
  MxE4M3, MxE5M2, MxE3M2, MxE2M3, MxE2M1, MxI8,  // one E8M0 scale per 32 columns
  NvE2M1,                           // NVFP4: E4M3 scale per 16 columns, row value S_enc divides
};
constexpr int kNumGpuCodecs = int(GpuCodec::NvE2M1) + 1;
// X(codec) for every codec above (dispatch tables).
#define LB_FOR_EACH_GPU_CODEC(X)                                                                          \
  X(PlainF32) X(PlainBF16) X(PlainF16) X(I8) X(E4M3) X(E5M2) X(E3M2) X(E2M3) X(U4) X(U2) X(U1) X(T2) X(T5) \
  X(MxE4M3) X(MxE5M2) X(MxE3M2) X(MxE2M3) X(MxE2M1) X(MxI8) X(NvE2M1)

enum class ScaleKind : uint8_t { None, Row, Affine, Mx, Nv };

struct CodecInfo {
  int pks;      // k-steps (16 columns) per packet; 0 for plain formats
  int pw;       // 16-byte words per lane per packet
  ScaleKind scale;
  float factor; // the decoded fp16 values times this are the element values (power of two: exact)
  int esize;    // plain formats: bytes per element
};

LB_HD constexpr CodecInfo codec_info(GpuCodec c) {
  switch (c) {
    case GpuCodec::PlainF32: return {0, 0, ScaleKind::None, 1.0f, 4};
    case GpuCodec::PlainBF16: return {0, 0, ScaleKind::None, 1.0f, 2};
    case GpuCodec::PlainF16: return {0, 0, ScaleKind::None, 1.0f, 2};
    case GpuCodec::I8: return {2, 1, ScaleKind::Row, 1.0f, 1};
    case GpuCodec::E4M3: return {2, 1, ScaleKind::Row, 1.0f, 1};
    case GpuCodec::E5M2: return {2, 1, ScaleKind::Row, 1.0f, 1};
    case GpuCodec::E3M2: return {8, 3, ScaleKind::Row, 4096.0f, 1};      // fp16 exponent bias 15 vs 3
    case GpuCodec::E2M3: return {8, 3, ScaleKind::Row, 16384.0f, 1};     // bias 15 vs 1
    case GpuCodec::U4: return {4, 1, ScaleKind::Affine, 1.0f, 1};
    case GpuCodec::U2: return {8, 1, ScaleKind::Affine, 1.0f, 1};
    case GpuCodec::U1: return {16, 1, ScaleKind::Affine, 1.0f, 1};
    case GpuCodec::T2: return {8, 1, ScaleKind::Row, 1.0f, 1};
    case GpuCodec::T5: return {10, 1, ScaleKind::Row, 1.0f, 1};
    case GpuCodec::MxE4M3: return {2, 1, ScaleKind::Mx, 1.0f, 1};
    case GpuCodec::MxE5M2: return {2, 1, ScaleKind::Mx, 1.0f, 1};
    case GpuCodec::MxE3M2: return {8, 3, ScaleKind::Mx, 4096.0f, 1};
    case GpuCodec::MxE2M3: return {8, 3, ScaleKind::Mx, 16384.0f, 1};
    case GpuCodec::MxE2M1: return {4, 1, ScaleKind::Mx, 16384.0f, 1};    // bias 15 vs 1
    case GpuCodec::MxI8: return {2, 1, ScaleKind::Mx, 1.0f / 64.0f, 1};  // MXINT8 element k means k/64
    case GpuCodec::NvE2M1: return {4, 1, ScaleKind::Nv, 16384.0f, 1};
  }
  return {0, 0, ScaleKind::None, 1.0f, 0};
}

// The codec of a registry format.
GpuCodec codec_for(Format f);
const char* codec_name(GpuCodec c);
LB_HD constexpr bool is_plain(GpuCodec c) { return codec_info(c).pks == 0; }
// Columns per packet.
LB_HD constexpr int packet_cols(GpuCodec c) { return 16 * codec_info(c).pks; }

// Device-copyable description of a repacked weight (pointers are host or device pointers).
struct GpuWeightView {
  GpuCodec codec = GpuCodec::PlainF32;
  int64_t rows = 0;       // physical rows holding data (for a gate/up pair: 2 * ff, interleaved by 8)
  int64_t rows_pad = 0;   // multiple of 16
  int64_t cols = 0;       // K
  int64_t cols_pad = 0;   // plain: K; packets: multiple of packet_cols
  int group = 0;          // affine group size (power of two >= 32); MX 32; NVFP4 16
  int64_t row_stride = 0; // plain formats: bytes per row (multiple of 16)
  int64_t n_packets = 0;  // packets per tile row (cols_pad / packet_cols)
  bool glu = false;       // rows interleave a gate/up pair: tile r = gate rows 8r..8r+7, then up rows 8r..8r+7
  int64_t ff = 0;         // glu: rows of each half (the SwiGLU output width)
  const uint8_t* codes = nullptr;   // plain rows, or the packet stream [tile][packet][word][lane] x 16 B
  const uint8_t* scales = nullptr;  // scale stream (Affine / Mx / Nv), see scale_index_*()
  const float* row_scale = nullptr; // [rows_pad] per-row value (Row: multiplier; Nv: S_enc, a divisor)

  LB_HD int64_t n_tiles() const { return rows_pad / 16; }
  // Affine: groups per tile row (the last may be partly padding); Mx/Nv: 32-column units per tile row.
  LB_HD int64_t scale_units() const { return scale_units(codec_info(codec).scale); }
  // The same for a scale kind known at compile time: kernels call this one, since codec_info of a runtime
  // codec compiles to a table in global memory (a dependent load in the prologue of every launch).
  LB_HD int64_t scale_units(ScaleKind sk) const {
    return sk == ScaleKind::Affine ? (cols_pad + group - 1) / group : cols_pad / 32;
  }
};

// Physical row of logical row r (identity unless glu; logical order of a pair is gate rows then up rows).
LB_HD int64_t physical_row(const GpuWeightView& w, int64_t r) {
  if (!w.glu) return r;
  const bool up = r >= w.ff;
  const int64_t i = up ? r - w.ff : r;
  return 16 * (i / 8) + (up ? 8 : 0) + i % 8;
}

// ---- where an element's code lives --------------------------------------------------------------------

// Index (in 32-bit words) of word `w` of lane `lane`'s share of packet `p` of tile `tile`.
LB_HD int64_t packet_word_index(const GpuWeightView& v, int64_t tile, int64_t p, int w, int lane) {
  const int pw = codec_info(v.codec).pw;
  return (((tile * v.n_packets + p) * pw + w / 4) * 32 + lane) * 4 + (w % 4);
}

// The fragment position of element (row i of a tile, column kk of a packet).
struct FragPos {
  int lane, s, reg, half;
};
LB_HD FragPos frag_pos(int i, int kk) {
  const int g = i % 8, h = i / 8, s = kk / 16, c = kk % 16;
  return {4 * g + (c % 8) / 2, s, h + 2 * (c / 8), c % 2};
}

// fp6 crumb slots: the (mag bit 4, sign) pair of an element sits at bits (a, a + d) of a 16-bit half so
// that one rotation puts both where fp16 wants them (E3M2: bits 12 and 15; E2M3: 11 and 15).
LB_HD constexpr int fp6_slot(bool e3m2, int q) {
  constexpr int kE3M2[8] = {0, 2, 4, 6, 8, 10, 12, 14};  // {a, a+3} tile Z_16 (14 wraps to 1)
  constexpr int kE2M3[8] = {0, 8, 1, 9, 2, 10, 3, 11};   // {a, a+4} tile Z_16
  return e3m2 ? kE3M2[q] : kE2M3[q];
}
// E2M1: the 3 magnitude bits of pair q sit at bits 3q..3q+2 of each half, the sign at kE2M1Sign[q].
LB_HD constexpr int e2m1_sign_bit(int q) {
  constexpr int kSign[4] = {13, 14, 12, 15};
  return kSign[q];
}

// One bit field of an element's code inside a lane's packet words.
struct CodeField {
  int word;       // word index inside the lane's packet share
  int bit;        // first bit
  int nbits;
  int code_shift; // where the field goes in the code
};

// Fields of the element at fragment position (s, reg, half) for bit-field codecs (all but T5 and plain).
// Returns the number of fields. The 8-bit integer codecs store code ^ 0x80 (see gemv_decode.h).
LB_HD int code_fields(GpuCodec c, int s, int reg, int half, CodeField* f) {
  switch (c) {
    case GpuCodec::I8: case GpuCodec::E4M3: case GpuCodec::E5M2:
    case GpuCodec::MxE4M3: case GpuCodec::MxE5M2: case GpuCodec::MxI8:
      f[0] = {2 * s + reg / 2, ((reg % 2) * 2 + half) * 8, 8, 0};
      return 1;
    case GpuCodec::U4:
      f[0] = {s, half * 16 + (reg / 2) * 8 + (reg % 2) * 4, 4, 0};
      return 1;
    case GpuCodec::U2: case GpuCodec::T2: {
      const int P = (s % 2) * 4 + reg;
      f[0] = {s / 2, half * 16 + (P / 4) * 8 + (P % 4) * 2, 2, 0};
      return 1;
    }
    case GpuCodec::U1: {
      const int P = (s % 4) * 4 + reg;
      f[0] = {s / 4, half * 16 + (P / 8) * 8 + (P % 8), 1, 0};
      return 1;
    }
    case GpuCodec::MxE2M1: case GpuCodec::NvE2M1:
      f[0] = {s, half * 16 + 3 * reg, 3, 0};
      f[1] = {s, half * 16 + e2m1_sign_bit(reg), 1, 3};
      return 2;
    case GpuCodec::E3M2: case GpuCodec::E2M3: case GpuCodec::MxE3M2: case GpuCodec::MxE2M3: {
      const bool e3 = c == GpuCodec::E3M2 || c == GpuCodec::MxE3M2;
      const int P = 4 * s + reg, a = fp6_slot(e3, P % 8), d = e3 ? 3 : 4;
      f[0] = {s, half * 16 + 4 * reg, 4, 0};                  // magnitude bits 0..3
      f[1] = {8 + P / 8, (a + 16 * half) % 32, 1, 4};         // magnitude bit 4
      f[2] = {8 + P / 8, (a + d + 16 * half) % 32, 1, 5};     // sign
      return 3;
    }
    default: return 0;
  }
}

// T5: byte and digit of the element at fragment position (s, reg, half): lane bytes 0..7 carry row g's
// elements, bytes 8..15 row g+8's, in k order of the lane's pairs, 5 trits per byte (base 3, digit 0 first).
LB_HD void t5_pos(int s, int reg, int half, int* byte, int* digit) {
  const int h = reg % 2, colhi = reg / 2;
  const int e = 2 * (2 * s + colhi) + half;
  *byte = 8 * h + e / 5;
  *digit = e % 5;
}

LB_HD uint32_t read_word(const uint8_t* base, int64_t word_index) {
  uint32_t w;
#if defined(__CUDA_ARCH__)
  w = reinterpret_cast<const uint32_t*>(base)[word_index];
#else
  std::memcpy(&w, base + 4 * word_index, 4);
#endif
  return w;
}

// The canonical code (as format.h / codec.h get_code return it; T5: the trit digit 0..2) of element
// (physical row r, column k) of a packet-layout weight.
LB_HD uint32_t gpu_get_code(const GpuWeightView& v, int64_t r, int64_t k) {
  const int pc = packet_cols(v.codec);
  const int64_t tile = r / 16, p = k / pc;
  const FragPos fp = frag_pos(int(r % 16), int(k % pc));
  if (v.codec == GpuCodec::T5) {
    int byte, digit;
    t5_pos(fp.s, fp.reg, fp.half, &byte, &digit);
    uint32_t b = (read_word(v.codes, packet_word_index(v, tile, p, byte / 4, fp.lane)) >> (8 * (byte % 4))) & 0xffu;
    for (int i = 0; i < digit; ++i) b /= 3;
    return b % 3;
  }
  CodeField f[3];
  const int nf = code_fields(v.codec, fp.s, fp.reg, fp.half, f);
  uint32_t code = 0;
  for (int i = 0; i < nf; ++i) {
    const uint32_t w = read_word(v.codes, packet_word_index(v, tile, p, f[i].word, fp.lane));
    code |= ((w >> f[i].bit) & ((1u << f[i].nbits) - 1u)) << f[i].code_shift;
  }
  if (v.codec == GpuCodec::I8 || v.codec == GpuCodec::MxI8) code ^= 0x80u;
  return code;
}

// Scale stream indices (Affine: 32-bit words; Mx, Nv: bytes) of row i (0..15) of a tile.
LB_HD int64_t scale_index_affine(const GpuWeightView& v, int64_t tile, int64_t group, int i) {
  return ((tile * v.scale_units() + group) * 8 + i % 8) * 2 + i / 8;
}
LB_HD int64_t scale_index_mx(const GpuWeightView& v, int64_t tile, int64_t block, int i) {
  return ((tile * v.scale_units() + block) * 8 + i % 8) * 2 + i / 8;
}
LB_HD int64_t scale_index_nv(const GpuWeightView& v, int64_t tile, int64_t block16, int i) {
  return (((tile * v.scale_units() + block16 / 2) * 8 + i % 8) * 2 + block16 % 2) * 2 + i / 8;
}

LB_HD float e2m1_value(uint32_t code) { return FP4E2M1::decode(code); }

// The value of element (physical row r, column k), computed exactly as dequantize_row() computes it
// (formats/codec.cpp): element value times the scale with the same roundings.
LB_HD float gpu_decode_element(const GpuWeightView& v, int64_t r, int64_t k) {
  switch (v.codec) {
    case GpuCodec::PlainF32: return bits_f32(read_word(v.codes + r * v.row_stride, k));
    case GpuCodec::PlainBF16:
    case GpuCodec::PlainF16: {
      const uint8_t* p = v.codes + r * v.row_stride + 2 * k;
      const uint16_t h = uint16_t(p[0] | (p[1] << 8));
      return v.codec == GpuCodec::PlainBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    default: break;
  }
  const uint32_t code = gpu_get_code(v, r, k);
  const int64_t tile = r / 16;
  const int i = int(r % 16);
  switch (v.codec) {
    case GpuCodec::I8: return float(int8_t(uint8_t(code))) * v.row_scale[r];
    case GpuCodec::E4M3: return FP8E4M3::decode(code) * v.row_scale[r];
    case GpuCodec::E5M2: return FP8E5M2::decode(code) * v.row_scale[r];
    case GpuCodec::E3M2: return FP6E3M2::decode(code) * v.row_scale[r];
    case GpuCodec::E2M3: return FP6E2M3::decode(code) * v.row_scale[r];
    case GpuCodec::T2:
    case GpuCodec::T5: return float(int(code) - 1) * v.row_scale[r];
    case GpuCodec::U4: case GpuCodec::U2: case GpuCodec::U1: {
      const uint32_t sm = read_word(v.scales, scale_index_affine(v, tile, k / v.group, i));
      return fmaf(float(code), bf16_to_f32(uint16_t(sm & 0xffffu)), bf16_to_f32(uint16_t(sm >> 16)));
    }
    default: break;
  }
  if (v.codec == GpuCodec::NvE2M1) {
    const uint8_t sb = v.scales[scale_index_nv(v, tile, k / 16, i)];
    return e2m1_value(code) * (FP8E4M3::decode(sb) / v.row_scale[r]);
  }
  const float x = E8M0::decode(v.scales[scale_index_mx(v, tile, k / 32, i)]);
  switch (v.codec) {
    case GpuCodec::MxE4M3: return FP8E4M3::decode(code) * x;
    case GpuCodec::MxE5M2: return FP8E5M2::decode(code) * x;
    case GpuCodec::MxE3M2: return FP6E3M2::decode(code) * x;
    case GpuCodec::MxE2M3: return FP6E2M3::decode(code) * x;
    case GpuCodec::MxE2M1: return e2m1_value(code) * x;
    case GpuCodec::MxI8: return MXInt8Elem::decode(uint8_t(code)) * x;
    default: return 0.0f;
  }
}

// ---- host side ------------------------------------------------------------------------------------------

// A repacked weight in host memory (what upload() copies to the GPU).
struct GpuWeightHost {
  std::string name;
  Format fmt = Format::F32;
  GpuCodec codec = GpuCodec::PlainF32;
  int64_t rows = 0, rows_pad = 0, cols = 0, cols_pad = 0, row_stride = 0, n_packets = 0, ff = 0;
  int group = 0;
  bool glu = false;
  std::vector<uint8_t> codes;
  std::vector<uint8_t> scales;
  std::vector<float> row_scale;  // [rows_pad]; empty when the scheme has none

  GpuWeightView view() const;  // host pointers
  // Bytes one GEMV reads: codes (with padding) + scales + per-row values.
  size_t bytes() const { return codes.size() + scales.size() + row_scale.size() * 4; }
  int64_t logical_rows() const { return glu ? 2 * ff : rows; }
};

// Repacks a canonical tensor (throws Error for layouts the GPU does not support, e.g. a group size
// that is not a power of two).
GpuWeightHost repack_for_gpu(const QTensor& t);
// The canonical tensor back (logical row order; a gate/up pair gives gate rows then up rows). Per-row
// values that were a per-tensor scale must be equal on every row (Error otherwise).
QTensor unpack_from_gpu(const GpuWeightHost& w);
// Rows of several weights of one format and K, in order (Q|K|V). Not for gate/up pairs.
GpuWeightHost concat_rows(const std::vector<const GpuWeightHost*>& parts);
// A gate/up pair laid out for the fused SwiGLU epilogue (rows interleaved by 8 inside each tile).
GpuWeightHost concat_glu(const GpuWeightHost& gate, const GpuWeightHost& up);

}  // namespace lowbit::cuda
