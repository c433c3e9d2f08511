// End-to-end: real models through loading, tokenization, the CPU forward pass and generation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "../test_util.h"
#include "engine/generate.h"
#include "engine/runner.h"
#include "engine/sampler.h"
#include "io/loader.h"
#include "model/quantize_model.h"
#include "tokenizer/tokenizer.h"

using namespace lowbit;
using namespace lowbit::test;

namespace {

// llama2.c's own golden output for stories260K: BOS only, greedy, 200 steps (../shared/models/README.md).
const char* kStoriesGolden =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she "
    "saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want "
    "to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n"
    "Lily didn't want to help her mom, so she";

std::vector<int> greedy_tokens(Model& m, const std::vector<int>& prompt, int n) {
  auto r = make_cpu_runner(m, RunnerOptions{});
  Sampler s(SamplerConfig{});
  return generate(*r, prompt, n, s, {}, nullptr, /*ignore_stop=*/true).tokens;
}

int common_prefix(const std::vector<int>& a, const std::vector<int>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return int(i);
}

}  // namespace

TEST(Generate, Stories260KGoldenText) {
  LOWBIT_REQUIRE_FILE(stories260k());
  LOWBIT_REQUIRE_FILE(tok512());
  CmdResult r = run_cli("generate --model " + stories260k() + " --prompt '' -n 200 --temperature 0 -q");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, kStoriesGolden);
  EXPECT_NE(r.err.find("TTFT"), std::string::npos) << "metrics go to stderr: " << r.err;
}

TEST(Generate, StdoutStartsWithThePrompt) {
  LOWBIT_REQUIRE_FILE(stories260k());
  CmdResult r = run_cli("generate --model " + stories260k() + " --prompt 'Once upon a time' -n 20 --seed 3 -q");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("Once upon a time").size());
}

// The prompt as one batched prefill gives the same logits as feeding it token by token.
TEST(Generate, BatchedPrefillMatchesTokenByToken) {
  LOWBIT_REQUIRE_FILE(stories260k());
  Model m = load_model(stories260k());
  const std::vector<int> prompt = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421};
  const int n = int(prompt.size()), V = m.config.vocab_size;
  auto batched = make_cpu_runner(m, RunnerOptions{});
  std::vector<float> all(size_t(n) * V);
  batched->forward_all(prompt.data(), n, 0, all.data());
  auto seq = make_cpu_runner(m, RunnerOptions{});
  for (int i = 0; i < n; ++i) {
    const float* l = seq->forward(&prompt[i], 1, i);
    double num = 0, den = 0;
    for (int v = 0; v < V; ++v) {
      const double d = double(l[v]) - all[size_t(i) * V + v];
      num += d * d;
      den += double(l[v]) * l[v];
    }
    // identical arithmetic up to summation order in fp32: far below 1e-5 relative
    EXPECT_LT(std::sqrt(num / den), 1e-5) << "position " << i;
  }
}

TEST(Generate, SmolLM2KnowsTheCapitalOfFrance) {
  LOWBIT_REQUIRE_FILE(smollm2());
  Model m = load_model(smollm2());
  auto tok = load_tokenizer(m.tokenizer_path);
  auto ids = tok->encode("The capital of France is", true);
  std::string text = tok->decode_all(greedy_tokens(m, ids, 6));
  EXPECT_NE(text.find("Paris"), std::string::npos) << text;
}

TEST(Generate, SmolLM2ChatStopsAtEndOfTurn) {
  LOWBIT_REQUIRE_FILE(smollm2());
  CmdResult r = run_cli("generate --model " + smollm2() +
                        " --prompt 'What is the capital of France? Answer in one word.' --chat -n 64 --temperature 0 -q");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("stop token"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("<|im_end|>"), std::string::npos) << "the stop token is not printed: " << r.out;
}

// Quantized models follow the unquantized greedy path for the first steps. The steps required are a
// little under what each format holds on these models today (measured: stories260K int8/fp8 24 of 24,
// int4 g32 20; SmolLM2 int8/fp8 6 of 6, int4 g128 5): a regression in a quantizer or kernel breaks them.
TEST(Generate, QuantizedFormatsFollowTheReferenceGreedyPath) {
  LOWBIT_REQUIRE_FILE(stories260k());
  struct Case { Format fmt; int group; int steps; };
  const Case cases[] = {{Format::INT8, 0, 20}, {Format::FP8_E4M3, 0, 20}, {Format::INT4, 32, 16}};
  Model ref = load_model(stories260k());
  const std::vector<int> prompt = {1};
  const std::vector<int> want = greedy_tokens(ref, prompt, 24);
  for (const auto& c : cases) {
    Model q = load_model(stories260k());
    ModelQuantOptions o;
    o.weights = c.fmt;
    o.quant.group = c.group;
    o.progress = false;
    ASSERT_GT(quantize_model(q, o), 0);
    const std::vector<int> got = greedy_tokens(q, prompt, 24);
    EXPECT_GE(common_prefix(want, got), c.steps) << format_name(c.fmt);
  }
}

TEST(Generate, SmolLM2QuantizedFollowsTheReference) {
  LOWBIT_REQUIRE_FILE(smollm2());
  Model ref = load_model(smollm2());
  auto tok = load_tokenizer(ref.tokenizer_path);
  const auto prompt = tok->encode("The capital of France is", true);
  const std::vector<int> want = greedy_tokens(ref, prompt, 6);
  struct Case { Format fmt; int steps; };
  for (const Case c : {Case{Format::INT8, 6}, Case{Format::FP8_E4M3, 6}, Case{Format::INT4, 4}}) {
    Model q = load_model(smollm2());
    ModelQuantOptions o;
    o.weights = c.fmt;
    o.progress = false;
    quantize_model(q, o);
    const std::vector<int> got = greedy_tokens(q, prompt, 6);
    EXPECT_GE(common_prefix(want, got), c.steps) << format_name(c.fmt) << ": " << tok->decode_all(got);
    EXPECT_NE(tok->decode_all(got).find("Paris"), std::string::npos) << format_name(c.fmt) << ": " << tok->decode_all(got);
  }
}

TEST(Generate, MissingTokenizerIsAClearError) {
  LOWBIT_REQUIRE_FILE(stories260k());
  const std::string dir = std::filesystem::temp_directory_path() / "lowbit_no_tok";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(stories260k(), dir + "/model.bin", std::filesystem::copy_options::overwrite_existing);
  CmdResult r = run_cli("generate --model " + dir + "/model.bin --prompt hi -n 4 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("tokenizer"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << "no crash: " << r.err;
  std::filesystem::remove_all(dir);
}

TEST(Generate, BadOptionsAreClearErrors) {
  LOWBIT_REQUIRE_FILE(stories260k());
  CmdResult r = run_cli("generate --model " + stories260k() + " --prompt hi --weights int5 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("unknown format 'int5'"), std::string::npos) << r.err;
  r = run_cli("generate --model " + stories260k() + " --prompt hi --weights int4 --group 48 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("multiple of 32"), std::string::npos) << r.err;
  r = run_cli("generate --model " + stories260k() + " --prompt hi --top-p 1.5 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--top-p"), std::string::npos) << r.err;
  r = run_cli("generate --model synthetic:nope --prompt hi -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
}

// lowbit quantize writes a file that generate loads (zero-copy) with the same greedy output as quantizing
// on the fly, and records --acts as the model's default activation format.
TEST(Generate, QuantizeCommandRoundTrip) {
  LOWBIT_REQUIRE_FILE(stories260k());
  const std::string out = std::filesystem::temp_directory_path() / "lowbit_q_int8.lowbit.safetensors";
  CmdResult q = run_cli("quantize --model " + stories260k() + " --weights int8 --acts int8 --force -o " + out);
  ASSERT_EQ(q.status, 0) << q.err;
  CmdResult a = run_cli("generate --model " + out + " --prompt 'Once upon' -n 24 --temperature 0 -q");
  CmdResult b = run_cli("generate --model " + stories260k() + " --weights int8 --acts int8 --prompt 'Once upon' -n 24 --temperature 0 -q");
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  CmdResult c = run_cli("quantize --model " + stories260k() + " --weights int8 -o " + out);
  EXPECT_NE(c.status, 0) << "refuses to overwrite without --force";
  EXPECT_NE(c.err.find("--force"), std::string::npos) << c.err;
  std::filesystem::remove(out);
}
