// The CPU backend: the Llama forward pass in fp32 over a static KV cache, readable top to bottom.
// A prompt of n tokens runs as one batched prefill (every linear layer is one [n, K] x [K, N] product).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/kv_cache.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/qlinear.h"
#include "engine/calibration.h"
#include "engine/runner.h"
#include "model/model.h"
#include "util/error.h"

namespace lowbit {

namespace {

class CpuRunner final : public Runner {
 public:
  CpuRunner(Model& m, const RunnerOptions& opt) : m_(m), c_(m.config), opt_(opt) {
    if (opt.threads > 0) omp_set_num_threads(opt.threads);
    threads_ = omp_get_max_threads();
    max_seq_ = opt.max_seq_len > 0 ? opt.max_seq_len : std::min(c_.max_seq_len, 4096);
    LB_CHECK(max_seq_ > 0, "max sequence length must be positive");
    LB_CHECK(!m.weights.layers.empty() && m.weights.tok_embeddings.rows == c_.vocab_size,
             m.path, ": model has no weights loaded (config-only?)");
    kv_ = std::make_unique<KvCache>(c_.n_layers, max_seq_, c_.kv_dim(), opt.kv, c_.head_dim);
    linear_names_ = calibration_names(c_.n_layers);
    if (opt.acts && is_static_act(*opt.acts)) {
      LB_CHECK(opt.calibration != nullptr, "--acts ", format_name(*opt.acts),
               ": static activation quantization needs the activation ranges of this model; record them with "
               "`lowbit calibrate --model M --text FILE --out cal.json` and pass --calibration cal.json");
      opt.calibration->check_model(c_);
      for (const auto& n : linear_names_) static_amax_.push_back(opt.calibration->range_of(n));
    }
    if (opt.record_calibration)
      LB_CHECK(opt.record_calibration->n_layers == c_.n_layers && opt.record_calibration->dim == c_.dim,
               "activation recording: the table was made for another model shape (ActCalibration::for_model)");
    // rotary table: [max_seq, head_dim/2] (cos, sin) pairs
    const std::vector<float> inv = c_.rope_inv_freq();
    const int half = c_.head_dim / 2;
    rope_.resize(size_t(max_seq_) * half * 2);
    for (int p = 0; p < max_seq_; ++p)
      for (int i = 0; i < half; ++i) {
        const float a = float(p) * inv[i];
        rope_[(size_t(p) * half + i) * 2] = std::cos(a);
        rope_[(size_t(p) * half + i) * 2 + 1] = std::sin(a);
      }
  }

  std::string device() const override { return "cpu (" + std::to_string(threads_) + " threads)"; }
  int max_seq_len() const override { return max_seq_; }
  int vocab_size() const override { return c_.vocab_size; }
  size_t weight_bytes_per_token() const override {
    size_t b = m_.weights.output.bytes() + m_.weights.tok_embeddings.bytes() / size_t(c_.vocab_size);
    for (const auto& L : m_.weights.layers)
      for (const QTensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) b += t->bytes();
    return b;
  }
  size_t kv_bytes_per_position() const override { return size_t(c_.n_layers) * 2 * c_.kv_dim() * sizeof(float); }

  const float* forward(const int* tokens, int n, int pos) override {
    run(tokens, n, pos, /*all_logits=*/false);
    return logits_.data();
  }

  void forward_all(const int* tokens, int n, int pos, float* out) override {
    run(tokens, n, pos, /*all_logits=*/true);
    std::copy(logits_.begin(), logits_.begin() + size_t(n) * c_.vocab_size, out);
  }

 private:
  // The linear layer `slot` (calibration_names order: layer * 7 + wq,wk,wv,wo,w1,w3,w2; last = output).
  void linear(const float* x, int n, const QTensor& w, float* y, int slot) {
    if (opt_.record_calibration) opt_.record_calibration->observe(linear_names_[slot], x, int64_t(n) * w.cols);
    qlinear(x, n, w, opt_.acts, y, static_amax_.empty() ? 0.0f : static_amax_[slot]);
  }

  void run(const int* tokens, int n, int pos, bool all_logits) {
    LB_CHECK(n > 0, "forward: no tokens");
    LB_CHECK(pos >= 0 && pos + n <= max_seq_, "forward: positions ", pos, "..", pos + n - 1,
             " exceed the KV cache of ", max_seq_, " (raise --max-seq-len)");
    const int dim = c_.dim, hd = c_.head_dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hid = c_.hidden_dim;
    const int V = c_.vocab_size;
    const size_t N = size_t(n);
    x_.resize(N * dim);        // residual stream [n, dim]
    xb_.resize(N * dim);       // normed input [n, dim]
    q_.resize(N * qd);         // [n, n_heads*head_dim]
    k_.resize(N * kvd);        // [n, kv_dim]
    v_.resize(N * kvd);
    att_.resize(N * qd);       // attention output [n, q_dim]
    proj_.resize(N * dim);     // [n, dim]
    h1_.resize(N * hid);       // [n, hidden]
    h3_.resize(N * hid);

    for (int i = 0; i < n; ++i) {
      LB_CHECK(tokens[i] >= 0 && tokens[i] < V, "token id ", tokens[i], " out of range [0, ", V, ")");
      dequantize_row(m_.weights.tok_embeddings, tokens[i], x_.data() + size_t(i) * dim);
    }

    const int group = c_.n_heads / c_.n_kv_heads;  // query heads per kv head (GQA)
    const float inv_sqrt_hd = 1.0f / std::sqrt(float(hd));
    for (int l = 0; l < c_.n_layers; ++l) {
      const LayerWeights& L = m_.weights.layers[l];
      // attention block
      rmsnorm(xb_.data(), x_.data(), L.attn_norm.data(), n, dim, c_.norm_eps);
      linear(xb_.data(), n, L.wq, q_.data(), l * kLinearsPerLayer + 0);
      linear(xb_.data(), n, L.wk, k_.data(), l * kLinearsPerLayer + 1);
      linear(xb_.data(), n, L.wv, v_.data(), l * kLinearsPerLayer + 2);
      for (int i = 0; i < n; ++i) {
        const float* cs = rope_.data() + size_t(pos + i) * hd;
        rope(q_.data() + size_t(i) * qd, c_.n_heads, hd, cs, c_.rope_interleaved);
        rope(k_.data() + size_t(i) * kvd, c_.n_kv_heads, hd, cs, c_.rope_interleaved);
        kv_->write(l, pos + i, k_.data() + size_t(i) * kvd, v_.data() + size_t(i) * kvd);
      }
      const int ctx = pos + n;  // positions visible to the last token
#pragma omp parallel
      {
        std::vector<float> scores(static_cast<size_t>(ctx));
        std::vector<float> krow(static_cast<size_t>(hd)), vrow(static_cast<size_t>(hd));
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int i = 0; i < n; ++i) {
          for (int h = 0; h < c_.n_heads; ++h) {
            const int p_end = pos + i + 1;  // causal: this token sees positions [0, pos+i]
            const float* q = q_.data() + size_t(i) * qd + size_t(h) * hd;
            const int kvh = h / group;
            for (int t = 0; t < p_end; ++t) {
              const float* kk = kv_->key(l, t, kvh, krow.data());
              float s = 0.0f;
              for (int d = 0; d < hd; ++d) s += q[d] * kk[d];
              scores[t] = s * inv_sqrt_hd;
            }
            softmax(scores.data(), p_end);
            float* o = att_.data() + size_t(i) * qd + size_t(h) * hd;
            std::fill(o, o + hd, 0.0f);
            for (int t = 0; t < p_end; ++t) {
              const float* vv = kv_->value(l, t, kvh, vrow.data());
              const float a = scores[t];
              for (int d = 0; d < hd; ++d) o[d] += a * vv[d];
            }
          }
        }
      }
      linear(att_.data(), n, L.wo, proj_.data(), l * kLinearsPerLayer + 3);
      for (size_t j = 0; j < N * dim; ++j) x_[j] += proj_[j];

      // feed-forward block (SwiGLU)
      rmsnorm(xb_.data(), x_.data(), L.ffn_norm.data(), n, dim, c_.norm_eps);
      linear(xb_.data(), n, L.w1, h1_.data(), l * kLinearsPerLayer + 4);
      linear(xb_.data(), n, L.w3, h3_.data(), l * kLinearsPerLayer + 5);
      swiglu(h1_.data(), h3_.data(), int64_t(N) * hid);
      linear(h1_.data(), n, L.w2, proj_.data(), l * kLinearsPerLayer + 6);
      for (size_t j = 0; j < N * dim; ++j) x_[j] += proj_[j];
    }

    // final norm + classifier: every row for evaluation, the last row otherwise
    const int first = all_logits ? 0 : n - 1;
    const int rows = n - first;
    rmsnorm(xb_.data(), x_.data() + size_t(first) * dim, m_.weights.norm.data(), rows, dim, c_.norm_eps);
    logits_.resize(size_t(rows) * V);
    linear(xb_.data(), rows, m_.weights.output, logits_.data(), c_.n_layers * kLinearsPerLayer);
  }

  Model& m_;
  const LlamaConfig& c_;
  RunnerOptions opt_;
  int threads_ = 1, max_seq_ = 0;
  std::unique_ptr<KvCache> kv_;
  std::vector<float> rope_;  // [max_seq, head_dim/2, 2]
  std::vector<std::string> linear_names_;  // [n_layers * 7 + 1] calibration names of the linear layers
  std::vector<float> static_amax_;         // [n_layers * 7 + 1] calibrated input ranges (static acts only)
  std::vector<float> x_, xb_, q_, k_, v_, att_, proj_, h1_, h3_, logits_;
};

}  // namespace

std::unique_ptr<Runner> make_cpu_runner(Model& model, const RunnerOptions& opt) {
  return std::make_unique<CpuRunner>(model, opt);
}

}  // namespace lowbit
