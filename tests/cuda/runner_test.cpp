// The whole model on the GPU against the CPU reference (runs on a GPU machine; skips elsewhere).
#include <algorithm>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/cuda_api.h"
#include "engine/generate.h"
#include "engine/runner.h"
#include "engine/sampler.h"
#include "io/loader.h"
#include "model/quantize_model.h"
#include "tokenizer/tokenizer.h"
#include "util/mapped_file.h"

using namespace lowbit;

namespace {

#define REQUIRE_GPU()                                                   \
  do {                                                                  \
    std::string why_;                                                   \
    if (!cuda_available(&why_)) GTEST_SKIP() << "no GPU: " << why_;     \
  } while (0)

std::string shared_models() {
  if (const char* e = std::getenv("LOWBIT_SHARED_MODELS")) return e;
  return std::string(LOWBIT_SOURCE_DIR) + "/../shared/models";
}

// SmolLM2-135M as scripts/setup.sh fetches it (models/, or $LOWBIT_MODELS). The GPU machine has no network:
// bench/smollm2-carry.sh splits the file over two calls' carries (it is larger than one may carry).
std::string smollm2() {
  const char* e = std::getenv("LOWBIT_MODELS");
  return (e ? std::string(e) : std::string(LOWBIT_SOURCE_DIR) + "/models") + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

Model small_model(Format f, int group = 0) {
  LoadOptions lo;
  lo.seed = 7;
  lo.progress = false;
  Model m = load_model("synthetic:small", lo);
  if (f != Format::BF16) {
    ModelQuantOptions q;
    q.weights = f;
    q.quant.group = group;
    q.progress = false;
    quantize_model(m, q);
  }
  return m;
}

RunnerOptions opts(const std::string& mode) {
  RunnerOptions o;
  o.max_seq_len = 256;
  o.mode = mode;
  return o;
}

}  // namespace

// Decode path (GEMV kernels, M = 1) and short prefill (M <= 8): fp32 activations on both sides, so the
// logits agree to fp32 accumulation-order rounding; 1e-4 relative (L2) leaves room for the quantized
// kernels' fp16 hi/lo split of x (2^-22 per element) over 4 layers.
TEST(CudaRunner, SyntheticLogitsMatchCpuForEveryFormat) {
  REQUIRE_GPU();
  for (const auto& fi : all_formats()) {
    if (!fi.weight_ok) continue;
    SCOPED_TRACE(fi.name);
    Model m = small_model(fi.id, fi.scheme == ScaleScheme::GroupAffine ? 64 : 0);
    auto cpu = make_cpu_runner(m, opts("eager"));
    auto gpu = make_cuda_runner(m, opts("eager"));
    const std::vector<int> prompt = {1, 17, 250, 3, 999, 42};
    const int V = m.config.vocab_size, n = int(prompt.size());
    std::vector<float> lc(size_t(n) * V), lg(size_t(n) * V);
    cpu->forward_all(prompt.data(), n, 0, lc.data());
    gpu->forward_all(prompt.data(), n, 0, lg.data());
    EXPECT_LT(rel_l2(lg.data(), lc.data(), lc.size()), 1e-4) << "prefill (M=" << n << ")";
    for (int t : {5, 77, 1000}) {  // decode steps continue the cache written by the prefill
      const int pos = n + (t == 5 ? 0 : t == 77 ? 1 : 2);
      const float* c = cpu->forward(&t, 1, pos);
      std::vector<float> cc(c, c + V);
      const float* g = gpu->forward(&t, 1, pos);
      EXPECT_LT(rel_l2(g, cc.data(), size_t(V)), 1e-4) << "decode at " << pos;
    }
  }
}

// Long prompts go through bf16 dequantization + cuBLAS with bf16 activations: each linear input is
// rounded to bf16 (relative 2^-9), so the bound is looser: 3e-2 relative over the logits.
TEST(CudaRunner, LongPrefillThroughGemmAgreesWithCpu) {
  REQUIRE_GPU();
  for (Format f : {Format::BF16, Format::INT4, Format::MXFP4}) {
    SCOPED_TRACE(format_name(f));
    Model m = small_model(f, 64);
    auto cpu = make_cpu_runner(m, opts("eager"));
    auto gpu = make_cuda_runner(m, opts("eager"));
    std::vector<int> prompt(40);
    for (int i = 0; i < 40; ++i) prompt[i] = (i * 131 + 7) % m.config.vocab_size;
    const int V = m.config.vocab_size, n = int(prompt.size());
    std::vector<float> lc(size_t(n) * V), lg(size_t(n) * V);
    cpu->forward_all(prompt.data(), n, 0, lc.data());
    gpu->forward_all(prompt.data(), n, 0, lg.data());
    EXPECT_LT(rel_l2(lg.data(), lc.data(), lc.size()), 3e-2);
  }
}

// stories260K (fp32 weights): the same 200 greedy tokens on the GPU as on the CPU, in every mode.
TEST(CudaRunner, Stories260KGreedyTokensMatchCpu) {
  REQUIRE_GPU();
  const std::string path = shared_models() + "/stories260K/stories260K.bin";
  if (!file_exists(path)) GTEST_SKIP() << "absent: " << path;
  Model m = load_model(path);
  auto cpu = make_cpu_runner(m, opts("eager"));
  Sampler sc(SamplerConfig{});
  const std::vector<int> want = generate(*cpu, {1}, 200, sc, {}, nullptr, true).tokens;
  for (const char* mode : {"eager", "graph", "autotune"}) {
    RunnerOptions o = opts(mode);
    o.autotune_cache = std::string(::testing::TempDir()) + "/lowbit_autotune_test.json";
    auto gpu = make_cuda_runner(m, o);
    Sampler sg(SamplerConfig{});
    const std::vector<int> got = generate(*gpu, {1}, 200, sg, {}, nullptr, true).tokens;
    EXPECT_EQ(got, want) << mode;
  }
}

// The GPU sampler: greedy equals the CPU argmax of the same logits; top-k 1 is greedy; sampled ids
// are valid and reproducible for a seed; graph replay equals eager.
TEST(CudaRunner, SamplingOnTheGpu) {
  REQUIRE_GPU();
  Model m = small_model(Format::BF16);
  const int V = m.config.vocab_size;
  auto gpu = make_cuda_runner(m, opts("eager"));
  const std::vector<int> prompt = {1, 5, 9};
  Sampler g(SamplerConfig{});
  const int t0 = gpu->forward_sample(prompt.data(), 3, 0, g);
  const float* l = gpu->forward(prompt.data(), 3, 0);
  EXPECT_EQ(t0, argmax(l, V));

  auto run = [&](const std::string& mode, SamplerConfig sc) {
    auto r = make_cuda_runner(m, opts(mode));
    Sampler s(sc);
    return generate(*r, prompt, 40, s, {}, nullptr, true).tokens;
  };
  const auto greedy = run("eager", SamplerConfig{});
  EXPECT_EQ(run("graph", SamplerConfig{}), greedy);
  EXPECT_EQ(run("eager", SamplerConfig{1.0f, 1, 1.0f, 3}), greedy) << "top-k 1 is greedy";
  const SamplerConfig hot{1.0f, 40, 0.9f, 11};
  const auto a = run("eager", hot), b = run("graph", hot);
  EXPECT_EQ(a, b) << "same seed, same tokens (eager vs graph)";
  for (int t : a) EXPECT_TRUE(t >= 0 && t < V);
  EXPECT_NE(a, greedy) << "sampling at temperature 1 departs from greedy within 40 tokens";
}

// A synthetic preset with deferred weights (random codes generated per matrix and uploaded) runs.
TEST(CudaRunner, DeferredSyntheticWeightsRun) {
  REQUIRE_GPU();
  for (Format f : {Format::BF16, Format::INT4, Format::NVFP4, Format::TERNARY_P5}) {
    Model m;
    m.config = preset_config("small");
    m.path = "synthetic:small";
    DeferredWeights d;
    d.linear = f;
    m.deferred = d;
    auto gpu = make_cuda_runner(m, opts("graph"));
    Sampler s(SamplerConfig{});
    const auto toks = generate(*gpu, {1, 2, 3}, 16, s, {}, nullptr, true).tokens;
    EXPECT_EQ(toks.size(), 16u) << format_name(f);
    EXPECT_GT(gpu->weight_bytes_per_token(), 0u);
  }
}

// stories260K step by step: the GPU's logits follow the CPU's along the CPU's greedy path (fp32 weights
// and activations on both sides; 1e-4 relative L2 as for the synthetic models).
TEST(CudaRunner, Stories260KLogitsFollowCpuStepByStep) {
  REQUIRE_GPU();
  const std::string path = shared_models() + "/stories260K/stories260K.bin";
  if (!file_exists(path)) GTEST_SKIP() << "absent: " << path;
  Model m = load_model(path);
  auto cpu = make_cpu_runner(m, opts("eager"));
  auto gpu = make_cuda_runner(m, opts("eager"));
  const int V = m.config.vocab_size;
  int tok = 1;
  for (int pos = 0; pos < 80; ++pos) {
    const float* c = cpu->forward(&tok, 1, pos);
    std::vector<float> cc(c, c + V);
    const float* g = gpu->forward(&tok, 1, pos);
    const double e = rel_l2(g, cc.data(), size_t(V));
    ASSERT_LT(e, 1e-4) << "position " << pos << " (token " << tok << ")";
    tok = int(std::max_element(cc.begin(), cc.end()) - cc.begin());
  }
}

// SmolLM2-135M (30 layers; its Q4_1 weights dequantized to fp32 on load): the GPU's logits follow the CPU's
// along the CPU's greedy path, and the GPU's greedy continuation (graph mode) is the CPU's. Both sides keep
// fp32 weights and activations, so they differ by summation order only (per dot product ~sqrt(K) 2^-24,
// K <= 1536); the bound is the stories260K one, 1e-4 relative L2.
TEST(CudaRunner, SmolLM2FollowsCpu) {
  REQUIRE_GPU();
  const std::string path = smollm2();
  if (!file_exists(path)) GTEST_SKIP() << "absent: " << path << " (scripts/setup.sh; GPU machine: bench/smollm2-carry.sh)";
  Model m = load_model(path);
  const auto tok = load_tokenizer(m.tokenizer_path);
  const std::vector<int> prompt = tok->encode("The capital of France is", true);
  auto cpu = make_cpu_runner(m, opts("eager"));
  Sampler sc(SamplerConfig{});
  const std::vector<int> want = generate(*cpu, prompt, 24, sc, {}, nullptr, true).tokens;
  EXPECT_NE(tok->decode_all(want).find("Paris"), std::string::npos) << tok->decode_all(want);
  auto gpu = make_cuda_runner(m, opts("graph"));
  Sampler sg(SamplerConfig{});
  EXPECT_EQ(generate(*gpu, prompt, 24, sg, {}, nullptr, true).tokens, want);

  auto cpu2 = make_cpu_runner(m, opts("eager"));
  auto gpu2 = make_cuda_runner(m, opts("eager"));
  const int V = m.config.vocab_size;
  std::vector<int> seq = prompt;
  seq.insert(seq.end(), want.begin(), want.end());
  for (size_t pos = 0; pos < seq.size(); ++pos) {
    const float* c = cpu2->forward(&seq[pos], 1, int(pos));
    std::vector<float> cc(c, c + V);
    const float* g = gpu2->forward(&seq[pos], 1, int(pos));
    ASSERT_LT(rel_l2(g, cc.data(), size_t(V)), 1e-4) << "position " << pos << " (token " << seq[pos] << ")";
  }
}
