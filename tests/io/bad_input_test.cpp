// Corrupt and inconsistent model files: each must give an Error naming the file and the problem, never a
// crash or garbage.
#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "fixtures.h"
#include "io/gguf.h"
#include "io/loader.h"
#include "io/safetensors.h"
#include "io_test_util.h"

namespace lowbit {
namespace {

using test::expect_error;
using test::TempDir;
using test::quiet;

// ---- GGUF ---------------------------------------------------------------------------------------

TEST(BadGguf, TruncatedAtManyPoints) {
  Model src = test::tiny_f32();
  const auto full = test::tiny_gguf(src);
  GgufFile whole = GgufFile::parse(full.data(), full.size(), "whole");
  const size_t data_start = size_t(whole.tensors.front().data - full.data());
  // Every byte through the header and tensor infos, then strided through the data section.
  for (size_t cut = 0; cut < full.size(); cut += cut < data_start + 64 ? 1 : 997) {
    std::vector<uint8_t> b(full.begin(), full.begin() + long(cut));
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "cut.gguf"); }, {"cut.gguf"});
  }
  // Through load_model, the message names the file on disk and says what was wrong.
  TempDir dir;
  std::vector<uint8_t> b(full.begin(), full.end() - 100);
  test::write_file(dir.file("short.gguf"), b);
  expect_error([&] { load_model(dir.file("short.gguf"), quiet()); },
               {"short.gguf", "output.weight", "extends past the end of the file"});
  b.assign(full.begin(), full.begin() + 30);
  test::write_file(dir.file("header.gguf"), b);
  expect_error([&] { load_model(dir.file("header.gguf"), quiet()); }, {"header.gguf", "truncated"});
}

TEST(BadGguf, WrongMagicAndVersion) {
  TempDir dir;
  test::write_file(dir.file("x.gguf"), std::string("GGML\x03\0\0\0 and more bytes here......", 40));
  expect_error([&] { load_model(dir.file("x.gguf"), quiet()); }, {"x.gguf", "not a GGUF file"});
  std::vector<uint8_t> v1(24, 0);
  std::memcpy(v1.data(), "GGUF\x01", 5);
  expect_error([&] { GgufFile::parse(v1.data(), v1.size(), "v1.gguf"); }, {"v1.gguf", "version 1"});
  v1[4] = 9;
  expect_error([&] { GgufFile::parse(v1.data(), v1.size(), "v9.gguf"); }, {"v9.gguf", "version 9"});
}

TEST(BadGguf, HugeCountsAndLengthsDoNotAllocate) {
  // tensor count 2^60 in a 24-byte file: rejected before any allocation.
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  auto put64 = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i)));
  };
  put64(uint64_t(1) << 60);
  put64(0);
  expect_error([&] { GgufFile::parse(b.data(), b.size(), "n.gguf"); }, {"n.gguf", "tensor count"});
  // A string length of 2^63 for the first key.
  b.resize(8);
  put64(0);
  put64(1);
  put64(uint64_t(1) << 63);
  b.resize(b.size() + 16, 'a');
  expect_error([&] { GgufFile::parse(b.data(), b.size(), "s.gguf"); }, {"s.gguf", "metadata key", "length"});
  // An array claiming 2^40 uint32 elements.
  test::GgufBuilder g;
  std::vector<uint8_t> raw;
  auto app = [&](const void* p, size_t n) { raw.insert(raw.end(), (const uint8_t*)p, (const uint8_t*)p + n); };
  uint64_t klen = 1, count = uint64_t(1) << 40;
  uint32_t arr = 9, u32 = 4;
  app(&klen, 8);
  raw.push_back('k');
  app(&arr, 4);
  app(&u32, 4);
  app(&count, 8);
  raw.resize(raw.size() + 64, 0);
  g.raw_kv(raw, 1);
  auto a = g.build();
  expect_error([&] { GgufFile::parse(a.data(), a.size(), "a.gguf"); }, {"a.gguf", "array length"});
}

TEST(BadGguf, TensorInfoProblems) {
  std::vector<float> w(8, 1.0f);
  {
    test::GgufBuilder g;
    g.tensor("w", {8}, 0, test::bytes_of(w), 4096);  // offset past the data
    auto b = g.build();
    b.resize(b.size() - 4096 + 32);
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "o.gguf"); },
                 {"o.gguf", "'w'", "extends past the end"});
  }
  {
    test::GgufBuilder g;
    g.tensor("a", {8}, 0, test::bytes_of(w), 0);
    g.tensor("b", {8}, 0, test::bytes_of(w), 0);  // same bytes as a
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "ov.gguf"); }, {"ov.gguf", "'a'", "'b'", "overlap"});
  }
  {
    test::GgufBuilder g;
    g.tensor("q", {8}, 99, test::bytes_of(w));
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "t.gguf"); }, {"t.gguf", "'q'", "unknown ggml type id 99"});
  }
  {
    test::GgufBuilder g;
    g.tensor("q", {40}, 8, std::vector<uint8_t>(68));  // Q8_0 rows must be whole blocks of 32
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "blk.gguf"); }, {"blk.gguf", "'q'", "block size 32"});
  }
  {
    test::GgufBuilder g;
    g.tensor("q", {8}, 0, test::bytes_of(w), 4);  // not a multiple of the alignment
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "al.gguf"); }, {"al.gguf", "'q'", "alignment"});
  }
  {
    test::GgufBuilder g;
    g.kv_u32("general.alignment", 3);
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "a3.gguf"); }, {"a3.gguf", "power of two"});
  }
  {
    test::GgufBuilder g;
    g.tensor("big", {uint64_t(1) << 40, uint64_t(1) << 40}, 0, test::bytes_of(w));
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "big.gguf"); }, {"big.gguf", "'big'"});
  }
  {
    test::GgufBuilder g;
    g.kv_u32("k", 1);
    g.kv_u32("k", 2);
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "d.gguf"); }, {"d.gguf", "duplicate", "'k'"});
  }
  {
    test::GgufBuilder g;
    std::vector<uint8_t> raw = {1, 0, 0, 0, 0, 0, 0, 0, 'k', 42, 0, 0, 0, 0};  // value type 42
    g.raw_kv(raw, 1);
    auto b = g.build();
    expect_error([&] { GgufFile::parse(b.data(), b.size(), "vt.gguf"); }, {"vt.gguf", "'k'", "unknown value type 42"});
  }
}

TEST(BadGguf, ModelLevelProblems) {
  Model src = test::tiny_f32();
  TempDir dir;
  auto write_and_load = [&](const test::TinyGgufOptions& o, const std::string& name) {
    test::write_file(dir.file(name), test::tiny_gguf(src, o));
    load_model(dir.file(name), quiet());
  };
  test::TinyGgufOptions o;
  o.edit = [](const std::string& c, std::string&, std::vector<uint64_t>& dims, uint32_t&, std::vector<uint8_t>& b) {
    if (c == "layers.1.attention.wk") {
      dims = {64, 16};  // half the rows the config implies
      b.resize(b.size() / 2);
    }
    return true;
  };
  expect_error([&] { write_and_load(o, "shape.gguf"); },
               {"shape.gguf", "blk.1.attn_k.weight", "[16, 64]", "expected [32, 64]"});
  o.edit = [](const std::string& c, std::string&, std::vector<uint64_t>&, uint32_t&, std::vector<uint8_t>&) {
    return c != "layers.0.ffn_norm";
  };
  expect_error([&] { write_and_load(o, "missing.gguf"); }, {"missing.gguf", "blk.0.ffn_norm.weight", "missing"});
  // A block count far beyond the tensors in the file is an error before anything is sized by it (a fuzzer
  // once made the loader reserve a table for 2^21 claimed layers and run out of memory).
  o.edit = nullptr;
  o.claimed_layers = 1u << 30;
  expect_error([&] { write_and_load(o, "layers.gguf"); }, {"layers.gguf", "blk.1073741823.attn_norm.weight", "missing"});
  o.claimed_layers = 0;
  // Q5_0 is a known ggml type lowbit does not decode: the error names the tensor and type.
  o.edit = [](const std::string& c, std::string&, std::vector<uint64_t>& dims, uint32_t& type,
              std::vector<uint8_t>& b) {
    if (c == "layers.0.attention.wq") {
      type = 6;
      b.assign(size_t(dims[0] * dims[1] / 32 * 22), 0);
    }
    return true;
  };
  expect_error([&] { write_and_load(o, "q5.gguf"); }, {"q5.gguf", "blk.0.attn_q.weight", "Q5_0", "id 6"});
  // ...but `info` (config only) still describes it.
  LoadOptions co = quiet();
  co.config_only = true;
  Model info = load_model(dir.file("q5.gguf"), co);
  EXPECT_EQ(info.source_types[2], "Q5_0");
  o.edit = nullptr;
  o.extra_kv = [](test::GgufBuilder& g) { g.kv_str("general.name", "x"); };
  test::GgufBuilder arch;
  arch.kv_str("general.architecture", "qwen2");
  auto qb = arch.build();
  test::write_file(dir.file("qwen.gguf"), qb);
  expect_error([&] { load_model(dir.file("qwen.gguf"), quiet()); }, {"qwen.gguf", "qwen2", "not supported"});
  test::GgufBuilder nometa;
  nometa.kv_str("general.architecture", "llama");
  auto nb = nometa.build();
  test::write_file(dir.file("nometa.gguf"), nb);
  expect_error([&] { load_model(dir.file("nometa.gguf"), quiet()); },
               {"nometa.gguf", "llama.embedding_length", "missing"});
}

// ---- HF directories -----------------------------------------------------------------------------

TEST(BadHf, MissingAndMalformedFiles) {
  Model src = load_model("synthetic:tiny", quiet());
  TempDir dir;
  expect_error([&] { load_model(dir.path(), quiet()); }, {dir.path(), "no config.json"});
  test::write_file(dir.file("config.json"), std::string("{\"hidden_size\": 64,"));
  expect_error([&] { load_model(dir.path(), quiet()); }, {"config.json", "bad JSON"});
  test::write_file(dir.file("config.json"), test::hf_config_json(src.config).dump());
  expect_error([&] { load_model(dir.path(), quiet()); }, {dir.path(), "no model.safetensors"});

  test::HfDirOptions o;
  o.shards = 2;
  test::write_hf_dir(dir.path(), src, o);
  std::remove(dir.file("model-00002-of-00002.safetensors").c_str());
  expect_error([&] { load_model(dir.path(), quiet()); },
               {"model.safetensors.index.json", "model-00002-of-00002.safetensors", "missing"});
  test::write_file(dir.file("model.safetensors.index.json"),
                   std::string(R"({"weight_map": {"model.norm.weight": "../evil.safetensors"}})"));
  expect_error([&] { load_model(dir.path(), quiet()); }, {"index.json", "not a plain file name"});
  test::write_file(dir.file("model.safetensors.index.json"), std::string(R"({"weight_map": [1]})"));
  expect_error([&] { load_model(dir.path(), quiet()); }, {"index.json", "weight_map"});
}

TEST(BadHf, ShapeDtypeAndMissingTensors) {
  Model src = load_model("synthetic:tiny", quiet());
  auto load_edited = [&](std::function<bool(std::string&, std::string&, std::vector<int64_t>&)> edit) {
    TempDir dir;
    test::HfDirOptions o;
    o.edit = std::move(edit);
    test::write_hf_dir(dir.path(), src, o);
    load_model(dir.path(), quiet());
  };
  expect_error([&] {
    load_edited([](std::string& n, std::string&, std::vector<int64_t>& s) {
      if (n == "model.layers.1.mlp.down_proj.weight") s = {160, 64};  // transposed
      return true;
    });
  }, {"model.safetensors", "model.layers.1.mlp.down_proj.weight", "[160, 64]", "expected [64, 160]"});
  expect_error([&] {
    load_edited([](std::string& n, std::string& d, std::vector<int64_t>&) {
      if (n == "model.layers.0.self_attn.q_proj.weight") d = "I16";
      return true;
    });
  }, {"model.safetensors", "q_proj", "I16", "expected F32, BF16 or F16"});
  expect_error([&] {
    load_edited([](std::string& n, std::string&, std::vector<int64_t>&) { return n != "lm_head.weight"; });
  }, {"model.safetensors", "lm_head.weight", "missing"});
  // Truncated shard.
  TempDir dir;
  test::write_hf_dir(dir.path(), src);
  auto bytes = test::read_file_bytes(dir.file("model.safetensors"));
  bytes.resize(bytes.size() - 10);
  test::write_file(dir.file("model.safetensors"), bytes);
  expect_error([&] { load_model(dir.path(), quiet()); }, {"model.safetensors", "out of range"});
}

// ---- llama2.c -----------------------------------------------------------------------------------

TEST(BadLlama2c, SizeMismatchAndGarbage) {
  LOWBIT_REQUIRE_FILE(test::stories260k());
  auto bytes = test::read_file_bytes(test::stories260k());
  TempDir dir;
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 4);
  test::write_file(dir.file("cut.bin"), cut);
  expect_error([&] { load_model(dir.file("cut.bin"), quiet()); },
               {"cut.bin", "size mismatch", std::to_string(bytes.size()), std::to_string(cut.size()), "truncated"});
  std::vector<uint8_t> longer = bytes;
  longer.resize(bytes.size() + 8);
  test::write_file(dir.file("long.bin"), longer);
  expect_error([&] { load_model(dir.file("long.bin"), quiet()); }, {"long.bin", "size mismatch", "trailing"});
  std::vector<uint8_t> bad = bytes;
  int32_t heads = 7;  // 64 is not a multiple of 7
  std::memcpy(bad.data() + 12, &heads, 4);
  test::write_file(dir.file("heads.bin"), bad);
  expect_error([&] { load_model(dir.file("heads.bin"), quiet()); }, {"heads.bin", "n_heads"});
  test::write_file(dir.file("tiny.bin"), std::string("abc"));
  expect_error([&] { load_model(dir.file("tiny.bin"), quiet()); }, {"tiny.bin", "too small"});
  test::write_file(dir.file("text.bin"), std::string(4000, 'x'));
  expect_error([&] { load_model(dir.file("text.bin"), quiet()); }, {"text.bin", "not a llama2.c checkpoint"});
  // A size that passes only because of int32 wrap-around must still fail: huge dims.
  std::vector<uint8_t> huge = bytes;
  int32_t dim = 1 << 30;
  std::memcpy(huge.data(), &dim, 4);
  test::write_file(dir.file("huge.bin"), huge);
  expect_error([&] { load_model(dir.file("huge.bin"), quiet()); }, {"huge.bin", "not a llama2.c checkpoint"});
}

// ---- lowbit files -------------------------------------------------------------------------------

TEST(BadLowbit, CorruptMetadataAndSizes) {
  Model src = load_model("synthetic:tiny", quiet());
  TempDir dir;
  const std::string good = dir.file("good.lowbit.safetensors");
  save_lowbit(src, good, "");
  SafeTensorsFile f = SafeTensorsFile::open(good);

  // Rewrites the file with one metadata entry changed (tensor data kept).
  auto rewrite = [&](const std::string& name, const std::string& key, const std::string& value,
                     const std::string& drop_tensor = "") {
    SafeTensorsWriter w;
    for (const auto& [n, t] : f.tensors)
      if (n != drop_tensor) w.add(n, t.dtype, t.shape, t.data, t.nbytes);
    for (const auto& [k, v] : f.metadata) w.set_metadata(k, k == key ? value : v);
    w.write(dir.file(name));
    return dir.file(name);
  };
  expect_error([&] { load_model(rewrite("v2.safetensors", "lowbit.format", "2"), quiet()); },
               {"v2.safetensors", "version 2"});
  expect_error([&] { load_model(rewrite("cfg.safetensors", "lowbit.config", "{\"dim\": "), quiet()); },
               {"cfg.safetensors", "lowbit.config", "JSON"});
  nlohmann::json tensors = nlohmann::json::parse(f.metadata.at("lowbit.tensors"));
  tensors["layers.1.attention.wo"]["format"] = "int3";
  expect_error([&] { load_model(rewrite("fmt.safetensors", "lowbit.tensors", tensors.dump()), quiet()); },
               {"fmt.safetensors", "layers.1.attention.wo", "int3"});
  tensors = nlohmann::json::parse(f.metadata.at("lowbit.tensors"));
  tensors["layers.1.attention.wo"]["format"] = "int8";  // int8 needs per-row scales the file lacks
  expect_error([&] { load_model(rewrite("sc.safetensors", "lowbit.tensors", tensors.dump()), quiet()); },
               {"sc.safetensors", "layers.1.attention.wo", "int8"});
  tensors = nlohmann::json::parse(f.metadata.at("lowbit.tensors"));
  tensors["layers.0.feed_forward.w2"]["cols"] = 128;
  expect_error([&] { load_model(rewrite("shape.safetensors", "lowbit.tensors", tensors.dump()), quiet()); },
               {"shape.safetensors", "layers.0.feed_forward.w2", "expected [64, 160]"});
  tensors = nlohmann::json::parse(f.metadata.at("lowbit.tensors"));
  tensors["norm"] = 5;
  tensors.erase("output");
  expect_error([&] { load_model(rewrite("miss.safetensors", "lowbit.tensors", tensors.dump()), quiet()); },
               {"miss.safetensors", "output"});
  expect_error([&] { load_model(rewrite("nocodes.safetensors", "", "", "layers.0.attention.wk.codes"), quiet()); },
               {"nocodes.safetensors", "layers.0.attention.wk.codes", "missing"});
  expect_error([&] { lowbit_embedded_tokenizer(rewrite("nolb.safetensors", "lowbit.format", "")); },
               {"nolb.safetensors", "version"});
}

}  // namespace
}  // namespace lowbit
