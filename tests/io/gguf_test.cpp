#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gguf_builder.h"
#include "io_test_util.h"
#include "../test_util.h"
#include "util/error.h"

namespace lowbit {
namespace {

using test::bytes_of;
using test::GgufBuilder;

// fp16 bit patterns of small exact values (sign | exponent (bias 15) | mantissa).
constexpr uint16_t kF16Half = 0x3800;     // 0.5
constexpr uint16_t kF16Quarter = 0x3400;  // 0.25
constexpr uint16_t kF16Two = 0x4000;      // 2.0
constexpr uint16_t kF16MinusOneHalf = 0xBE00;  // -1.5

std::vector<uint8_t> q8_0_block() {
  std::vector<uint8_t> b(34);
  std::memcpy(b.data(), &kF16Half, 2);
  for (int j = 0; j < 32; ++j) b[2 + j] = uint8_t(int8_t(j - 16));
  return b;
}
std::vector<uint8_t> q4_0_block() {
  std::vector<uint8_t> b(18);
  std::memcpy(b.data(), &kF16Quarter, 2);
  for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | ((15 - j) << 4));
  return b;
}
std::vector<uint8_t> q4_1_block() {
  std::vector<uint8_t> b(20);
  std::memcpy(b.data(), &kF16Two, 2);
  std::memcpy(b.data() + 2, &kF16MinusOneHalf, 2);
  for (int j = 0; j < 16; ++j) b[4 + j] = uint8_t(((j * 7) & 15) | (((j + 3) & 15) << 4));
  return b;
}

TEST(GgufDequant, Q8_0HandBlock) {
  auto b = q8_0_block();
  float y[32];
  ggml_dequantize(uint32_t(GgmlType::Q8_0), b.data(), 32, y, "t");
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], float(j - 16) * 0.5f) << j;
}

TEST(GgufDequant, Q4_0HandBlockLowNibblesFirst) {
  auto b = q4_0_block();
  float y[32];
  ggml_dequantize(uint32_t(GgmlType::Q4_0), b.data(), 32, y, "t");
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j - 8) * 0.25f) << j;
    EXPECT_EQ(y[j + 16], float((15 - j) - 8) * 0.25f) << j + 16;
  }
}

TEST(GgufDequant, Q4_1HandBlock) {
  auto b = q4_1_block();
  float y[32];
  ggml_dequantize(uint32_t(GgmlType::Q4_1), b.data(), 32, y, "t");
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float((j * 7) & 15) * 2.0f - 1.5f) << j;
    EXPECT_EQ(y[j + 16], float((j + 3) & 15) * 2.0f - 1.5f) << j + 16;
  }
}

TEST(GgufDequant, MultipleBlocksAndPlainTypes) {
  std::vector<uint8_t> two = q8_0_block();
  auto second = q8_0_block();
  uint16_t d = kF16Two;
  std::memcpy(second.data(), &d, 2);
  two.insert(two.end(), second.begin(), second.end());
  std::vector<float> y(64);
  ggml_dequantize(uint32_t(GgmlType::Q8_0), two.data(), 64, y.data(), "t");
  EXPECT_EQ(y[31], 15 * 0.5f);
  EXPECT_EQ(y[32], -16 * 2.0f);

  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x0001};  // 1, -2, smallest subnormal 2^-24
  float f[3];
  ggml_dequantize(uint32_t(GgmlType::F16), reinterpret_cast<const uint8_t*>(h.data()), 3, f, "t");
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], std::ldexp(1.0f, -24));
  std::vector<uint16_t> bf = {0x3f80, 0xc040};  // 1, -3
  ggml_dequantize(uint32_t(GgmlType::BF16), reinterpret_cast<const uint8_t*>(bf.data()), 2, f, "t");
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], -3.0f);
}

TEST(GgufDequant, UnknownTypeNamesTensorAndType) {
  uint8_t dummy[256] = {};
  float y[256];
  try {
    ggml_dequantize(14, dummy, 256, y, "blk.0.attn_q.weight");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("blk.0.attn_q.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("Q6_K"), std::string::npos) << m;
    EXPECT_NE(m.find("14"), std::string::npos) << m;
  }
  EXPECT_THROW(ggml_dequantize(99, dummy, 1, y, "x"), Error);
  EXPECT_THROW(ggml_dequantize(uint32_t(GgmlType::Q8_0), dummy, 33, y, "x"), Error);
}

TEST(GgufParse, MetadataOfEveryTypeAndTensors) {
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.block_count", 2);
  b.kv_i32("neg", -7);
  b.kv_u64("big", 1ull << 40);
  b.kv_i64("i64", -(1ll << 40));
  b.kv_f32("f32", 0.25f);
  b.kv_f64("f64", 1e-300);
  b.kv_bool("flag", true);
  b.kv_str_array("tokens", {"a", "", "<|eot_id|>"});
  b.kv_i32_array("types", {1, 2, 3});
  b.kv_f32_array("scores", {0.5f, -1.0f});
  b.kv_nested_str_array("nested", {{"x", "y"}, {}, {"z"}});
  b.kv_u32("after_nested", 5);
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  b.tensor("w", {3, 2}, uint32_t(GgmlType::F32), bytes_of(w));
  b.tensor("q", {32}, uint32_t(GgmlType::Q4_1), q4_1_block());
  auto bytes = b.build();
  GgufFile g = GgufFile::parse(bytes.data(), bytes.size(), "mem.gguf");
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_int("llama.block_count"), 2);
  EXPECT_EQ(g.get_int("neg"), -7);
  EXPECT_EQ(g.get_int("big"), int64_t(1) << 40);
  EXPECT_EQ(g.get_int("i64"), -(int64_t(1) << 40));
  EXPECT_EQ(g.get_float("f32"), 0.25);
  EXPECT_EQ(g.get_float("f64"), 1e-300);
  EXPECT_EQ(g.get_float("llama.block_count"), 2.0);  // integers widen to floats
  EXPECT_TRUE(std::get<bool>(g.kv.at("flag").v));
  EXPECT_EQ(g.get_string_array("tokens"), (std::vector<std::string>{"a", "", "<|eot_id|>"}));
  EXPECT_EQ(g.get_int_array("types"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(g.get_float_array("scores"), (std::vector<double>{0.5, -1.0}));
  const GgufValue& nested = g.kv.at("nested");
  EXPECT_EQ(nested.array_type, GgufType::ARRAY);
  ASSERT_EQ(nested.elements.size(), 3u);
  EXPECT_EQ(std::get<std::vector<std::string>>(nested.elements[0].v), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(std::get<std::vector<std::string>>(nested.elements[1].v).empty());
  EXPECT_EQ(std::get<std::vector<std::string>>(nested.elements[2].v), std::vector<std::string>{"z"});
  EXPECT_EQ(g.get_int("after_nested"), 5);
  EXPECT_EQ(g.get_int_or("missing", 42), 42);
  EXPECT_EQ(g.get_string_or("missing", "d"), "d");
  EXPECT_THROW(g.get_string("llama.block_count"), Error);
  EXPECT_THROW(g.get_int("f32"), Error);
  EXPECT_THROW(g.get_int_or("tokens", 1), Error);  // present with a wrong type

  ASSERT_EQ(g.tensors.size(), 2u);
  const GgufTensorInfo* t = g.find_tensor("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t->numel(), 6);
  EXPECT_EQ(t->nbytes, 24u);
  EXPECT_EQ((t->data - bytes.data()) % 32, 0);
  float y[6];
  std::memcpy(y, t->data, 24);
  EXPECT_EQ(y[5], 6.0f);
  const GgufTensorInfo* q = g.find_tensor("q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->nbytes, 20u);
  EXPECT_EQ(q->offset, 32u);
  EXPECT_EQ(g.find_tensor("nope"), nullptr);
}

TEST(GgufParse, MetadataWriteParseRoundTrip) {
  GgufBuilder b;
  b.kv_str("s", "text");
  b.kv_u32("u32", 7);
  b.kv_i32("i32", -7);
  b.kv_u64("u64", ~uint64_t(0));
  b.kv_f32("f32", 0.1f);
  b.kv_f64("f64", 0.1);
  b.kv_bool("b", true);
  b.kv_str_array("sa", {"a", "bc"});
  b.kv_i32_array("ia", {-1, 2});
  b.kv_f32_array("fa", {0.1f});
  b.kv_nested_str_array("na", {{"x"}, {"y", "z"}});
  auto bytes = b.build();
  GgufFile g = GgufFile::parse(bytes.data(), bytes.size(), "in");
  auto again = gguf_write_metadata(g.kv);
  GgufFile h = GgufFile::parse(again.data(), again.size(), "out");
  ASSERT_EQ(h.kv.size(), g.kv.size());
  for (const auto& [k, v] : g.kv) {
    const GgufValue& w = h.kv.at(k);
    EXPECT_EQ(w.type, v.type) << k;
    EXPECT_EQ(w.array_type, v.array_type) << k;
    EXPECT_TRUE(w.v == v.v) << k;
    ASSERT_EQ(w.elements.size(), v.elements.size()) << k;
    for (size_t i = 0; i < v.elements.size(); ++i) EXPECT_TRUE(w.elements[i].v == v.elements[i].v) << k;
  }
  // Nesting deeper than the reader's limit is refused, not recursed into.
  std::vector<uint8_t> deep = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  auto put = [&](uint64_t x, int n) {
    for (int i = 0; i < n; ++i) deep.push_back(uint8_t(x >> (8 * i)));
  };
  put(0, 8);
  put(1, 8);
  put(1, 8);
  deep.push_back('k');
  put(9, 4);
  for (int d = 0; d < 10; ++d) put(9, 4), put(1, 8);
  put(4, 4);
  put(0, 8);
  test::expect_error([&] { GgufFile::parse(deep.data(), deep.size(), "deep.gguf"); }, {"deep.gguf", "nests arrays"});
}

TEST(GgufParse, VersionTwoAndCustomAlignment) {
  GgufBuilder b(2, 64);
  b.kv_u32("general.alignment", 64);
  std::vector<float> w(3, 1.0f);
  b.tensor("a", {3}, 0, bytes_of(w));
  b.tensor("b", {3}, 0, bytes_of(w));
  auto bytes = b.build();
  GgufFile g = GgufFile::parse(bytes.data(), bytes.size(), "v2.gguf");
  EXPECT_EQ(g.version, 2u);
  EXPECT_EQ(g.find_tensor("b")->offset, 64u);
  EXPECT_EQ((g.find_tensor("b")->data - bytes.data()) % 64, 0);
}

TEST(GgufParse, SmolLM2Header) {
  LOWBIT_REQUIRE_FILE(test::smollm2());
  GgufFile g = GgufFile::open(test::smollm2());
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_EQ(g.get_int("llama.block_count"), 30);
  EXPECT_EQ(g.get_int("llama.embedding_length"), 576);
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  const GgufTensorInfo* e = g.find_tensor("token_embd.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dims, (std::vector<int64_t>{576, 49152}));
  EXPECT_EQ(g.find_tensor("blk.29.ffn_down.weight")->dims, (std::vector<int64_t>{1536, 576}));
}

}  // namespace
}  // namespace lowbit
