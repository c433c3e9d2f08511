// synthetic:<preset>: random weights in the exact shape of a real model, for speed runs where the real
// checkpoint is unavailable. Decode speed does not depend on the values, but they are never all zeros
// (zeros would let hardware or kernels take shortcuts and make numerical checks vacuous).
#include <cstring>

#include "io/loader.h"
#include "io/loader_internal.h"
#include "util/error.h"
#include "util/half.h"
#include "util/rng.h"

namespace lowbit {

namespace {

using io_detail::StoredTensor;

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Seed of one row: depends on the run seed, the tensor's name and the row only, so the weights do not
// depend on the thread count or on the order tensors are generated in.
uint64_t row_seed(uint64_t seed, uint64_t tensor_hash, int64_t row) {
  uint64_t s = seed ^ (tensor_hash * 0x9e3779b97f4a7c15ull);
  splitmix64(s);
  return s + uint64_t(row) * 0xd1b54a32d192ed03ull;
}

// An approximately standard normal value from one 64-bit draw: the sum of four 16-bit uniforms
// (Irwin-Hall, variance 4/12) rescaled to unit variance. One RNG call and no transcendentals per weight,
// which matters at 8-405 billion weights; the bounded tails (|x| < 3.47) are harmless for random weights.
inline float approx_normal(Rng& rng) {
  const uint64_t u = rng.next_u64();
  const uint32_t sum = uint32_t(u & 0xffff) + uint32_t((u >> 16) & 0xffff) + uint32_t((u >> 32) & 0xffff) +
                       uint32_t(u >> 48);
  constexpr float kScale = 1.7320508075688772f / 65535.0f;  // sqrt(3) / 65535
  return (float(sum) - 2.0f * 65535.0f) * kScale;
}

constexpr float kWeightStd = 0.02f;  // the usual init std of Llama linear layers
constexpr float kNormNoise = 0.01f;

void fill_row(Format fmt, Rng& rng, int64_t cols, uint8_t* dst) {
  for (int64_t j = 0; j < cols; ++j) {
    const float x = approx_normal(rng) * kWeightStd;
    if (fmt == Format::F32) {
      std::memcpy(dst + 4 * j, &x, 4);
    } else {
      const uint16_t h = fmt == Format::BF16 ? f32_to_bf16(x) : f32_to_f16(x);
      std::memcpy(dst + 2 * j, &h, 2);
    }
  }
}

class SyntheticSource : public io_detail::WeightSource {
 public:
  SyntheticSource(std::string who, const LlamaConfig& c, Format fmt, uint64_t seed)
      : who_(std::move(who)), c_(c), fmt_(fmt), seed_(seed) {}
  std::string where() const override { return who_; }
  std::string memory_note() const override { return std::string(" for ") + format_name(fmt_) + " weights"; }

  std::optional<StoredTensor> find(const std::string& canonical) const override {
    const int64_t d = c_.dim, q = c_.q_dim(), kv = c_.kv_dim(), h = c_.hidden_dim, v = c_.vocab_size;
    std::vector<int64_t> shape;
    auto ends_with = [&](const char* s) {
      const size_t n = std::strlen(s);
      return canonical.size() >= n && canonical.compare(canonical.size() - n, n, s) == 0;
    };
    if (canonical == "tok_embeddings" || canonical == "output") shape = {v, d};
    else if (canonical == "norm" || ends_with("_norm")) shape = {d};
    else if (ends_with(".wq")) shape = {q, d};
    else if (ends_with(".wk") || ends_with(".wv")) shape = {kv, d};
    else if (ends_with(".wo")) shape = {d, q};
    else if (ends_with(".w1") || ends_with(".w3")) shape = {h, d};
    else if (ends_with(".w2")) shape = {d, h};
    else return std::nullopt;

    StoredTensor t;
    t.name = canonical;
    t.file = who_;
    t.shape = shape;
    const uint64_t hash = fnv1a(canonical), seed = seed_;
    if (shape.size() == 1) {
      t.type = format_name(Format::F32);
      t.nbytes = t.host_bytes = size_t(shape[0]) * 4;
      const int64_t n = shape[0];
      t.as_floats = [=] {
        std::vector<float> f(static_cast<size_t>(n));
        Rng rng(row_seed(seed, hash, 0));
        for (auto& x : f) x = 1.0f + kNormNoise * approx_normal(rng);
        return f;
      };
      return t;
    }
    const Format fmt = fmt_;
    const int64_t rows = shape[0], cols = shape[1];
    t.type = format_name(fmt);
    t.nbytes = t.host_bytes = row_code_bytes(fmt, cols) * size_t(rows);
    const std::string name = canonical;
    t.as_qtensor = [=] {
      const size_t row_bytes = row_code_bytes(fmt, cols);
      Buffer b = io_detail::uninitialized_buffer(row_bytes * size_t(rows));
      uint8_t* base = b.mutable_data();
// Small tensors stay on one thread: a parallel region costs more than generating them.
#pragma omp parallel for schedule(dynamic, 64) if (rows * cols >= (int64_t(1) << 16))
      for (int64_t r = 0; r < rows; ++r) {
        Rng rng(row_seed(seed, hash, r));
        fill_row(fmt, rng, cols, base + size_t(r) * row_bytes);
      }
      return view_plain(name, fmt, rows, cols, b.data, b.owner);
    };
    return t;
  }

 private:
  std::string who_;
  LlamaConfig c_;
  Format fmt_;
  uint64_t seed_;
};

}  // namespace

Model make_synthetic(const std::string& preset, const LoadOptions& opt) {
  const Format fmt = opt.synthetic_format;
  LB_CHECK(format_info(fmt).scheme == ScaleScheme::None, "synthetic:", preset, ": weights are generated in f32, bf16 or "
           "fp16, not ", format_name(fmt), " (quantize the generated model instead)");
  Model m;
  m.config = preset_config(preset);
  m.source = ModelSource::Synthetic;
  m.path = "synthetic:" + preset;
  SyntheticSource src(m.path, m.config, fmt, opt.seed);
  io_detail::assemble_model(m, src, opt);
  return m;
}

}  // namespace lowbit
