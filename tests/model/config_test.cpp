#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "../io/io_test_util.h"

namespace lowbit {
namespace {

using nlohmann::json;
using test::expect_error;

// Llama-3.1-8B's config.json as published (trimmed to the fields lowbit reads plus a few it ignores).
const char* kLlama31_8B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32,
  "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256
})";

TEST(Config, FromHfJsonLlama31) {
  LlamaConfig c = config_from_hf_json(json::parse(kLlama31_8B), "config.json");
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.hidden_dim, 14336);
  EXPECT_EQ(c.n_layers, 32);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_seq_len, 131072);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_FALSE(c.rope_interleaved);
  EXPECT_EQ(c.bos_id, 128000);
  EXPECT_EQ(c.eos_id, 128001);
  EXPECT_EQ(c.stop_ids, (std::vector<int>{128001, 128008, 128009}));
  // The preset carries the same values.
  LlamaConfig p = preset_config("llama-3.1-8b");
  EXPECT_EQ(config_to_json(p), config_to_json(c));
}

TEST(Config, FromHfJsonDefaultsAndScalarEos) {
  json j = {{"hidden_size", 64}, {"intermediate_size", 160}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"vocab_size", 256}, {"eos_token_id", 2}, {"bos_token_id", 1}, {"rope_scaling", nullptr}};
  LlamaConfig c = config_from_hf_json(j, "c.json");
  EXPECT_EQ(c.n_kv_heads, 4);  // default: one kv head per head
  EXPECT_EQ(c.head_dim, 16);   // default: dim / heads
  EXPECT_EQ(c.stop_ids, std::vector<int>{2});
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_EQ(c.rope_theta, 10000.0f);
  j["head_dim"] = 32;  // explicit head_dim wins (q_dim != dim is legal)
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 32.0}};
  c = config_from_hf_json(j, "c.json");
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.rope_scaling.factor, 32.0f);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
}

TEST(Config, BadHfJson) {
  json base = json::parse(kLlama31_8B);
  auto with = [&](const char* k, json v) {
    json j = base;
    if (v.is_null()) j.erase(k);
    else j[k] = v;
    return j;
  };
  expect_error([&] { config_from_hf_json(with("hidden_size", nullptr), "x/config.json"); },
               {"x/config.json", "hidden_size", "missing"});
  expect_error([&] { config_from_hf_json(with("hidden_size", "big"), "x/config.json"); },
               {"x/config.json", "hidden_size", "integer"});
  expect_error([&] { config_from_hf_json(with("num_key_value_heads", 5), "c"); }, {"n_kv_heads", "multiple"});
  expect_error([&] { config_from_hf_json(with("model_type", "qwen2"), "c"); }, {"qwen2", "not supported"});
  expect_error([&] { config_from_hf_json(with("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4}}), "c"); },
               {"yarn", "not supported"});
  expect_error([&] { config_from_hf_json(with("eos_token_id", 999999), "c"); }, {"eos", "999999", "vocabulary"});
  expect_error([&] { config_from_hf_json(with("attention_bias", true), "c"); }, {"attention_bias"});
  expect_error([&] { config_from_hf_json(json::array(), "c"); }, {"object"});
}

TEST(Config, ValidateNamesProblem) {
  LlamaConfig c = preset_config("tiny");
  c.head_dim = 15;
  expect_error([&] { c.validate("src"); }, {"src", "head_dim", "even"});
  c = preset_config("tiny");
  c.vocab_size = 0;
  expect_error([&] { c.validate("src"); }, {"src", "vocab_size"});
  c = preset_config("tiny");
  c.stop_ids = {256};
  expect_error([&] { c.validate("src"); }, {"stop id 256"});
}

TEST(Config, PresetParamCounts) {
  // Published parameter counts of the Hugging Face checkpoints.
  EXPECT_EQ(preset_config("llama-3.1-8b").param_count(), 8030261248);
  EXPECT_EQ(preset_config("llama-3.1-70b").param_count(), 70553706496);
  EXPECT_EQ(preset_config("llama-3.1-405b").param_count(), 405853388800);
  EXPECT_EQ(preset_config("llama-3.2-1b").param_count(), 1235814400);
  EXPECT_EQ(preset_config("llama-3.2-3b").param_count(), 3212749824);
  // tiny: embeddings 256*64 + output 256*64 + final norm 64 + 2 layers of
  // (2*64 norms + 64*64 wq + 2*64*32 wk,wv + 64*64 wo + 3*64*160 ffn)
  const int64_t tiny_layer = 2 * 64 + 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 160;
  EXPECT_EQ(preset_config("tiny").param_count(), 2 * 256 * 64 + 64 + 2 * tiny_layer);
}

TEST(Config, PresetValues) {
  for (const std::string name : {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b"}) {
    LlamaConfig c = preset_config(name);
    EXPECT_EQ(c.vocab_size, 128256) << name;
    EXPECT_EQ(c.rope_theta, 500000.0f) << name;
    EXPECT_EQ(c.rope_scaling.type, "llama3") << name;
    EXPECT_EQ(c.bos_id, 128000) << name;
    EXPECT_EQ(c.stop_ids, (std::vector<int>{128001, 128008, 128009})) << name;
    EXPECT_FALSE(c.rope_interleaved) << name;
    EXPECT_EQ(c.max_seq_len, 131072) << name;
  }
  EXPECT_EQ(preset_config("llama-3.2-1b").head_dim, 64);
  EXPECT_TRUE(preset_config("llama-3.2-1b").tie_embeddings);
  EXPECT_EQ(preset_config("llama-3.2-1b").rope_scaling.factor, 32.0f);
  EXPECT_EQ(preset_config("llama-3.2-3b").n_heads, 24);
  LlamaConfig s = preset_config("small");
  EXPECT_EQ(s.dim, 256);
  EXPECT_EQ(s.hidden_dim, 704);
  EXPECT_EQ(s.n_kv_heads, 2);
  EXPECT_EQ(s.vocab_size, 1024);
  expect_error([] { preset_config("llama-9"); }, {"llama-9", "llama-3.1-8b", "tiny"});
  EXPECT_EQ(preset_names().size(), 7u);
}

TEST(Config, RopeInvFreqUnscaled) {
  LlamaConfig c = preset_config("tiny");  // head_dim 16, theta 10000
  auto f = c.rope_inv_freq();
  ASSERT_EQ(f.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(f[i], float(std::pow(10000.0, -2.0 * i / 16.0))) << i;
}

TEST(Config, RopeInvFreqLlama3Scaling) {
  LlamaConfig c = preset_config("llama-3.1-8b");
  auto f = c.rope_inv_freq();
  ASSERT_EQ(f.size(), 64u);
  const double pi = 3.14159265358979323846;
  int high = 0, low = 0, mid = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 128.0);
    const double wavelen = 2 * pi / base;
    // Thresholds: 8192/4 = 2048 (high-frequency band kept) and 8192/1 = 8192 (low band divided by 8).
    if (wavelen < 2048) {
      EXPECT_FLOAT_EQ(f[i], float(base)) << i;
      ++high;
    } else if (wavelen > 8192) {
      EXPECT_FLOAT_EQ(f[i], float(base / 8)) << i;
      ++low;
    } else {
      const double smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0);
      EXPECT_FLOAT_EQ(f[i], float((1 - smooth) * base / 8 + smooth * base)) << i;
      EXPECT_LT(f[i], float(base));
      EXPECT_GT(f[i], float(base / 8));
      ++mid;
    }
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
}

TEST(Config, LowbitJsonRoundTrip) {
  LlamaConfig c = preset_config("llama-3.2-1b");
  c.rope_interleaved = true;
  LlamaConfig back = config_from_json(config_to_json(c), "x");
  EXPECT_EQ(config_to_json(back), config_to_json(c));
  EXPECT_EQ(back.rope_scaling.factor, 32.0f);
  EXPECT_TRUE(back.rope_interleaved);
  json j = config_to_json(c);
  j.erase("dim");
  expect_error([&] { config_from_json(j, "f.lowbit.safetensors"); }, {"f.lowbit.safetensors", "dim"});
}

}  // namespace
}  // namespace lowbit

// Numbers from files are range-checked before conversion (a float like 1.6e24 read as an int is undefined
// behaviour; the fuzzer found one in a lowbit file's config).
TEST(ConfigJson, OutOfRangeNumbersAreErrors) {
  using namespace lowbit;
  LlamaConfig c = preset_config("tiny");
  nlohmann::json j = config_to_json(c);
  EXPECT_EQ(config_from_json(j, "ok.json").dim, c.dim);
  for (const char* key : {"dim", "n_layers", "vocab_size"}) {
    nlohmann::json bad = j;
    bad[key] = 1.61845e24;
    try {
      config_from_json(bad, "bad.json");
      ADD_FAILURE() << key << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
    bad[key] = 18446744073709551615ull;
    EXPECT_THROW(config_from_json(bad, "bad.json"), Error) << key;
  }
  nlohmann::json bad = j;
  bad["rope_theta"] = 1e300;
  EXPECT_THROW(config_from_json(bad, "bad.json"), Error);
  nlohmann::json hf = {{"hidden_size", 64}, {"intermediate_size", 160}, {"num_hidden_layers", 1e30},
                       {"num_attention_heads", 4}, {"vocab_size", 256}};
  EXPECT_THROW(config_from_hf_json(hf, "config.json"), Error);
}
