// The GPU weight layout on the CPU: repack -> unpack is the identity for every format and odd shapes;
// every element decoded from the GPU layout equals dequantize_row() bit for bit; the tensor-core fragment
// decoders (gemv_decode.h, intrinsics emulated) agree with the element codes at every fragment position;
// concat_rows and concat_glu keep every row's values; unsupported layouts are errors.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/gemv_decode.h"
#include "backend/cuda/weights_layout.h"
#include "formats/codec.h"
#include "formats/format.h"
#include "formats/minifloat.h"
#include "formats/qtensor.h"
#include "formats/random_codes.h"
#include "util/error.h"
#include "util/half.h"
#include "util/rng.h"

namespace lowbit::cuda {
namespace {

bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, 4) == 0;
}

bool same_buffer(const Buffer& a, const Buffer& b) {
  return a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0);
}

// The codes with the bits of a row's last byte beyond column K cleared (random_qtensor fills them; no
// decode reads them, and the GPU layout does not keep them).
std::vector<uint8_t> canonical_codes(const QTensor& t) {
  const size_t rb = t.row_bytes();
  std::vector<uint8_t> out(rb * size_t(t.rows), 0);
  const ElemType e = t.info().elem;
  for (int64_t r = 0; r < t.rows; ++r) {
    if (!is_subbyte(e) && e != ElemType::T5) {
      std::memcpy(out.data() + rb * size_t(r), t.row_codes(r), rb);
      continue;
    }
    for (int64_t j = 0; j < t.cols; ++j) put_code(out.data() + rb * size_t(r), e, j, get_code(t.row_codes(r), e, j));
  }
  return out;
}

std::vector<Format> weight_formats() {
  std::vector<Format> out;
  for (const FormatInfo& fi : all_formats())
    if (fi.weight_ok) out.push_back(fi.id);
  return out;
}

// Random valid codes (random_codes.h) or, for a second flavour, quantized Gaussian data.
QTensor make_tensor(Format f, int64_t rows, int64_t cols, uint64_t seed, bool quantized) {
  if (!quantized) return random_qtensor(f, rows, cols, 0, seed, "w" + std::to_string(seed));
  Rng rng(seed);
  std::vector<float> x(size_t(rows * cols));
  for (float& v : x) v = 0.05f * rng.normal();
  return quantize(x.data(), rows, cols, f, QuantOptions{}, "q" + std::to_string(seed));
}

// Every logical row of `w` decodes exactly as row `src_row` of `ref`.
void expect_rows_decode_as(const GpuWeightHost& w, int64_t row0, const QTensor& ref, const std::string& what) {
  const GpuWeightView v = w.view();
  std::vector<float> row(size_t(ref.cols));
  for (int64_t r = 0; r < ref.rows; ++r) {
    dequantize_row(ref, r, row.data());
    const int64_t pr = physical_row(v, row0 + r);
    for (int64_t k = 0; k < ref.cols; ++k) {
      const float got = gpu_decode_element(v, pr, k);
      if (!same_float(got, row[size_t(k)])) {
        ADD_FAILURE() << what << " " << format_name(ref.fmt) << " [" << ref.rows << ", " << ref.cols << "] row " << r
                      << " col " << k << ": GPU layout decodes " << got << ", dequantize_row gives " << row[size_t(k)];
        return;
      }
    }
  }
}

// The element value without scales of canonical code `code` (what the fragment decoders produce,
// times CodecInfo::factor).
float elem_value(GpuCodec c, uint32_t code) {
  switch (c) {
    case GpuCodec::I8: return float(int8_t(uint8_t(code)));
    case GpuCodec::MxI8: return MXInt8Elem::decode(uint8_t(code));
    case GpuCodec::E4M3: case GpuCodec::MxE4M3: return FP8E4M3::decode(code);
    case GpuCodec::E5M2: case GpuCodec::MxE5M2: return FP8E5M2::decode(code);
    case GpuCodec::E3M2: case GpuCodec::MxE3M2: return FP6E3M2::decode(code);
    case GpuCodec::E2M3: case GpuCodec::MxE2M3: return FP6E2M3::decode(code);
    case GpuCodec::MxE2M1: case GpuCodec::NvE2M1: return FP4E2M1::decode(code);
    case GpuCodec::U4: case GpuCodec::U2: case GpuCodec::U1: return float(code);
    case GpuCodec::T2: case GpuCodec::T5: return float(int(code) - 1);
    default: return NAN;
  }
}

template <GpuCodec C>
void decode_packet_host(const uint32_t* words, uint32_t (*a)[4]) {
  constexpr int PKS = codec_info(C).pks;
  if constexpr (C == GpuCodec::T5) {
    decode_t5_packet(words, a, [](uint32_t v) { return t5_entry(v); });
  } else {
    [&]<int... S>(std::integer_sequence<int, S...>) { (decode_kstep<C, S>(words, a[S]), ...); }
    (std::make_integer_sequence<int, PKS>{});
  }
}

void decode_packet_any(GpuCodec c, const uint32_t* words, uint32_t (*a)[4]) {
  switch (c) {
#define LB_CASE(x) \
  case GpuCodec::x: decode_packet_host<GpuCodec::x>(words, a); return;
    LB_CASE(I8) LB_CASE(E4M3) LB_CASE(E5M2) LB_CASE(E3M2) LB_CASE(E2M3) LB_CASE(U4) LB_CASE(U2) LB_CASE(U1)
    LB_CASE(T2) LB_CASE(T5) LB_CASE(MxE4M3) LB_CASE(MxE5M2) LB_CASE(MxE3M2) LB_CASE(MxE2M3) LB_CASE(MxE2M1)
    LB_CASE(MxI8) LB_CASE(NvE2M1)
#undef LB_CASE
    default: FAIL() << "no fragment decoder for " << codec_name(c);
  }
}

// Every lane's packet decodes, at every fragment position inside the real rows and columns, to the
// element's value (times the codec's power-of-two factor); padding decodes to finite values.
void expect_fragments_match(const GpuWeightHost& w) {
  const GpuWeightView v = w.view();
  const CodecInfo ci = codec_info(w.codec);
  for (int64_t tile = 0; tile < v.n_tiles(); ++tile) {
    for (int64_t p = 0; p < v.n_packets; ++p) {
      for (int lane = 0; lane < 32; ++lane) {
        uint32_t words[12];
        for (int i = 0; i < 4 * ci.pw; ++i) words[i] = read_word(v.codes, packet_word_index(v, tile, p, i, lane));
        uint32_t a[16][4];
        decode_packet_any(w.codec, words, a);
        for (int s = 0; s < ci.pks; ++s)
          for (int reg = 0; reg < 4; ++reg)
            for (int half = 0; half < 2; ++half) {
              int row, col;
              a_frag_element(lane, reg, half, &row, &col);
              const int64_t r = tile * 16 + row, k = p * packet_cols(w.codec) + 16 * s + col;
              const float got = f16_to_f32(uint16_t(a[s][reg] >> (16 * half))) * ci.factor;
              if (r >= v.rows || k >= v.cols) {
                if (!std::isfinite(got)) {
                  ADD_FAILURE() << codec_name(w.codec) << ": padding at row " << r << " col " << k << " decodes to " << got;
                  return;
                }
                continue;
              }
              const float want = elem_value(w.codec, gpu_get_code(v, r, k));
              if (!same_float(got, want)) {
                ADD_FAILURE() << codec_name(w.codec) << " (" << format_name(w.fmt) << "): fragment decoder gives " << got
                              << " at row " << r << " col " << k << " (tile " << tile << " packet " << p << " lane "
                              << lane << " k-step " << s << " reg " << reg << " half " << half << "), element value "
                              << want << " (code " << gpu_get_code(v, r, k) << ")";
                return;
              }
            }
      }
    }
  }
}

struct Shape {
  int64_t rows, cols;
};
// Odd shapes: rows not a multiple of 16 or 8, K not a multiple of any packet or group.
const Shape kShapes[] = {{1, 64}, {17, 96}, {33, 576}, {5, 200}, {24, 352}, {3, 77}};

TEST(GpuLayout, RoundTripEveryFormat) {
  uint64_t seed = 1;
  for (Format f : weight_formats()) {
    for (const Shape& sh : kShapes) {
      for (bool quantized : {false, true}) {
        SCOPED_TRACE(std::string(format_name(f)) + " [" + std::to_string(sh.rows) + ", " + std::to_string(sh.cols) +
                     "] " + (quantized ? "quantized" : "random codes"));
        const QTensor t = make_tensor(f, sh.rows, sh.cols, seed++, quantized);
        const GpuWeightHost w = repack_for_gpu(t);
        EXPECT_EQ(w.codec, codec_for(f));
        EXPECT_EQ(w.rows_pad % 16, 0);
        if (!is_plain(w.codec)) {
          EXPECT_EQ(w.cols_pad % packet_cols(w.codec), 0);
        }
        const QTensor back = unpack_from_gpu(w);
        EXPECT_EQ(back.fmt, t.fmt);
        EXPECT_EQ(back.rows, t.rows);
        EXPECT_EQ(back.cols, t.cols);
        EXPECT_EQ(back.group, t.group);
        const std::vector<uint8_t> want = canonical_codes(t);
        EXPECT_TRUE(back.codes.size == want.size() && std::memcmp(back.codes.data, want.data(), want.size()) == 0)
            << "codes differ after the round trip";
        EXPECT_TRUE(same_buffer(back.scales, t.scales)) << "scales differ after the round trip";
        EXPECT_TRUE(same_buffer(back.offsets, t.offsets)) << "offsets differ after the round trip";
        const FormatInfo& fi = format_info(f);
        if (fi.scheme == ScaleScheme::TensorF32 || fi.scheme == ScaleScheme::BlockE4M3F32) {
          EXPECT_TRUE(same_float(back.tensor_scale, t.tensor_scale));
        }
        expect_rows_decode_as(w, 0, t, "repack");
      }
    }
  }
}

TEST(GpuLayout, FragmentDecodersMatchElements) {
  uint64_t seed = 100;
  for (Format f : weight_formats()) {
    if (is_plain(codec_for(f))) continue;
    for (const Shape& sh : {Shape{17, 96}, Shape{32, 333}}) {
      SCOPED_TRACE(std::string(format_name(f)) + " [" + std::to_string(sh.rows) + ", " + std::to_string(sh.cols) + "]");
      expect_fragments_match(repack_for_gpu(make_tensor(f, sh.rows, sh.cols, seed++, false)));
    }
  }
}

TEST(GpuLayout, E4M3AndE5M2DecodeEveryCode) {
  // one row holding every byte value (NaN and Inf codes included): the fragment decoders reproduce them
  for (Format f : {Format::FP8_E4M3, Format::FP8_E5M2, Format::INT8, Format::MXFP8_E4M3, Format::MXINT8}) {
    QTensor t = random_qtensor(f, 3, 256, 0, 7, "all-codes");
    std::vector<uint8_t> codes(t.codes.data, t.codes.data + t.codes.size);
    for (int64_t r = 0; r < 3; ++r)
      for (int j = 0; j < 256; ++j) codes[size_t(r * 256 + j)] = uint8_t(j);
    t.codes = Buffer::own(std::move(codes));
    const GpuWeightHost w = repack_for_gpu(t);
    SCOPED_TRACE(format_name(f));
    expect_fragments_match(w);
    expect_rows_decode_as(w, 0, t, "all codes");
  }
}

TEST(GpuLayout, ConcatRowsKeepsEveryRow) {
  uint64_t seed = 300;
  for (Format f : weight_formats()) {
    SCOPED_TRACE(format_name(f));
    // Q|K|V-like: rows that do not align to tiles
    const QTensor a = make_tensor(f, 21, 160, seed++, true), b = make_tensor(f, 7, 160, seed++, false),
                  c = make_tensor(f, 16, 160, seed++, true);
    const GpuWeightHost wa = repack_for_gpu(a), wb = repack_for_gpu(b), wc = repack_for_gpu(c);
    const GpuWeightHost w = concat_rows({&wa, &wb, &wc});
    EXPECT_EQ(w.rows, 44);
    EXPECT_EQ(w.rows_pad, 48);
    expect_rows_decode_as(w, 0, a, "concat part 0");
    expect_rows_decode_as(w, 21, b, "concat part 1");
    expect_rows_decode_as(w, 28, c, "concat part 2");
    if (!is_plain(w.codec)) expect_fragments_match(w);
    const FormatInfo& fi = format_info(f);
    if (fi.scheme != ScaleScheme::TensorF32 && fi.scheme != ScaleScheme::BlockE4M3F32) {
      const QTensor back = unpack_from_gpu(w);
      const size_t rb = a.row_bytes();
      EXPECT_EQ(std::memcmp(back.codes.data, a.codes.data, a.codes.size), 0);
      EXPECT_EQ(std::memcmp(back.codes.data + 21 * rb, b.codes.data, b.codes.size), 0);
      EXPECT_EQ(std::memcmp(back.codes.data + 28 * rb, c.codes.data, c.codes.size), 0);
    } else {
      // rows of tensors with different per-tensor scales do not make one canonical tensor
      EXPECT_THROW(unpack_from_gpu(w), Error);
    }
  }
}

TEST(GpuLayout, GateUpPairInterleavesByEight) {
  uint64_t seed = 500;
  for (Format f : weight_formats()) {
    for (int64_t ff : {int64_t(8), int64_t(13), int64_t(40)}) {
      SCOPED_TRACE(std::string(format_name(f)) + " ff=" + std::to_string(ff));
      const QTensor gate = make_tensor(f, ff, 128, seed++, true), up = make_tensor(f, ff, 128, seed++, false);
      const GpuWeightHost wg = repack_for_gpu(gate), wu = repack_for_gpu(up);
      const GpuWeightHost w = concat_glu(wg, wu);
      EXPECT_TRUE(w.glu);
      EXPECT_EQ(w.ff, ff);
      EXPECT_EQ(w.rows_pad, 2 * ((ff + 7) / 8 * 8));
      EXPECT_EQ(w.logical_rows(), 2 * ff);
      const GpuWeightView v = w.view();
      // gate row i and up row i share a tile, 8 rows apart
      for (int64_t i = 0; i < ff; ++i) {
        EXPECT_EQ(physical_row(v, i) / 16, physical_row(v, ff + i) / 16);
        EXPECT_EQ(physical_row(v, ff + i) - physical_row(v, i), 8);
      }
      expect_rows_decode_as(w, 0, gate, "gate");
      expect_rows_decode_as(w, ff, up, "up");
      if (!is_plain(w.codec)) expect_fragments_match(w);
    }
  }
}

// Host emulation of gemv_mma_kernel's arithmetic (gemv_kernels.cuh) for x[M, K], one K-tile: the same
// per-token power-of-two scaling and fp16 hi/lo staging (b_pair_word), fragment decoders and B loads
// (b_frag_word), the PTX mma.m16n8k16 operand layouts (A: a_frag_element; B: lane (g, t) holds rows 2t,
// 2t+1 and 2t+8, 2t+9 of column g; D: lane holds (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)), the scale
// folds per 32 / 16 columns and the final scaling. Products are summed in double here.
std::vector<double> emulate_mma_gemv(const GpuWeightHost& w, const std::vector<float>& x, int M) {
  const GpuWeightView v = w.view();
  const CodecInfo ci = codec_info(w.codec);
  const int64_t K = w.cols, Kp = w.cols_pad, stride = Kp / 2, units = Kp / 32;
  const int NB = M > 4 ? 2 : 1;
  std::vector<float> xscale(static_cast<size_t>(M)), yscale(static_cast<size_t>(M));
  for (int m = 0; m < M; ++m) {
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[size_t(m * K + k)]));
    const int e = amax > 0.0f ? std::ilogb(amax) - 13 : 0;
    xscale[size_t(m)] = std::ldexp(1.0f, -e);
    yscale[size_t(m)] = std::ldexp(1.0f, e);
  }
  std::vector<uint32_t> xb(size_t(2 * M * stride), 0u);
  std::vector<float> gsum(size_t(M * units), 0.0f);
  for (int m = 0; m < M; ++m)
    for (int64_t kk = 0; kk < Kp; kk += 2) {
      const float v0 = (kk < K ? x[size_t(m * K + kk)] : 0.0f) * xscale[size_t(m)];
      const float v1 = (kk + 1 < K ? x[size_t(m * K + kk + 1)] : 0.0f) * xscale[size_t(m)];
      const uint16_t h0 = f32_to_f16(v0), h1 = f32_to_f16(v1);
      const uint16_t l0 = f32_to_f16(v0 - f16_to_f32(h0)), l1 = f32_to_f16(v1 - f16_to_f32(h1));
      xb[size_t((2 * m) * stride + b_pair_word(int(kk)))] = uint32_t(h0) | uint32_t(h1) << 16;
      xb[size_t((2 * m + 1) * stride + b_pair_word(int(kk)))] = uint32_t(l0) | uint32_t(l1) << 16;
      gsum[size_t(m * units + kk / 32)] += v0 + v1;
    }
  const int gshift = ci.scale == ScaleKind::Affine ? std::countr_zero(unsigned(v.group >> 5)) : 0;
  std::vector<double> y(size_t(M * v.rows_pad), 0.0);
  for (int64_t tile = 0; tile < v.n_tiles(); ++tile) {
    double accC[32][2][4] = {}, accY[32][2][2] = {}, D[32][2][4] = {};
    for (int64_t p = 0; p < v.n_packets; ++p) {
      uint32_t A[32][16][4];
      for (int lane = 0; lane < 32; ++lane) {
        uint32_t words[12];
        for (int i = 0; i < 4 * ci.pw; ++i) words[i] = read_word(v.codes, packet_word_index(v, tile, p, i, lane));
        decode_packet_any(w.codec, words, A[lane]);
      }
      for (int s = 0; s < ci.pks; ++s) {
        const int64_t ks = p * ci.pks + s;  // k-step along K
        double Am[16][16], Bm[2][16][8] = {};
        for (int lane = 0; lane < 32; ++lane)
          for (int reg = 0; reg < 4; ++reg)
            for (int half = 0; half < 2; ++half) {
              int row, col;
              a_frag_element(lane, reg, half, &row, &col);
              Am[row][col] = f16_to_f32(uint16_t(A[lane][s][reg] >> (16 * half))) * double(ci.factor) / ci.factor;
            }
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane / 4, t = lane % 4;
          for (int nb = 0; nb < NB; ++nb) {
            const int arr = 8 * nb + g;
            if ((arr >> 1) >= M) continue;
            const uint32_t b0 = xb[size_t(arr * stride + b_frag_word(int(ks), t))];
            const uint32_t b1 = xb[size_t(arr * stride + b_frag_word(int(ks), t) + 1)];
            for (int h = 0; h < 2; ++h) {
              Bm[nb][2 * t + h][g] = f16_to_f32(uint16_t(b0 >> (16 * h)));
              Bm[nb][2 * t + 8 + h][g] = f16_to_f32(uint16_t(b1 >> (16 * h)));
            }
          }
        }
        const bool units_fold = ci.scale == ScaleKind::Affine || ci.scale == ScaleKind::Mx;
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane / 4, t = lane % 4;
          for (int nb = 0; nb < NB; ++nb) {
            double d[4];
            const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
            for (int i = 0; i < 4; ++i) {
              d[i] = 0;
              for (int k = 0; k < 16; ++k) d[i] += Am[rows[i]][k] * Bm[nb][k][cols[i]];
            }
            if (ci.scale == ScaleKind::Row) {
              for (int i = 0; i < 4; ++i) accC[lane][nb][i] += d[i];
              continue;
            }
            for (int i = 0; i < 4; ++i) D[lane][nb][i] = (units_fold && s % 2 == 1) ? D[lane][nb][i] + d[i] : d[i];
            if (units_fold && s % 2 == 0) continue;
            const int64_t unit = ks / 2;
            float f[2], mo[2] = {0.0f, 0.0f};
            if (ci.scale == ScaleKind::Affine) {
              const int64_t e = (tile * v.scale_units() + (unit >> gshift)) * 8 + g;
              affine_entry(read_word(v.scales, 2 * e), &f[0], &mo[0]);
              affine_entry(read_word(v.scales, 2 * e + 1), &f[1], &mo[1]);
            } else if (ci.scale == ScaleKind::Mx) {
              const int64_t e = ((tile * v.scale_units() + unit) * 8 + g) * 2;
              f[0] = e8m0_value(v.scales[e]);
              f[1] = e8m0_value(v.scales[e + 1]);
            } else {
              nv_scales(read_word(v.scales, (tile * v.scale_units() + unit) * 8 + g) >> (16 * (s % 2)), &f[0], &f[1]);
            }
            const int tok = 4 * nb + t;
            const double gs = (ci.scale == ScaleKind::Affine && tok < M) ? gsum[size_t(tok * units + unit)] : 0.0;
            for (int h = 0; h < 2; ++h)
              accY[lane][nb][h] += f[h] * (D[lane][nb][2 * h] + D[lane][nb][2 * h + 1]) + mo[h] * gs;
          }
        }
      }
    }
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane / 4, t = lane % 4;
      for (int nb = 0; nb < NB; ++nb)
        for (int h = 0; h < 2; ++h) {
          const int tok = 4 * nb + t;
          if (tok >= M) continue;
          const int64_t r = tile * 16 + g + 8 * h;
          double val = ci.scale == ScaleKind::Row ? accC[lane][nb][2 * h] + accC[lane][nb][2 * h + 1] : accY[lane][nb][h];
          val *= double(ci.factor) * yscale[size_t(tok)];
          if (v.row_scale) val = ci.scale == ScaleKind::Nv ? val / v.row_scale[r] : val * v.row_scale[r];
          y[size_t(tok * v.rows_pad + r)] = val;
        }
    }
  }
  return y;
}

TEST(GpuLayout, TensorCoreGemvEmulationMatchesReference) {
  uint64_t seed = 700;
  for (Format f : weight_formats()) {
    if (is_plain(codec_for(f))) continue;
    for (int M : {1, 3, 6}) {
      SCOPED_TRACE(std::string(format_name(f)) + " M=" + std::to_string(M));
      const QTensor t = make_tensor(f, 21, 200, seed++, true);
      const GpuWeightHost w = repack_for_gpu(t);
      Rng rng(seed++);
      std::vector<float> x(size_t(M * t.cols));
      for (float& q : x) q = rng.normal();
      const std::vector<double> y = emulate_mma_gemv(w, x, M);
      std::vector<float> row(size_t(t.cols));
      int bad = 0;
      for (int64_t r = 0; r < t.rows; ++r) {
        dequantize_row(t, r, row.data());
        for (int m = 0; m < M; ++m) {
          double ref = 0, S = 0;
          for (int64_t k = 0; k < t.cols; ++k) {
            ref += double(row[size_t(k)]) * x[size_t(m * t.cols + k)];
            S += std::fabs(double(row[size_t(k)]) * x[size_t(m * t.cols + k)]);
          }
          // hi/lo representation (2^-22 relative, 2^-38 max|x| absolute) and fp32 folds; S bounds every
          // partial sum except the affine m * sum(x) terms, covered by the 2^-16 slack on |m| sum|x|
          const double got = y[size_t(m * w.rows_pad + r)];
          const double bound = std::ldexp(S, -18) + 1e-6 * std::fabs(ref) + 1e-12;
          if (!(std::fabs(got - ref) <= bound + std::ldexp(S, -14) * (t.info().scheme == ScaleScheme::GroupAffine)) &&
              bad++ < 3)
            ADD_FAILURE() << "row " << r << " token " << m << ": emulated " << got << ", reference " << ref << ", S " << S;
        }
      }
    }
  }
}

// The integer tensor-core path (gemv_decode.h, imma_*): every MMA block of every packet, multiplied the
// way mma.m16n8k32 does with A from imma_a and B from x limbs staged at imma_x_offset, gives each row's exact
// sum of code x limb over the block's columns (int4: rows g + 8 times 16).
void imma_a_any(GpuCodec c, const uint32_t* w, int q, uint32_t* a) {
  switch (c) {
    case GpuCodec::U4: imma_a<GpuCodec::U4>(w, q, a); return;
    case GpuCodec::I8: imma_a<GpuCodec::I8>(w, q, a); return;
    case GpuCodec::U2: imma_a<GpuCodec::U2>(w, q, a); return;
    case GpuCodec::T2: imma_a<GpuCodec::T2>(w, q, a); return;
    case GpuCodec::U1: imma_a<GpuCodec::U1>(w, q, a); return;
    default: FAIL() << "no integer path for codec " << int(c);
  }
}

TEST(GpuLayout, IntegerMmaFragmentsPairCodesWithTheirColumns) {
  uint64_t seed = 800;
  for (Format f : {Format::INT8, Format::INT4, Format::INT4_HQQ, Format::INT2, Format::INT1, Format::TERNARY}) {
    SCOPED_TRACE(format_name(f));
    const QTensor t = make_tensor(f, 37, 512, seed++, true);
    const GpuWeightHost wh = repack_for_gpu(t);
    const GpuWeightView v = wh.view();
    const GpuCodec c = v.codec;
    ASSERT_TRUE(has_imma(c));
    const int64_t cols = v.n_packets * packet_cols(c);
    ASSERT_EQ(imma_blocks(c) * 32, packet_cols(c));
    // random limbs per (column, limb), staged; every staged byte is written once
    Rng rng(seed++);
    std::vector<int> limb(size_t(cols * 4));
    std::vector<uint8_t> staged(size_t(cols * 4), 0xee);
    std::vector<int64_t> block_of(static_cast<size_t>(cols));
    for (int64_t k = 0; k < cols; ++k)
      for (int l = 0; l < 4; ++l) {
        const int val = int(rng.next_u64() % 256) - 128;
        limb[size_t(k * 4 + l)] = val;
        const int64_t off = imma_x_offset(c, k, l);
        ASSERT_LT(off, cols * 4);
        ASSERT_EQ(staged[size_t(off)], 0xee) << "two limbs staged at byte " << off;
        staged[size_t(off)] = uint8_t(int8_t(val));
        block_of[size_t(k)] = off / 128;
      }
    for (int64_t tile = 0; tile < v.n_tiles(); ++tile)
      for (int64_t p = 0; p < v.n_packets; ++p)
        for (int q = 0; q < imma_blocks(c); ++q) {
          int64_t A[16][32] = {}, B[32][8] = {};
          const int64_t block = p * imma_blocks(c) + q;
          for (int lane = 0; lane < 32; ++lane) {
            const int g = lane / 4, tq = lane % 4;
            uint32_t w[4], a[4] = {};
            for (int i = 0; i < 4; ++i) w[i] = read_word(wh.codes.data(), packet_word_index(v, tile, p, i, lane));
            imma_a_any(c, w, q, a);
            for (int i = 0; i < 4; ++i)
              for (int r = 0; r < 4; ++r) {
                const uint32_t byte = (a[r] >> (8 * i)) & 0xffu;
                const int64_t val = c == GpuCodec::I8 ? int64_t(int8_t(uint8_t(byte))) : int64_t(byte);
                A[g + 8 * (r & 1)][4 * tq + i + 16 * (r >> 1)] = val;
              }
            uint32_t b[2];
            std::memcpy(b, staged.data() + block * 128 + (tq * 4 + (g & 3)) * 8, 8);
            for (int i = 0; i < 4; ++i)
              for (int h = 0; h < 2; ++h) B[4 * tq + i + 16 * h][g] = int8_t(uint8_t(b[h] >> (8 * i)));
          }
          int in_block = 0;
          for (int64_t col = 0; col < cols; ++col) in_block += block_of[size_t(col)] == block;
          ASSERT_EQ(in_block, 32) << "block " << block;
          for (int r = 0; r < 16; ++r)
            for (int n = 0; n < 8; ++n) {
              int64_t got = 0, want = 0;
              for (int k = 0; k < 32; ++k) got += A[r][k] * B[k][n];
              for (int64_t col = 0; col < cols; ++col) {
                if (block_of[size_t(col)] != block) continue;
                const uint32_t code = gpu_get_code(v, tile * 16 + r, col);
                const int64_t cv = c == GpuCodec::I8   ? int64_t(int8_t(uint8_t(code)))
                                   : c == GpuCodec::U4 ? int64_t(code) * (r >= 8 ? 16 : 1)
                                                       : int64_t(code);
                want += cv * limb[size_t(col * 4 + (n & 3))];
              }
              ASSERT_EQ(got, want) << "tile " << tile << " packet " << p << " block " << q << " row " << r << " col " << n;
            }
        }
  }
}

TEST(GpuLayout, XLimbsAreTheDigitsOfTwoToThe24TimesX) {
  Rng rng(801);
  int n_checked = 0;
  for (int i = 0; i < 200000; ++i) {
    const float v = float(rng.normal()) * std::ldexp(1.0f, int(rng.next_u64() % 24) - 18);
    if (!(std::fabs(v) < 64.0f)) continue;
    const uint32_t L = x_limbs(v);
    int64_t n = 0;
    for (int j = 0; j < 4; ++j) n += int64_t(int8_t(uint8_t(L >> (8 * j)))) * (int64_t(1) << (8 * j));
    ASSERT_LE(std::fabs(std::ldexp(double(n), -24) - double(v)), std::ldexp(1.0, -25)) << v;
    ++n_checked;
  }
  EXPECT_GT(n_checked, 100000);
}

// The one-pass staging (gemv_stream.cuh) folds the powers of two into the RMSNorm factor: x (r 2^-e 2^24) then
// times w must round exactly as ((x r) w) 2^-e 2^24 did (the order before), for the limbs, the fp16 hi / lo
// values (2^-e only) and the 4-column sums, with e chosen as the kernel does (|x r w 2^-e| < 64 for limbs,
// < 2^14 for fp16), over wide ranges of x, r and w.
TEST(GpuLayout, StagingScaleFoldRoundsAsBefore) {
  Rng rng(803);
  int n_checked = 0;
  for (int t = 0; t < 20000; ++t) {
    float x[4], w[4];
    const int sx = int(rng.next_u64() % 40) - 20, sw = int(rng.next_u64() % 8) - 4;
    for (int p = 0; p < 4; ++p) {
      x[p] = float(rng.normal()) * std::ldexp(1.0f, sx);
      w[p] = float(rng.normal()) * std::ldexp(1.0f, sw);
    }
    const float r = float(std::exp(rng.normal() * 3.0));  // an RMSNorm factor, 1 / rms
    float am = 0.0f;
    for (int p = 0; p < 4; ++p) am = std::max(am, std::fabs(x[p] * w[p]));
    const float amax = am * r;
    if (!(amax > 0.0f)) continue;
    for (const bool limbs : {true, false}) {
      const int e = std::ilogb(amax) - (limbs ? 5 : 13);
      const float xscale = std::ldexp(1.0f, -e);
      const float fold = limbs ? r * xscale * 16777216.0f : r * xscale;  // the new staging's one factor
      float su_old = 0.0f, su_new = 0.0f, v_new[4];
      for (int p = 0; p < 4; ++p) {
        const float v_old = ((x[p] * r) * w[p]) * xscale;  // the old order
        v_new[p] = (x[p] * fold) * w[p];
        su_old += v_old;
        if (limbs) {
          ASSERT_EQ(x_limbs(v_old), x_limbs_scaled(v_new[p])) << x[p] << " " << r << " " << w[p];
          ASSERT_EQ(v_old * 16777216.0f, v_new[p]);
        } else {
          ASSERT_EQ(v_old, v_new[p]) << x[p] << " " << r << " " << w[p];
        }
      }
      su_new = limbs ? (((v_new[0] + v_new[1]) + v_new[2]) + v_new[3]) * 0x1p-24f
                     : (v_new[0] + v_new[1]) + (v_new[2] + v_new[3]);
      if (limbs) {
        ASSERT_EQ(su_old, su_new);
      } else {  // the fp16 path summed pairs: (0 + (v0 + v1)) + (v2 + v3)
        const float so = (((x[0] * r) * w[0]) * xscale + ((x[1] * r) * w[1]) * xscale) +
                         (((x[2] * r) * w[2]) * xscale + ((x[3] * r) * w[3]) * xscale);
        ASSERT_EQ(so, su_new);
      }
      ++n_checked;
    }
  }
  EXPECT_GT(n_checked, 30000);
}

// The one-pass staging (gemv_stream.cuh): thread pairs holding chunks c, c ^ d (4 columns each, d =
// imma_pair_chunks) swap two limb words and each writes the 4 words of limb_words at the offset of its first
// column; every limb must land where imma_x_offset says.
TEST(GpuLayout, LimbWordsOfChunkPairsLandAtTheirOffsets) {
  for (GpuCodec c : {GpuCodec::U4, GpuCodec::I8, GpuCodec::U2, GpuCodec::T2, GpuCodec::U1}) {
    const int cols = 512, chunks = cols / 4, d = imma_pair_chunks(c);
    std::vector<uint32_t> L(static_cast<size_t>(cols));  // limbs of column k: distinct bytes
    for (int k = 0; k < cols; ++k) L[size_t(k)] = uint32_t(k) * 0x01010101u ^ 0x00402080u ^ (uint32_t(k >> 8) << 29);
    std::vector<uint8_t> staged(size_t(cols * 4), 0);
    std::vector<int> writes(size_t(cols * 4), 0);
    for (int ch = 0; ch < chunks; ++ch) {
      const bool second = (ch & d) != 0;
      const int pa = ch & ~d, pb = pa | d;  // the pair's first and second chunk
      const int p0 = second ? 2 : 0;        // this thread's columns of both chunks: p0, p0 + 1
      const uint32_t X0 = L[size_t(4 * pa + p0)], X1 = L[size_t(4 * pa + p0 + 1)];
      const uint32_t Y0 = L[size_t(4 * pb + p0)], Y1 = L[size_t(4 * pb + p0 + 1)];
      uint32_t w[4];
      if (c == GpuCodec::I8) limb_words<GpuCodec::I8>(X0, X1, Y0, Y1, w);
      else limb_words<GpuCodec::U4>(X0, X1, Y0, Y1, w);
      const int64_t base = imma_x_offset(c, 4 * pa + p0, 0);
      for (int j = 0; j < 4; ++j)
        for (int b = 0; b < 4; ++b) {
          staged[size_t(base + 8 * j + b)] = uint8_t(w[j] >> (8 * b));
          ++writes[size_t(base + 8 * j + b)];
        }
    }
    for (int k = 0; k < cols; ++k)
      for (int j = 0; j < 4; ++j) {
        const int64_t off = imma_x_offset(c, k, j);
        ASSERT_EQ(writes[size_t(off)], 1) << "codec " << int(c) << " column " << k << " limb " << j;
        ASSERT_EQ(staged[size_t(off)], uint8_t(L[size_t(k)] >> (8 * j))) << "codec " << int(c) << " column " << k
                                                                         << " limb " << j;
      }
  }
}

// K slices of the stream kernel (LOWBIT_GEMV_KSPLIT): a block stages only its slice of x, at the slice's own
// columns, with the positions of a slice at column 0 shifted (its first column a multiple of 256), and reads it
// through pointers moved by the slice's first column (limbs: 4 bytes per column, MMA block q of packet p at
// (p imma_blocks + q) 128; fp16 hi / lo: b_frag_word, 8 words per 16 columns; unit sums: one per 32 columns).
TEST(GpuLayout, StagedXShiftsWholeWith256Columns) {
  for (GpuCodec c : {GpuCodec::U4, GpuCodec::I8, GpuCodec::U2, GpuCodec::T2, GpuCodec::U1}) {
    EXPECT_EQ(imma_blocks(c) * 32, packet_cols(c)) << "codec " << int(c);
    for (int64_t k = 0; k < 1024; ++k)
      for (int j = 0; j < 4; ++j)
        for (int64_t s = 1; s <= 3; ++s)
          ASSERT_EQ(imma_x_offset(c, k + 256 * s, j), imma_x_offset(c, k, j) + 1024 * s)
              << "codec " << int(c) << " column " << k << " limb " << j;
  }
  for (int k = 0; k < 1024; ++k)
    for (int s = 1; s <= 3; ++s) ASSERT_EQ(b_pair_word(k + 256 * s), b_pair_word(k) + 128 * s) << "column " << k;
  for (int st = 0; st < 64; ++st)
    for (int t = 0; t < 4; ++t) ASSERT_EQ(b_frag_word(st + 16, t), b_frag_word(st, t) + 128);
}

TEST(GpuLayout, Errors) {
  // a group that is not a power of two has no GPU layout
  Rng rng(9);
  std::vector<float> x(4 * 192);
  for (float& v : x) v = rng.normal();
  QuantOptions o;
  o.group = 96;
  const QTensor t = quantize(x.data(), 4, 192, Format::INT4, o, "g96");
  EXPECT_THROW(repack_for_gpu(t), Error);
  // parts of different K or format cannot be concatenated
  const GpuWeightHost a = repack_for_gpu(random_qtensor(Format::INT4, 8, 128, 0, 1)),
                      b = repack_for_gpu(random_qtensor(Format::INT4, 8, 256, 0, 2)),
                      c = repack_for_gpu(random_qtensor(Format::INT8, 8, 128, 0, 3));
  EXPECT_THROW(concat_rows({&a, &b}), Error);
  EXPECT_THROW(concat_rows({&a, &c}), Error);
  EXPECT_THROW(concat_glu(a, b), Error);
  const GpuWeightHost pair = concat_glu(a, a);
  EXPECT_THROW(concat_rows({&pair, &a}), Error);
}

}  // namespace
}  // namespace lowbit::cuda
