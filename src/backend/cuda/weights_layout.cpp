// Repacking canonical tensors into the GPU layout (weights_layout.h) and back. Pure C++: built into
// lowbit_core so that the round trip is tested on machines without a GPU.
#include "backend/cuda/weights_layout.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>

#include <omp.h>

#include "formats/codec.h"
#include "formats/qtensor.h"
#include "util/error.h"

namespace lowbit::cuda {

GpuCodec codec_for(Format f) {
  switch (f) {
    case Format::F32: return GpuCodec::PlainF32;
    case Format::BF16: return GpuCodec::PlainBF16;
    case Format::F16: return GpuCodec::PlainF16;
    case Format::FP8_E4M3: case Format::FP8_E4M3_T: return GpuCodec::E4M3;
    case Format::FP8_E5M2: case Format::FP8_E5M2_T: return GpuCodec::E5M2;
    case Format::INT8: return GpuCodec::I8;
    case Format::INT4: case Format::INT4_HQQ: return GpuCodec::U4;
    case Format::INT2: case Format::INT2_HQQ: return GpuCodec::U2;
    case Format::INT1: case Format::INT1_HQQ: return GpuCodec::U1;
    case Format::TERNARY: return GpuCodec::T2;
    case Format::TERNARY_P5: return GpuCodec::T5;
    case Format::FP6_E3M2: return GpuCodec::E3M2;
    case Format::FP6_E2M3: return GpuCodec::E2M3;
    case Format::MXFP8_E4M3: return GpuCodec::MxE4M3;
    case Format::MXFP8_E5M2: return GpuCodec::MxE5M2;
    case Format::MXFP6_E3M2: return GpuCodec::MxE3M2;
    case Format::MXFP6_E2M3: return GpuCodec::MxE2M3;
    case Format::MXFP4: return GpuCodec::MxE2M1;
    case Format::MXINT8: return GpuCodec::MxI8;
    case Format::NVFP4: return GpuCodec::NvE2M1;
    case Format::INT8_STATIC:
    case Format::FP8_STATIC: fail("codec_for: ", format_name(f), " is an activation-only format, not a weight format");
  }
  fail("codec_for: unknown format ", int(f));
}

const char* codec_name(GpuCodec c) {
  static constexpr const char* kNames[kNumGpuCodecs] = {
      "plain-f32", "plain-bf16", "plain-f16", "i8",       "e4m3",     "e5m2",     "e3m2",
      "e2m3",      "u4",         "u2",        "u1",       "t2",       "t5",       "mx-e4m3",
      "mx-e5m2",   "mx-e3m2",    "mx-e2m3",   "mx-e2m1",  "mx-i8",    "nv-e2m1"};
  return kNames[int(c)];
}

GpuWeightView GpuWeightHost::view() const {
  GpuWeightView v;
  v.codec = codec;
  v.rows = rows;
  v.rows_pad = rows_pad;
  v.cols = cols;
  v.cols_pad = cols_pad;
  v.group = group;
  v.row_stride = row_stride;
  v.n_packets = n_packets;
  v.glu = glu;
  v.ff = ff;
  v.codes = codes.data();
  v.scales = scales.empty() ? nullptr : scales.data();
  v.row_scale = row_scale.empty() ? nullptr : row_scale.data();
  return v;
}

namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// One logical row in canonical terms: element codes (one per byte; T5: trit digits), the row's scales.
struct RowData {
  std::vector<uint8_t> codes;     // [K]
  std::vector<uint32_t> affine;   // [groups]: bf16 s | bf16 m << 16
  std::vector<uint8_t> blocks;    // [blocks]: E8M0 (MX) or E4M3 (NVFP4) scale bytes
  float row_scale = 1.0f;
};
using RowSource = std::function<void(int64_t logical_row, RowData&)>;

// Where every code bit of one packet goes: the same for every packet of a codec, so it is computed once
// and repacking is a table walk (a few ns per element instead of a position computation per element).
struct MapField {
  uint8_t row;     // row in the tile
  uint16_t col;    // column in the packet
  uint16_t word;   // 32-bit word in the packet's lane-interleaved block: (j * 32 + lane) * 4 + w % 4
  uint8_t bit;     // first bit in that word
  uint8_t nbits;   // 0: a base-3 digit of a T5 byte (shift = digit index)
  uint8_t shift;   // where the field goes in the code
};

const std::vector<MapField>& packet_map(GpuCodec c) {
  static std::vector<MapField> maps[kNumGpuCodecs];
  static std::once_flag once[kNumGpuCodecs];
  std::call_once(once[int(c)], [c] {
    const CodecInfo ci = codec_info(c);
    std::vector<MapField>& m = maps[int(c)];
    for (int lane = 0; lane < 32; ++lane)
      for (int s = 0; s < ci.pks; ++s)
        for (int reg = 0; reg < 4; ++reg)
          for (int half = 0; half < 2; ++half) {
            const int g = lane / 4, t = lane % 4;
            const uint8_t row = uint8_t(g + 8 * (reg % 2));
            const uint16_t col = uint16_t(16 * s + 2 * t + half + 8 * (reg / 2));
            auto word_of = [&](int w) { return uint16_t(((w / 4) * 32 + lane) * 4 + w % 4); };
            if (c == GpuCodec::T5) {
              int byte, digit;
              t5_pos(s, reg, half, &byte, &digit);
              m.push_back({row, col, word_of(byte / 4), uint8_t(8 * (byte % 4)), 0, uint8_t(digit)});
              continue;
            }
            CodeField f[3];
            const int nf = code_fields(c, s, reg, half, f);
            for (int i = 0; i < nf; ++i)
              m.push_back({row, col, word_of(f[i].word), uint8_t(f[i].bit), uint8_t(f[i].nbits), uint8_t(f[i].code_shift)});
          }
  });
  return maps[int(c)];
}

constexpr uint32_t kPow3[5] = {1, 3, 9, 27, 81};

// codes[16][cols_pad] (canonical codes of the tile's rows; zero where there is no element) -> the tile's
// packet words.
void encode_tile(const GpuWeightView& v, const uint8_t* codes, int64_t cols_pad, uint32_t* words) {
  const CodecInfo ci = codec_info(v.codec);
  const std::vector<MapField>& map = packet_map(v.codec);
  const int pc = packet_cols(v.codec);
  const uint32_t flip = (v.codec == GpuCodec::I8 || v.codec == GpuCodec::MxI8) ? 0x80u : 0u;  // offset binary
  const size_t per_packet = size_t(ci.pw) * 32 * 4;
  std::fill(words, words + per_packet * size_t(v.n_packets), 0u);
  for (int64_t p = 0; p < v.n_packets; ++p) {
    uint32_t* w = words + per_packet * size_t(p);
    const uint8_t* c0 = codes + p * pc;
    for (const MapField& f : map) {
      const uint32_t code = c0[f.row * cols_pad + f.col] ^ flip;
      if (f.nbits == 0) w[f.word] += (code * kPow3[f.shift]) << f.bit;  // digits add: no carry out of the byte
      else w[f.word] |= ((code >> f.shift) & ((1u << f.nbits) - 1u)) << f.bit;
    }
  }
}

// The inverse: a tile's packet words -> codes[16][cols_pad].
void decode_tile(const GpuWeightView& v, const uint32_t* words, int64_t cols_pad, uint8_t* codes) {
  const CodecInfo ci = codec_info(v.codec);
  const std::vector<MapField>& map = packet_map(v.codec);
  const int pc = packet_cols(v.codec);
  const uint32_t flip = (v.codec == GpuCodec::I8 || v.codec == GpuCodec::MxI8) ? 0x80u : 0u;
  const size_t per_packet = size_t(ci.pw) * 32 * 4;
  std::fill(codes, codes + 16 * cols_pad, uint8_t(0));
  for (int64_t p = 0; p < v.n_packets; ++p) {
    const uint32_t* w = words + per_packet * size_t(p);
    uint8_t* c0 = codes + p * pc;
    for (const MapField& f : map) {
      uint8_t& code = c0[f.row * cols_pad + f.col];
      if (f.nbits == 0) code = uint8_t((((w[f.word] >> f.bit) & 0xffu) / kPow3[f.shift]) % 3);
      else code = uint8_t(code | (((w[f.word] >> f.bit) & ((1u << f.nbits) - 1u)) << f.shift));
    }
  }
  if (flip)
    for (int64_t i = 0; i < 16 * cols_pad; ++i) codes[i] ^= uint8_t(flip);
}

struct Shape {
  Format fmt;
  int64_t rows_logical, cols;
  int group;  // as the QTensor stores it
  bool glu;
  int64_t ff;
};

GpuWeightHost build(const Shape& sh, const std::string& name, const RowSource& source) {
  const FormatInfo& fi = format_info(sh.fmt);
  GpuWeightHost w;
  w.name = name;
  w.fmt = sh.fmt;
  w.codec = codec_for(sh.fmt);
  const CodecInfo ci = codec_info(w.codec);
  w.cols = sh.cols;
  w.glu = sh.glu;
  w.ff = sh.ff;
  w.rows = sh.glu ? 2 * sh.ff : sh.rows_logical;
  w.rows_pad = sh.glu ? 2 * round_up(sh.ff, 8) : round_up(sh.rows_logical, 16);
  w.group = fi.block ? fi.block : (ci.scale == ScaleKind::Affine ? sh.group : 0);
  if (ci.scale == ScaleKind::Affine)
    LB_CHECK(w.group >= 32 && (w.group & (w.group - 1)) == 0, "GPU layout of '", name, "' (", fi.name,
             "): group size ", w.group, " is not a power of two >= 32 (the GPU kernels need one)");
  const bool plain = is_plain(w.codec);
  if (plain) {
    w.cols_pad = sh.cols;
    w.row_stride = round_up(sh.cols * ci.esize, 16);
    w.codes.assign(size_t(w.rows_pad * w.row_stride), 0);
  } else {
    const int pc = packet_cols(w.codec);
    w.cols_pad = round_up(sh.cols, pc);
    w.n_packets = w.cols_pad / pc;
    w.codes.assign(size_t(w.rows_pad / 16 * w.n_packets * ci.pw * 512), 0);
  }
  GpuWeightView v = w.view();
  switch (ci.scale) {
    case ScaleKind::Row: w.row_scale.assign(size_t(w.rows_pad), 1.0f); break;
    case ScaleKind::Affine: w.scales.assign(size_t(w.rows_pad / 16 * v.scale_units() * 16 * 4), 0); break;
    case ScaleKind::Mx: w.scales.assign(size_t(w.rows_pad / 16 * v.scale_units() * 16), 0); break;
    case ScaleKind::Nv:
      w.scales.assign(size_t(w.rows_pad / 16 * v.scale_units() * 32), 0);
      w.row_scale.assign(size_t(w.rows_pad), 1.0f);
      break;
    case ScaleKind::None: break;
  }
  v = w.view();
  const int64_t n_tiles = w.rows_pad / 16;
  const int64_t K = sh.cols;
  // tiles own disjoint bytes of every stream (rows g and g+8 share words, so never split a tile)
  const size_t tile_words = plain ? 0 : size_t(w.n_packets) * ci.pw * 32 * 4;
#pragma omp parallel if (w.rows_pad * K > (1 << 18))
  {
    RowData rd;
    std::vector<uint8_t> tile_codes(plain ? 0 : size_t(16 * w.cols_pad));
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
      if (!plain) std::fill(tile_codes.begin(), tile_codes.end(), uint8_t(0));
      for (int i = 0; i < 16; ++i) {
        const int64_t r = 16 * tile + i;
        int64_t logical;
        if (sh.glu) {
          const int64_t j = 8 * tile + i % 8;
          if (j >= sh.ff) continue;
          logical = i < 8 ? j : sh.ff + j;
        } else {
          if (r >= sh.rows_logical) continue;
          logical = r;
        }
        source(logical, rd);
        if (plain) std::memcpy(w.codes.data() + r * w.row_stride, rd.codes.data(), size_t(K * ci.esize));
        else std::memcpy(tile_codes.data() + i * w.cols_pad, rd.codes.data(), size_t(K));
        switch (ci.scale) {
          case ScaleKind::Row: w.row_scale[size_t(r)] = rd.row_scale; break;
          case ScaleKind::Affine:
            for (size_t gi = 0; gi < rd.affine.size(); ++gi)
              std::memcpy(w.scales.data() + 4 * scale_index_affine(v, tile, int64_t(gi), i), &rd.affine[gi], 4);
            break;
          case ScaleKind::Mx:
            for (size_t b = 0; b < rd.blocks.size(); ++b) w.scales[size_t(scale_index_mx(v, tile, int64_t(b), i))] = rd.blocks[b];
            break;
          case ScaleKind::Nv:
            for (size_t b = 0; b < rd.blocks.size(); ++b) w.scales[size_t(scale_index_nv(v, tile, int64_t(b), i))] = rd.blocks[b];
            w.row_scale[size_t(r)] = rd.row_scale;
            break;
          case ScaleKind::None: break;
        }
      }
      if (!plain) {
        std::vector<uint32_t> words(tile_words);
        encode_tile(v, tile_codes.data(), w.cols_pad, words.data());
        std::memcpy(w.codes.data() + size_t(tile) * tile_words * 4, words.data(), tile_words * 4);
      }
    }
  }
  return w;
}

// Canonical tensor -> RowData (plain formats: the raw row bytes).
RowSource qtensor_source(const QTensor& t) {
  return [&t](int64_t r, RowData& rd) {
    const FormatInfo& fi = t.info();
    const GpuCodec c = codec_for(t.fmt);
    const uint8_t* row = t.row_codes(r);
    if (is_plain(c)) {
      rd.codes.assign(row, row + t.row_bytes());
      return;
    }
    rd.codes.resize(size_t(t.cols));
    if (fi.elem == ElemType::T5) {
      for (int64_t j = 0; j < t.cols; j += 5) {
        uint32_t b = row[j / 5];
        for (int64_t d = j; d < std::min(t.cols, j + 5); ++d, b /= 3) rd.codes[size_t(d)] = uint8_t(b % 3);
      }
    } else {
      for (int64_t j = 0; j < t.cols; ++j) rd.codes[size_t(j)] = uint8_t(get_code(row, fi.elem, j));
    }
    const int64_t ns = t.nscales_per_row();
    switch (fi.scheme) {
      case ScaleScheme::RowF32: std::memcpy(&rd.row_scale, t.scales.data + 4 * r, 4); break;
      case ScaleScheme::TensorF32: rd.row_scale = t.tensor_scale; break;
      case ScaleScheme::GroupAffine: {
        rd.affine.resize(size_t(ns));
        const uint16_t* s = t.scales.as<uint16_t>() + r * ns;
        const uint16_t* m = t.offsets.as<uint16_t>() + r * ns;
        for (int64_t gi = 0; gi < ns; ++gi) rd.affine[size_t(gi)] = uint32_t(s[gi]) | uint32_t(m[gi]) << 16;
        break;
      }
      case ScaleScheme::BlockE8M0:
      case ScaleScheme::BlockE4M3F32:
        rd.blocks.assign(t.scales.data + r * ns, t.scales.data + (r + 1) * ns);
        rd.row_scale = t.tensor_scale;
        break;
      case ScaleScheme::None: break;
    }
  };
}

// A repacked weight -> RowData of its logical row r. Rows come tile by tile, so each thread keeps the
// codes of the last tile it decoded.
struct TileCache {
  int64_t tile = -1;
  std::vector<uint8_t> codes;  // [16][cols_pad]
  std::vector<uint32_t> words;
};

RowSource gpu_source(const GpuWeightHost& w) {
  auto caches = std::make_shared<std::vector<TileCache>>(size_t(omp_get_max_threads()) + 1);
  return [&w, caches](int64_t r, RowData& rd) {
    const GpuWeightView v = w.view();
    const int64_t pr = physical_row(v, r);
    const CodecInfo ci = codec_info(w.codec);
    const int64_t K = w.cols;
    if (is_plain(w.codec)) {
      const uint8_t* row = w.codes.data() + pr * w.row_stride;
      rd.codes.assign(row, row + K * ci.esize);
      return;
    }
    const int64_t tile = pr / 16;
    const int i = int(pr % 16);
    TileCache& tc = (*caches)[size_t(omp_get_thread_num()) % caches->size()];
    if (tc.tile != tile) {
      const size_t tile_words = size_t(w.n_packets) * ci.pw * 32 * 4;
      tc.words.resize(tile_words);
      tc.codes.resize(size_t(16 * w.cols_pad));
      std::memcpy(tc.words.data(), w.codes.data() + size_t(tile) * tile_words * 4, tile_words * 4);
      decode_tile(v, tc.words.data(), w.cols_pad, tc.codes.data());
      tc.tile = tile;
    }
    rd.codes.assign(tc.codes.begin() + i * w.cols_pad, tc.codes.begin() + i * w.cols_pad + K);
    switch (ci.scale) {
      case ScaleKind::Row: rd.row_scale = w.row_scale[size_t(pr)]; break;
      case ScaleKind::Affine: {
        const int64_t ng = (K + w.group - 1) / w.group;
        rd.affine.resize(size_t(ng));
        for (int64_t gi = 0; gi < ng; ++gi)
          std::memcpy(&rd.affine[size_t(gi)], w.scales.data() + 4 * scale_index_affine(v, tile, gi, i), 4);
        break;
      }
      case ScaleKind::Mx: {
        const int64_t nb = (K + 31) / 32;
        rd.blocks.resize(size_t(nb));
        for (int64_t b = 0; b < nb; ++b) rd.blocks[size_t(b)] = w.scales[size_t(scale_index_mx(v, tile, b, i))];
        break;
      }
      case ScaleKind::Nv: {
        const int64_t nb = (K + 15) / 16;
        rd.blocks.resize(size_t(nb));
        for (int64_t b = 0; b < nb; ++b) rd.blocks[size_t(b)] = w.scales[size_t(scale_index_nv(v, tile, b, i))];
        rd.row_scale = w.row_scale[size_t(pr)];
        break;
      }
      case ScaleKind::None: break;
    }
  };
}

int qtensor_group(const GpuWeightHost& w) { return effective_group(w.fmt, w.group); }

}  // namespace

GpuWeightHost repack_for_gpu(const QTensor& t) {
  t.validate();
  Shape sh{t.fmt, t.rows, t.cols, t.group, false, 0};
  return build(sh, t.name, qtensor_source(t));
}

QTensor unpack_from_gpu(const GpuWeightHost& w) {
  const FormatInfo& fi = format_info(w.fmt);
  const int64_t rows = w.logical_rows(), K = w.cols;
  QTensor t;
  t.name = w.name;
  t.fmt = w.fmt;
  t.rows = rows;
  t.cols = K;
  t.group = fi.scheme == ScaleScheme::GroupAffine ? w.group : (fi.block ? fi.block : 0);
  const size_t rb = row_code_bytes(w.fmt, K);
  const int64_t ns = scales_per_row(w.fmt, K, t.group);
  std::vector<uint8_t> codes(rb * size_t(rows), 0), scales, offsets;
  switch (fi.scheme) {
    case ScaleScheme::RowF32: scales.resize(size_t(rows) * 4); break;
    case ScaleScheme::GroupAffine: scales.resize(size_t(rows * ns) * 2); offsets.resize(size_t(rows * ns) * 2); break;
    case ScaleScheme::BlockE8M0:
    case ScaleScheme::BlockE4M3F32: scales.resize(size_t(rows * ns)); break;
    default: break;
  }
  const RowSource src = gpu_source(w);
  RowData rd;
  bool have_tensor_scale = false;
  for (int64_t r = 0; r < rows; ++r) {
    src(r, rd);
    uint8_t* row = codes.data() + size_t(r) * rb;
    if (is_plain(w.codec)) {
      std::memcpy(row, rd.codes.data(), rb);
      continue;
    }
    for (int64_t j = 0; j < K; ++j) put_code(row, fi.elem, j, rd.codes[size_t(j)]);
    switch (fi.scheme) {
      case ScaleScheme::RowF32: std::memcpy(scales.data() + 4 * r, &rd.row_scale, 4); break;
      case ScaleScheme::GroupAffine:
        for (int64_t gi = 0; gi < ns; ++gi) {
          const uint16_t s = uint16_t(rd.affine[size_t(gi)] & 0xffffu), m = uint16_t(rd.affine[size_t(gi)] >> 16);
          std::memcpy(scales.data() + 2 * (r * ns + gi), &s, 2);
          std::memcpy(offsets.data() + 2 * (r * ns + gi), &m, 2);
        }
        break;
      case ScaleScheme::BlockE8M0:
      case ScaleScheme::BlockE4M3F32: std::memcpy(scales.data() + r * ns, rd.blocks.data(), size_t(ns)); break;
      default: break;
    }
    if (fi.scheme == ScaleScheme::TensorF32 || fi.scheme == ScaleScheme::BlockE4M3F32) {
      if (!have_tensor_scale) {
        t.tensor_scale = rd.row_scale;
        have_tensor_scale = true;
      } else {
        LB_CHECK(std::memcmp(&t.tensor_scale, &rd.row_scale, 4) == 0, "unpack_from_gpu('", w.name, "', ", fi.name,
                 "): row ", r, " has per-tensor scale ", rd.row_scale, " but row 0 has ", t.tensor_scale,
                 " (rows of different tensors cannot form one canonical tensor)");
      }
    }
  }
  t.codes = Buffer::own(std::move(codes));
  if (!scales.empty()) t.scales = Buffer::own(std::move(scales));
  if (!offsets.empty()) t.offsets = Buffer::own(std::move(offsets));
  t.validate();
  return t;
}

GpuWeightHost concat_rows(const std::vector<const GpuWeightHost*>& parts) {
  LB_CHECK(!parts.empty(), "concat_rows: no parts");
  const GpuWeightHost& p0 = *parts[0];
  std::vector<int64_t> starts;
  int64_t rows = 0;
  std::string name;
  for (const GpuWeightHost* p : parts) {
    LB_CHECK(p->fmt == p0.fmt && p->cols == p0.cols && p->group == p0.group, "concat_rows: '", p->name, "' (",
             format_name(p->fmt), ", K=", p->cols, ", group ", p->group, ") does not match '", p0.name, "' (",
             format_name(p0.fmt), ", K=", p0.cols, ", group ", p0.group, ")");
    LB_CHECK(!p->glu, "concat_rows: '", p->name, "' is a gate/up pair");
    starts.push_back(rows);
    rows += p->rows;
    name += (name.empty() ? "" : "|") + p->name;
  }
  std::vector<RowSource> srcs;
  for (const GpuWeightHost* p : parts) srcs.push_back(gpu_source(*p));
  Shape sh{p0.fmt, rows, p0.cols, qtensor_group(p0), false, 0};
  return build(sh, name, [&](int64_t r, RowData& rd) {
    const size_t i = size_t(std::upper_bound(starts.begin(), starts.end(), r) - starts.begin()) - 1;
    srcs[i](r - starts[i], rd);
  });
}

GpuWeightHost concat_glu(const GpuWeightHost& gate, const GpuWeightHost& up) {
  LB_CHECK(gate.fmt == up.fmt && gate.cols == up.cols && gate.group == up.group && gate.rows == up.rows,
           "concat_glu: gate '", gate.name, "' (", format_name(gate.fmt), " [", gate.rows, ", ", gate.cols,
           "]) and up '", up.name, "' (", format_name(up.fmt), " [", up.rows, ", ", up.cols, "]) differ");
  LB_CHECK(!gate.glu && !up.glu, "concat_glu: a part is already a gate/up pair");
  const RowSource g = gpu_source(gate), u = gpu_source(up);
  const int64_t ff = gate.rows;
  Shape sh{gate.fmt, 2 * ff, gate.cols, qtensor_group(gate), true, ff};
  return build(sh, gate.name + "|" + up.name, [&](int64_t r, RowData& rd) {
    if (r < ff) g(r, rd);
    else u(r - ff, rd);
  });
}

}  // namespace lowbit::cuda
