#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io_test_util.h"

namespace lowbit {
namespace {

using test::expect_error;
using test::TempDir;

// Builds a raw safetensors file from a header string and a data section.
std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> f(8 + header.size());
  uint64_t n = header.size();
  std::memcpy(f.data(), &n, 8);
  std::memcpy(f.data() + 8, header.data(), header.size());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

SafeTensorsFile parse(const std::vector<uint8_t>& b) { return SafeTensorsFile::parse(b.data(), b.size(), "t.safetensors"); }

TEST(SafeTensors, WriteThenReadRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("a.safetensors");
  std::vector<float> w = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  std::vector<uint16_t> bf = {0x3f80, 0x4000, 0xc040};
  std::vector<uint8_t> u = {1, 2, 3, 4, 5};
  SafeTensorsWriter wr;
  wr.add("w", "F32", {2, 3}, w.data(), w.size() * 4);
  wr.add("odd", "U8", {5}, u.data(), u.size());
  wr.add("b", "BF16", {3}, bf.data(), bf.size() * 2);
  wr.add("empty", "F32", {0, 4}, nullptr, 0);
  wr.set_metadata("k", "v");
  wr.set_metadata("lowbit.format", "1");
  wr.write(path);

  auto bytes = test::read_file_bytes(path);
  uint64_t hlen;
  std::memcpy(&hlen, bytes.data(), 8);
  EXPECT_EQ(hlen % 8, 0u) << "header padded so the data section starts 8-byte aligned";

  SafeTensorsFile f = SafeTensorsFile::open(path);
  EXPECT_EQ(f.metadata.at("k"), "v");
  EXPECT_EQ(f.metadata.at("lowbit.format"), "1");
  ASSERT_EQ(f.tensors.size(), 4u);
  const SafeTensorInfo& t = f.get("w");
  EXPECT_EQ(t.dtype, "F32");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  ASSERT_EQ(t.nbytes, 24u);
  EXPECT_EQ(std::memcmp(t.data, w.data(), 24), 0);
  EXPECT_EQ(std::memcmp(f.get("odd").data, u.data(), 5), 0);
  EXPECT_EQ(std::memcmp(f.get("b").data, bf.data(), 6), 0);
  EXPECT_EQ(f.get("empty").nbytes, 0u);
  EXPECT_EQ(f.find("nope"), nullptr);
  expect_error([&] { f.get("nope"); }, {"a.safetensors", "nope", "missing"});
}

TEST(SafeTensors, WriterRejectsInconsistentTensors) {
  std::vector<float> w(4);
  SafeTensorsWriter wr;
  expect_error([&] { wr.add("x", "F32", {3}, w.data(), 16); }, {"x", "16", "12"});
  expect_error([&] { wr.add("x", "Q4", {4}, w.data(), 16); }, {"x", "unknown dtype"});
  wr.add("x", "F32", {4}, w.data(), 16);
  expect_error([&] { wr.add("x", "F32", {4}, w.data(), 16); }, {"x", "twice"});
  expect_error([&] { wr.write("/nonexistent_dir/x.safetensors"); }, {"/nonexistent_dir/x.safetensors"});
}

TEST(SafeTensors, DtypeSizes) {
  EXPECT_EQ(safetensors_dtype_size("F32"), 4u);
  EXPECT_EQ(safetensors_dtype_size("BF16"), 2u);
  EXPECT_EQ(safetensors_dtype_size("F8_E4M3"), 1u);
  EXPECT_EQ(safetensors_dtype_size("I64"), 8u);
  EXPECT_EQ(safetensors_dtype_size("Q4_0"), 0u);
}

TEST(SafeTensorsBadInput, TruncatedAtEveryPoint) {
  std::vector<float> w = {1, 2, 3, 4};
  SafeTensorsWriter wr;
  wr.add("w", "F32", {4}, w.data(), 16);
  wr.add("v", "F32", {2}, w.data(), 8);
  TempDir dir;
  wr.write(dir.file("t.safetensors"));
  auto full = test::read_file_bytes(dir.file("t.safetensors"));
  for (size_t cut = 0; cut < full.size(); ++cut) {
    std::vector<uint8_t> b(full.begin(), full.begin() + long(cut));
    // Every cut loses header bytes or tensor data: always an error naming the file, never a crash.
    expect_error([&] { parse(b); }, {"t.safetensors"});
  }
  EXPECT_NO_THROW(parse(full));
}

TEST(SafeTensorsBadInput, HeaderProblems) {
  std::vector<uint8_t> data(16, 0);
  expect_error([&] { parse({1, 2, 3}); }, {"t.safetensors", "truncated"});
  {
    auto b = raw_file("{}", {});
    uint64_t huge = ~uint64_t(0);
    std::memcpy(b.data(), &huge, 8);
    expect_error([&] { parse(b); }, {"t.safetensors", "header length"});
  }
  expect_error([&] { parse(raw_file("{\"w\": {\"dtype\": \"F32\", ", data)); }, {"t.safetensors", "JSON"});
  expect_error([&] { parse(raw_file("[1, 2]", data)); }, {"t.safetensors", "object"});
  expect_error([&] { parse(raw_file(R"({"w": 5})", data)); }, {"'w'", "object"});
  expect_error([&] { parse(raw_file(R"({"w": {"shape": [4], "data_offsets": [0, 16]}})", data)); }, {"'w'", "dtype"});
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "F32", "data_offsets": [0, 16]}})", data)); }, {"'w'", "shape"});
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "F32", "shape": [4]}})", data)); }, {"'w'", "data_offsets"});
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, -16]}})", data)); },
               {"'w'", "data_offsets"});
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})", data)); },
               {"'w'", "shape"});
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "XX", "shape": [4], "data_offsets": [0, 16]}})", data)); },
               {"'w'", "unknown dtype 'XX'"});
  expect_error([&] { parse(raw_file(R"({"__metadata__": {"a": 1}})", data)); }, {"__metadata__", "'a'"});
  expect_error([&] {
    parse(raw_file(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}})", data));
  }, {"'w'", "overflows"});
}

TEST(SafeTensorsBadInput, OffsetsChecked) {
  std::vector<uint8_t> data(16, 0);
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})", data)); },
               {"t.safetensors", "'w'", "out of range", "16"});
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 4]}})", data)); },
               {"'w'", "out of range"});
  expect_error([&] { parse(raw_file(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})", data)); },
               {"'w'", "16 bytes", "needs 3 * 4"});
  expect_error([&] {
    parse(raw_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data));
  }, {"t.safetensors", "'a'", "'b'", "overlap"});
  // Adjacent and empty tensors are fine.
  auto ok = parse(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data));
  EXPECT_EQ(ok.tensors.size(), 3u);
}

}  // namespace
}  // namespace lowbit
