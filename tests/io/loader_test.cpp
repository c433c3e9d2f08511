#include "io/loader.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "fixtures.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io_test_util.h"
#include "util/half.h"

namespace lowbit {
namespace {

using test::expect_error;
using test::TempDir;
using test::quiet;

bool same_bytes(const Buffer& a, const Buffer& b) {
  return a.size == b.size && (a.size == 0 || std::memcmp(a.data, b.data, a.size) == 0);
}

// Every weight of a and b has the same format, shape and bytes.
void expect_same_weights(const Model& a, const Model& b) {
  ASSERT_EQ(a.weights.layers.size(), b.weights.layers.size());
  auto same = [](const QTensor& x, const QTensor& y, const std::string& what) {
    EXPECT_EQ(x.fmt, y.fmt) << what;
    EXPECT_EQ(x.rows, y.rows) << what;
    EXPECT_EQ(x.cols, y.cols) << what;
    EXPECT_EQ(x.group, y.group) << what;
    EXPECT_EQ(x.rule, y.rule) << what;
    EXPECT_EQ(x.tensor_scale, y.tensor_scale) << what;
    EXPECT_TRUE(same_bytes(x.codes, y.codes)) << what << " codes";
    EXPECT_TRUE(same_bytes(x.scales, y.scales)) << what << " scales";
    EXPECT_TRUE(same_bytes(x.offsets, y.offsets)) << what << " offsets";
  };
  same(a.weights.tok_embeddings, b.weights.tok_embeddings, "tok_embeddings");
  same(a.weights.output, b.weights.output, "output");
  EXPECT_EQ(a.weights.norm, b.weights.norm);
  for (size_t i = 0; i < a.weights.layers.size(); ++i) {
    const auto &x = a.weights.layers[i], &y = b.weights.layers[i];
    const std::string l = "layer " + std::to_string(i) + " ";
    same(x.wq, y.wq, l + "wq"); same(x.wk, y.wk, l + "wk"); same(x.wv, y.wv, l + "wv"); same(x.wo, y.wo, l + "wo");
    same(x.w1, y.w1, l + "w1"); same(x.w2, y.w2, l + "w2"); same(x.w3, y.w3, l + "w3");
    EXPECT_EQ(x.attn_norm, y.attn_norm) << l;
    EXPECT_EQ(x.ffn_norm, y.ffn_norm) << l;
  }
}

// ---- real files ---------------------------------------------------------------------------------

TEST(LoadGguf, SmolLM2ConfigAndWeights) {
  LOWBIT_REQUIRE_FILE(test::smollm2());
  Model m = load_model(test::smollm2(), quiet());
  const LlamaConfig& c = m.config;
  EXPECT_EQ(m.source, ModelSource::Gguf);
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.dim, 576);
  EXPECT_EQ(c.hidden_dim, 1536);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_seq_len, 8192);
  EXPECT_EQ(c.rope_theta, 100000.0f);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_TRUE(c.rope_interleaved);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_EQ(c.stop_ids, std::vector<int>{2});  // eos is <|im_end|> itself
  EXPECT_EQ(m.tokenizer_path, test::smollm2());
  int q41 = 0, q80 = 0, f32 = 0;
  for (const auto& t : m.source_types) q41 += t == "Q4_1", q80 += t == "Q8_0", f32 += t == "F32";
  EXPECT_EQ(q41, 210);
  EXPECT_EQ(q80, 1);
  EXPECT_EQ(f32, 61);
  EXPECT_EQ(m.weights.layers.size(), 30u);

  // Orientation: row r of a GGUF [cols, rows] tensor is the r-th run of cols/32 blocks. Decode a block of
  // blk.3.attn_k row 100 by hand (Q4_1: d, m, 16 bytes; low nibbles are elements 0..15).
  GgufFile g = GgufFile::open(test::smollm2());
  const GgufTensorInfo* k = g.find_tensor("blk.3.attn_k.weight");
  ASSERT_EQ(k->type, uint32_t(GgmlType::Q4_1));
  const QTensor& wk = m.weights.layers[3].wk;
  ASSERT_EQ(wk.fmt, Format::F32);
  ASSERT_EQ(wk.rows, 192);
  ASSERT_EQ(wk.cols, 576);
  const int64_t row = 100, block = 5;
  const uint8_t* blk = k->data + (row * (576 / 32) + block) * 20;
  uint16_t dh, mh;
  std::memcpy(&dh, blk, 2);
  std::memcpy(&mh, blk + 2, 2);
  const float d = f16_to_f32(dh), mn = f16_to_f32(mh);
  const float* got = reinterpret_cast<const float*>(wk.row_codes(row)) + block * 32;
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(got[j], float(blk[4 + j] & 15) * d + mn) << j;
    EXPECT_EQ(got[j + 16], float(blk[4 + j] >> 4) * d + mn) << j + 16;
  }
  // The tied output is the embedding itself (same buffer, no copy).
  EXPECT_EQ(m.weights.output.codes.data, m.weights.tok_embeddings.codes.data);
  // Norms are F32 in the file: copied as-is.
  const GgufTensorInfo* on = g.find_tensor("output_norm.weight");
  EXPECT_EQ(std::memcmp(m.weights.norm.data(), on->data, 576 * 4), 0);
}

TEST(LoadLlama2c, Stories260K) {
  LOWBIT_REQUIRE_FILE(test::stories260k());
  Model m = load_model(test::stories260k(), quiet());
  const LlamaConfig& c = m.config;
  EXPECT_EQ(m.source, ModelSource::Llama2c);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_TRUE(c.rope_interleaved);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.stop_ids, std::vector<int>{1});
  EXPECT_EQ(m.tokenizer_path, test::tok512());
  EXPECT_EQ(c.param_count(), 260032);

  // Offsets computed from the llama2.c layout: header 28 bytes, then tok (512*64), rms_att (5*64),
  // wq (5*64*64) -> layer 2's wq starts at float 512*64 + 5*64 + 2*64*64.
  auto bytes = test::read_file_bytes(test::stories260k());
  const QTensor& wq = m.weights.layers[2].wq;
  ASSERT_EQ(wq.fmt, Format::F32);
  EXPECT_EQ(std::memcmp(wq.codes.data, bytes.data() + 28 + 4 * (512 * 64 + 5 * 64 + 2 * 64 * 64), 64 * 64 * 4), 0);
  // Zero-copy: the weight points into the memory map, not a copy of the file.
  EXPECT_EQ(wq.codes.size, size_t(64 * 64 * 4));
  // rms_final follows wo (5*64*64), rms_ffn (5*64), w1, w2, w3 (3 * 5*64*172).
  const size_t final_norm = 512 * 64 + 5 * 64 + 5 * 64 * 64 + 2 * 5 * 64 * 32 + 5 * 64 * 64 + 5 * 64 + 3 * 5 * 64 * 172;
  EXPECT_EQ(std::memcmp(m.weights.norm.data(), bytes.data() + 28 + 4 * final_norm, 64 * 4), 0);
  EXPECT_EQ(m.weights.output.codes.data, m.weights.tok_embeddings.codes.data);
}

// ---- synthetic ----------------------------------------------------------------------------------

TEST(Synthetic, TinyShapesAndStatistics) {
  Model m = load_model("synthetic:tiny", quiet());
  EXPECT_EQ(m.source, ModelSource::Synthetic);
  EXPECT_EQ(m.path, "synthetic:tiny");
  const LlamaConfig& c = m.config;
  EXPECT_EQ(c.dim, 64);
  ASSERT_EQ(m.weights.layers.size(), 2u);
  const QTensor& w1 = m.weights.layers[1].w1;
  EXPECT_EQ(w1.fmt, Format::BF16);
  EXPECT_EQ(w1.rows, 160);
  EXPECT_EQ(w1.cols, 64);
  EXPECT_EQ(m.weights.layers[0].wk.rows, 32);
  EXPECT_EQ(m.weights.output.rows, 256);
  // Sample std of n normal(0, 0.02) draws has std ~ 0.02/sqrt(2n); 6 sigma plus bf16 rounding (2^-9 rel).
  std::vector<float> v(size_t(w1.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = bf16_to_f32(w1.codes.as<uint16_t>()[i]);
  double s = 0, s2 = 0;
  for (float x : v) s += x, s2 += double(x) * x;
  const double n = double(v.size()), mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  EXPECT_NEAR(sd, 0.02, 6 * 0.02 / std::sqrt(2 * n) + 0.02 * 0.002);
  EXPECT_NEAR(mean, 0.0, 6 * 0.02 / std::sqrt(n));
  for (float x : m.weights.layers[0].attn_norm) EXPECT_NEAR(x, 1.0f, 0.05f);
  size_t bytes = 0;
  m.for_each_linear([&](const std::string&, QTensor& t) { bytes += t.bytes(); });
  EXPECT_EQ(m.source_weight_bytes, bytes + m.weights.tok_embeddings.bytes() + size_t(2 * 2 + 1) * 64 * 4);
  EXPECT_EQ(m.weight_bytes(), m.source_weight_bytes);
}

TEST(Synthetic, DeterministicAcrossThreadCountsAndSeeded) {
  const int saved = omp_get_max_threads();
  // "small": its larger tensors are generated by a parallel loop.
  omp_set_num_threads(1);
  Model a = load_model("synthetic:small", quiet());
  omp_set_num_threads(3);
  Model b = load_model("synthetic:small", quiet());
  omp_set_num_threads(saved);
  expect_same_weights(a, b);
  LoadOptions o = quiet();
  o.seed = 1;
  Model c = load_model("synthetic:small", o);
  EXPECT_FALSE(same_bytes(a.weights.layers[0].wq.codes, c.weights.layers[0].wq.codes));
  // Tensors differ from each other (seeded by name), not copies of one stream.
  EXPECT_FALSE(std::memcmp(a.weights.layers[0].wk.codes.data, a.weights.layers[0].wv.codes.data, 64) == 0);
}

TEST(Synthetic, OtherFormatsAndErrors) {
  LoadOptions o = quiet();
  o.synthetic_format = Format::F16;
  Model h = load_model("synthetic:tiny", o);
  EXPECT_EQ(h.weights.layers[0].wq.fmt, Format::F16);
  o.synthetic_format = Format::INT4;
  expect_error([&] { load_model("synthetic:tiny", o); }, {"synthetic:tiny", "int4"});
  expect_error([&] { load_model("synthetic:llama-9b", quiet()); }, {"llama-9b", "llama-3.1-8b"});
  o = quiet();
  o.host_memory_limit = 100000;
  expect_error([&] { load_model("synthetic:tiny", o); },
               {"synthetic:tiny needs 0.0 GB of host memory for bf16 weights; 0.0 GB available"});
}

TEST(Synthetic, LargePresetsRefusedOrConfigOnly) {
  LoadOptions o = quiet();
  o.host_memory_limit = size_t(22.3e9);
  expect_error([&] { load_model("synthetic:llama-3.1-70b", o); },
               {"synthetic:llama-3.1-70b needs 141.1 GB of host memory for bf16 weights; 22.3 GB available"});
  o.config_only = true;
  Model m = load_model("synthetic:llama-3.1-8b", o);
  EXPECT_TRUE(m.weights.layers.empty());
  EXPECT_EQ(m.config.param_count(), 8030261248);
  // Linear weights in bf16 (2 bytes), the 2*32+1 norms of 4096 in f32.
  const int64_t norms = 65 * 4096;
  EXPECT_EQ(m.source_weight_bytes, size_t((8030261248 - norms) * 2 + norms * 4));
  EXPECT_EQ(m.source_types.size(), size_t(1 + 32 * 9 + 2));
  Model big = load_model("synthetic:llama-3.1-405b", o);
  EXPECT_EQ(big.config.n_layers, 126);
}

// ---- HF directories -----------------------------------------------------------------------------

TEST(LoadHf, SingleFileMatchesSource) {
  Model src = load_model("synthetic:tiny", quiet());
  TempDir dir;
  test::write_hf_dir(dir.path(), src);
  test::write_file(dir.file("tokenizer.json"), std::string("{}"));
  Model m = load_model(dir.path(), quiet());
  EXPECT_EQ(m.source, ModelSource::HfSafetensors);
  EXPECT_FALSE(m.config.rope_interleaved);
  EXPECT_EQ(m.config.dim, 64);
  EXPECT_EQ(m.tokenizer_path, dir.file("tokenizer.json"));
  expect_same_weights(src, m);
  // A safetensors file with config.json next to it loads its directory.
  Model via_file = load_model(dir.file("model.safetensors"), quiet());
  expect_same_weights(src, via_file);
}

TEST(LoadHf, ShardedAndTied) {
  LlamaConfig tied_cfg = preset_config("tiny");
  Model src = load_model("synthetic:tiny", quiet());
  src.config.tie_embeddings = true;
  src.weights.output = src.weights.tok_embeddings;
  TempDir dir;
  test::HfDirOptions o;
  o.shards = 3;
  test::write_hf_dir(dir.path(), src, o);
  EXPECT_TRUE(file_exists(dir.file("model-00003-of-00003.safetensors")));
  Model m = load_model(dir.path(), quiet());
  EXPECT_TRUE(m.config.tie_embeddings);
  EXPECT_EQ(m.weights.output.codes.data, m.weights.tok_embeddings.codes.data);
  expect_same_weights(src, m);
}

// ---- lowbit files -------------------------------------------------------------------------------

// A hand-built tensor of a scaled format (bytes filled directly; quantize() is not needed to test I/O).
QTensor hand_built(Format fmt, int64_t rows, int64_t cols, int group, uint8_t fill) {
  QTensor t;
  t.name = "hand";
  t.fmt = fmt;
  t.rows = rows;
  t.cols = cols;
  t.group = effective_group(fmt, group);
  std::vector<uint8_t> codes(row_code_bytes(fmt, cols) * size_t(rows));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t(fill + i * 7);
  t.codes = Buffer::own(codes);
  const size_t ns = size_t(scales_per_row(fmt, cols, t.group) * rows);
  switch (format_info(fmt).scheme) {
    case ScaleScheme::RowF32: {
      std::vector<float> s(ns);
      for (size_t i = 0; i < ns; ++i) s[i] = 0.01f * float(i + 1);
      t.scales = Buffer::own(std::vector<uint8_t>(reinterpret_cast<uint8_t*>(s.data()),
                                                  reinterpret_cast<uint8_t*>(s.data()) + ns * 4));
      break;
    }
    case ScaleScheme::GroupAffine: {
      std::vector<uint8_t> s(ns * 2), m(ns * 2);
      for (size_t i = 0; i < s.size(); ++i) s[i] = uint8_t(i * 3 + 1), m[i] = uint8_t(i * 5 + 2);
      t.scales = Buffer::own(s);
      t.offsets = Buffer::own(m);
      break;
    }
    case ScaleScheme::BlockE8M0:
    case ScaleScheme::BlockE4M3F32: {
      std::vector<uint8_t> s(ns);
      for (size_t i = 0; i < ns; ++i) s[i] = uint8_t(120 + i % 10);
      t.scales = Buffer::own(s);
      t.tensor_scale = 0.75f;
      break;
    }
    case ScaleScheme::TensorF32: t.tensor_scale = 0.125f; break;
    case ScaleScheme::None: break;
  }
  t.rule = ScaleRule::RCeil;
  t.validate();
  return t;
}

TEST(LowbitFile, RoundTripPlainAndScaledFormats) {
  Model src = load_model("synthetic:tiny", quiet());
  src.config.rope_interleaved = true;  // a non-default value must survive
  src.config.stop_ids = {2, 7};
  auto& L0 = src.weights.layers[0];
  L0.wq = hand_built(Format::INT4, 64, 64, 32, 3);
  L0.wk = hand_built(Format::INT8, 32, 64, 0, 5);
  L0.wv = hand_built(Format::MXFP4, 32, 64, 0, 9);
  L0.wo = hand_built(Format::TERNARY, 64, 64, 0, 11);
  L0.w1 = hand_built(Format::NVFP4, 160, 64, 0, 13);
  L0.w2 = hand_built(Format::FP6_E3M2, 64, 160, 0, 17);
  L0.w3 = make_f32("w3", 160, 64, std::vector<float>(160 * 64, 0.5f).data());
  TempDir dir;
  const std::string path = dir.file("tiny.lowbit.safetensors");
  save_lowbit(src, path, "");
  Model m = load_model(path, quiet());
  EXPECT_EQ(m.source, ModelSource::LowbitQuantized);
  EXPECT_EQ(config_to_json(m.config), config_to_json(src.config));
  EXPECT_EQ(m.tokenizer_path, "");
  expect_same_weights(src, m);
  EXPECT_EQ(m.weights.layers[0].wq.fmt, Format::INT4);
  EXPECT_EQ(m.weights.layers[0].wq.group, 32);
  EXPECT_EQ(m.weights.layers[0].wq.rule, ScaleRule::RCeil);
  EXPECT_EQ(m.weights.layers[0].wo.tensor_scale, 0.125f);
  EXPECT_FALSE(lowbit_embedded_tokenizer(path).has_value());
  // Zero-copy: the embedding's codes (first in the file, 4-byte aligned) point into the memory map.
  ASSERT_FALSE(m.keep_alive.empty());
  const auto* map = static_cast<const MappedFile*>(m.keep_alive[0].get());
  const uint8_t* p = m.weights.tok_embeddings.codes.data;
  EXPECT_TRUE(p >= map->data() && p < map->data() + map->size());
  EXPECT_EQ(m.source_types[2], "int4");  // tok_embeddings, layers.0.attention_norm, layers.0.attention.wq
}

TEST(LowbitFile, TiedModelAndEmbeddedTokenizer) {
  TempDir dir;
  test::write_file(dir.file("tok.bin"), std::vector<uint8_t>{4, 0, 0, 0, 1, 2, 3});
  LoadOptions o = quiet();
  o.synthetic_format = Format::F32;
  Model src = load_model("synthetic:llama-3.2-1b", [] {
    LoadOptions c;
    c.config_only = true;
    return c;
  }());
  EXPECT_TRUE(src.config.tie_embeddings);
  // A tied model in tiny shapes: the tiny preset with tied embeddings.
  Model t = load_model("synthetic:tiny", o);
  t.config.tie_embeddings = true;
  t.weights.output = t.weights.tok_embeddings;
  const std::string path = dir.file("t.lowbit.safetensors");
  save_lowbit(t, path, dir.file("tok.bin"));
  SafeTensorsFile f = SafeTensorsFile::open(path);
  EXPECT_EQ(f.find("output.codes"), nullptr);
  EXPECT_EQ(f.metadata.at("lowbit.format"), "1");
  Model m = load_model(path, quiet());
  EXPECT_TRUE(m.config.tie_embeddings);
  EXPECT_EQ(m.weights.output.codes.data, m.weights.tok_embeddings.codes.data);
  expect_same_weights(t, m);
  EXPECT_EQ(m.tokenizer_path, path);
  auto tok = lowbit_embedded_tokenizer(path);
  ASSERT_TRUE(tok.has_value());
  EXPECT_EQ(tok->kind, "llama2c");
  EXPECT_EQ(tok->bytes, (std::vector<uint8_t>{4, 0, 0, 0, 1, 2, 3}));
  test::write_file(dir.file("tokenizer.json"), std::string(" {\"model\": {}}"));
  save_lowbit(t, path, dir.file("tokenizer.json"));
  EXPECT_EQ(lowbit_embedded_tokenizer(path)->kind, "hf-json");
  test::write_file(dir.file("tokenizer.model"), std::string("IQ== 0\nIg== 1\n"));
  save_lowbit(t, path, dir.file("tokenizer.model"));
  EXPECT_EQ(lowbit_embedded_tokenizer(path)->kind, "tiktoken");
}

TEST(LowbitFile, GgufTokenizerIsReducedToItsVocabulary) {
  LOWBIT_REQUIRE_FILE(test::smollm2());
  TempDir dir;
  Model t = load_model("synthetic:tiny", quiet());
  const std::string path = dir.file("t.lowbit.safetensors");
  save_lowbit(t, path, test::smollm2());
  auto tok = lowbit_embedded_tokenizer(path);
  ASSERT_TRUE(tok.has_value());
  EXPECT_EQ(tok->kind, "gguf");
  EXPECT_LT(tok->bytes.size(), size_t(4) << 20);  // the vocabulary, not the 98 MB of weights
  GgufFile g = GgufFile::parse(tok->bytes.data(), tok->bytes.size(), "embedded");
  EXPECT_TRUE(g.tensors.empty());
  GgufFile orig = GgufFile::open(test::smollm2());
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens"), orig.get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.merges"), orig.get_string_array("tokenizer.ggml.merges"));
  EXPECT_EQ(g.get_int_array("tokenizer.ggml.token_type"), orig.get_int_array("tokenizer.ggml.token_type"));
  EXPECT_EQ(g.get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(g.kv.at("tokenizer.ggml.eos_token_id").type, GgufType::UINT32);
  EXPECT_EQ(g.get_string("tokenizer.chat_template"), orig.get_string("tokenizer.chat_template"));
  EXPECT_FALSE(g.has("llama.block_count"));
}

// ---- GGUF fixtures ------------------------------------------------------------------------------

TEST(LoadGguf, TinyF32AndQ8_0) {
  Model src = test::tiny_f32();
  TempDir dir;
  test::write_file(dir.file("tiny.gguf"), test::tiny_gguf(src));
  Model m = load_model(dir.file("tiny.gguf"), quiet());
  EXPECT_TRUE(m.config.rope_interleaved);
  EXPECT_FALSE(m.config.tie_embeddings);
  EXPECT_EQ(m.config.stop_ids, (std::vector<int>{2, 5}));  // eos + <|im_end|>
  expect_same_weights(src, m);

  test::TinyGgufOptions o;
  o.linear_type = 8;
  o.tied = true;
  auto bytes = test::tiny_gguf(src, o);
  test::write_file(dir.file("q8.gguf"), bytes);
  Model q = load_model(dir.file("q8.gguf"), quiet());
  EXPECT_TRUE(q.config.tie_embeddings);
  GgufFile g = GgufFile::parse(bytes.data(), bytes.size(), "q8");
  const GgufTensorInfo* wv = g.find_tensor("blk.1.attn_v.weight");
  std::vector<float> want(size_t(wv->numel()));
  ggml_dequantize(wv->type, wv->data, wv->numel(), want.data(), wv->name);
  EXPECT_EQ(test::floats_of(q.weights.layers[1].wv), want);
  // Q8_0 of the f32 weights: within half a quantization step (amax/127/2) of the source.
  auto orig = test::floats_of(src.weights.layers[1].wv);
  for (size_t b = 0; b < orig.size(); b += 32) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(orig[b + j]));
    for (size_t j = 0; j < 32; ++j) EXPECT_LE(std::fabs(want[b + j] - orig[b + j]), amax / 127 * 0.51f + 1e-7f);
  }
}

TEST(LoadGguf, RopeFreqsTensorBecomesLlama3Scaling) {
  // Llama 3.1 GGUFs store the llama3 scaling as per-pair divisors (rope_freqs.weight), not as metadata.
  Model src = test::tiny_f32();
  LlamaConfig scaled = src.config;
  scaled.rope_theta = 500000.0f;
  scaled.rope_scaling = RopeScaling{"llama3", 8.0f, 1.0f, 4.0f, 64};
  LlamaConfig unscaled = scaled;
  unscaled.rope_scaling = {};
  const auto a = unscaled.rope_inv_freq(), b = scaled.rope_inv_freq();
  std::vector<float> div(a.size());
  for (size_t i = 0; i < a.size(); ++i) div[i] = a[i] / b[i];
  ASSERT_EQ(div.front(), 1.0f);  // the highest frequency is kept
  ASSERT_NEAR(div.back(), 8.0f, 1e-5f);  // the lowest is divided by the factor
  auto with_divisors = [&](const std::vector<float>& d) {
    test::TinyGgufOptions o;
    o.rope_theta = 500000.0f;
    o.extra_kv = [&](test::GgufBuilder& g) {
      g.kv_u32("llama.rope.scaling.original_context_length", 64);
      g.tensor("rope_freqs.weight", {uint64_t(d.size())}, 0, test::bytes_of(d));
    };
    return test::tiny_gguf(src, o);
  };
  TempDir dir;
  test::write_file(dir.file("r.gguf"), with_divisors(div));
  LoadOptions co = quiet();
  co.config_only = true;
  Model m = load_model(dir.file("r.gguf"), co);
  EXPECT_EQ(m.config.rope_scaling.type, "llama3");
  EXPECT_EQ(m.config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(m.config.rope_scaling.original_max_position, 64);
  EXPECT_EQ(m.config.rope_inv_freq(), b);
  test::write_file(dir.file("bad.gguf"), with_divisors(std::vector<float>(div.size(), 3.0f)));
  expect_error([&] { load_model(dir.file("bad.gguf"), co); }, {"bad.gguf", "rope_freqs.weight", "llama3"});
}

// ---- dispatch and CLI ---------------------------------------------------------------------------

TEST(LoadModel, DispatchErrors) {
  TempDir dir;
  expect_error([&] { load_model(dir.file("nope.gguf"), quiet()); }, {"nope.gguf", "no such file"});
  expect_error([&] { load_model("", quiet()); }, {"no model"});
  test::write_file(dir.file("x.safetensors"), std::vector<uint8_t>(100, 0));
  expect_error([&] { load_model(dir.file("x.safetensors"), quiet()); }, {"x.safetensors"});
  SafeTensorsWriter w;
  float v = 1;
  w.add("a", "F32", {1}, &v, 4);
  w.write(dir.file("plain.safetensors"));
  expect_error([&] { load_model(dir.file("plain.safetensors"), quiet()); },
               {"plain.safetensors", "without lowbit metadata", "config.json"});
}

TEST(InfoCli, SyntheticAndFiles) {
  auto r = test::run_cli("info --model synthetic:llama-3.1-8b");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("8,030,261,248"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("llama3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bf16 x226"), std::string::npos) << r.out;
  r = test::run_cli("info --model synthetic:llama-3.1-405b --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["params"].get<int64_t>(), 405853388800);
  EXPECT_EQ(j["config"]["n_layers"].get<int>(), 126);
  r = test::run_cli("info --model /nonexistent/model.gguf");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;
  if (file_exists(test::smollm2())) {
    r = test::run_cli("info --model " + test::smollm2());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("Q4_1 x210"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("134,515,008"), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace lowbit
