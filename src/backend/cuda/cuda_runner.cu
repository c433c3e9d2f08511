// The CUDA backend: weights uploaded once (repacked into GPU layouts), a static fp32 KV cache on the GPU,
// the decode step as fused GEMVs (RMSNorm prologue, QKV as one matrix, gate+up with SwiGLU epilogue,
// residual adds in the epilogue), flash-decoding attention, and sampling on the GPU: only the token id
// crosses to the host per step. Modes: eager (one launch per op), graph (the decode step captured once as
// a CUDA graph and replayed), autotune (GEMV variants timed per shape on first use, cached on disk; graph).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/l2_prefetch.cuh"
#include "backend/cuda/linear.cuh"
#include "backend/cuda/ops.cuh"
#include "backend/cuda_api.h"
#include "engine/sampler.h"
#include "formats/random_codes.h"
#include "model/model.h"
#include "util/error.h"
#include "util/half.h"
#include "util/progress.h"
#include "util/timer.h"

namespace lowbit {

bool cuda_available(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why) *why = e != cudaSuccess ? std::string("no usable CUDA device (") + cudaGetErrorString(e) + ")"
                                     : std::string("no CUDA device present");
    cudaGetLastError();  // clear the sticky error of a failed probe
    return false;
  }
  return true;
}

namespace cuda {

namespace {

#define LB_CUBLAS_CHECK(expr)                                                                        \
  do {                                                                                               \
    cublasStatus_t st_ = (expr);                                                                     \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                \
      ::lowbit::fail("cuBLAS error ", int(st_), " (", cublasGetStatusString(st_), ") at ", __FILE__, \
                     ":", __LINE__, ": ", #expr);                                                    \
  } while (0)

struct DevLayer {
  DeviceBuffer attn_norm, ffn_norm;  // fp32 [dim]
  std::unique_ptr<DevLinear> qkv;    // [q_dim + 2 kv_dim, dim]
  std::unique_ptr<DevLinear> wo;     // [dim, q_dim]
  std::unique_ptr<DevLinear> w13;    // gate/up pair: [2 hidden, dim] -> SwiGLU [hidden]
  std::unique_ptr<DevLinear> w2;     // [dim, hidden]
  DeviceBuffer k_cache, v_cache;     // fp32 [max_seq, kv_dim]
};

// Prompt tokens processed per prefill pass (longer prompts run in chunks of this many).
constexpr int kPrefillChunk = 512;
// Up to this many tokens the prefill reads each weight once through the GEMV (M <= 8) kernels.
constexpr int kGemvMaxM = 8;

class CudaRunner final : public Runner {
 public:
  CudaRunner(Model& m, const RunnerOptions& opt) : m_(m), c_(m.config), opt_(opt) {
    LB_CHECK(opt.mode == "eager" || opt.mode == "graph" || opt.mode == "autotune", "--mode: unknown mode '",
             opt.mode, "' (eager, graph, autotune)");
    LB_CHECK(!opt.acts, "--acts ", format_name(*opt.acts),
             ": activation quantization is not available on the CUDA backend yet (use --device cpu)");
    LB_CHECK(!opt.kv, "--kv ", format_name(*opt.kv),
             ": KV-cache quantization is not available on the CUDA backend yet (use --device cpu)");
    LB_CUDA_CHECK(cudaSetDevice(0));
    cudaDeviceProp prop{};
    LB_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    device_name_ = prop.name;
    LB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LB_CUBLAS_CHECK(cublasCreate(&cublas_));
    LB_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    max_seq_ = opt.max_seq_len > 0 ? opt.max_seq_len : std::min(c_.max_seq_len, 4096);
    upload_weights();
    allocate_state();
    if (opt.mode == "autotune") autotune();
  }

  ~CudaRunner() override {
    pf_.reset();  // stops the prefetcher's kernel before the weights it reads go
    gemv_set_reserved_sms(0);
    if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
    if (host_io_) cudaFreeHost(host_io_);
  }

  std::string device() const override { return "cuda: " + device_name_ + " (" + opt_.mode + ")"; }
  int max_seq_len() const override { return max_seq_; }
  int vocab_size() const override { return c_.vocab_size; }
  void synchronize() override { LB_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  size_t weight_bytes_per_token() const override {
    size_t b = lm_head_->bytes() + size_t(c_.dim) * embed_elem_bytes_;
    for (const auto& L : layers_) b += L.qkv->bytes() + L.wo->bytes() + L.w13->bytes() + L.w2->bytes();
    return b;
  }
  size_t kv_bytes_per_position() const override { return size_t(c_.n_layers) * 2 * c_.kv_dim() * sizeof(float); }

  const float* forward(const int* tokens, int n, int pos) override {
    pause_prefetcher();
    run_prompt(tokens, n, pos, /*all_logits=*/false);
    host_logits_.resize(size_t(c_.vocab_size));
    LB_CUDA_CHECK(cudaMemcpyAsync(host_logits_.data(), logits_.get<float>(), host_logits_.size() * 4,
                                  cudaMemcpyDeviceToHost, stream_));
    synchronize();
    return host_logits_.data();
  }

  void forward_all(const int* tokens, int n, int pos, float* out) override {
    pause_prefetcher();
    for (int off = 0; off < n; off += kPrefillChunk) {
      const int cn = std::min(kPrefillChunk, n - off);
      run_prompt(tokens + off, cn, pos + off, /*all_logits=*/true);
      LB_CUDA_CHECK(cudaMemcpyAsync(out + size_t(off) * c_.vocab_size, logits_.get<float>(),
                                    size_t(cn) * c_.vocab_size * 4, cudaMemcpyDeviceToHost, stream_));
    }
    synchronize();
  }

  int forward_sample(const int* tokens, int n, int pos, Sampler& sampler) override {
    const SamplerConfig& sc = sampler.config();
    SampleParams sp{sc.temperature, sc.top_k, sc.top_p, (unsigned long long)sc.seed};
    set_step(sampler.step());
    if (n == 1 && opt_.mode != "eager") {
      sync_token_pos(tokens[0], pos);
      if (!graph_exec_ || std::memcmp(&sp, &graph_params_, sizeof sp) != 0) capture(sp);
      if (pf_) pf_->ensure_running(stream_);  // it counts the step's launches from here on
      LB_CUDA_CHECK(cudaGraphLaunch(graph_exec_, stream_));
    } else if (n == 1) {
      pause_prefetcher();
      sync_token_pos(tokens[0], pos);
      decode_step(sp);
    } else {
      pause_prefetcher();
      upload_prompt(tokens, n, pos);  // leaves d_pos at pos (prompt kernels read it)
      prompt_sample_ops(n, pos + n, sp, [](const std::string&, auto&& f) { f(); });
    }
    ++host_step_;
    // only the token id crosses to the host
    LB_CUDA_CHECK(cudaMemcpyAsync(host_io_, d_token(), sizeof(int), cudaMemcpyDeviceToHost, stream_));
    synchronize();
    const int tok = host_io_[0];
    LB_CHECK(tok >= 0 && tok < c_.vocab_size, "CUDA sampler returned token ", tok, " outside [0, ", c_.vocab_size,
             ") (non-finite logits?)");
    dev_token_ = tok;
    dev_pos_ = pos + n;
    sampler_advance(sampler);
    return tok;
  }

  // Two events on the runner's stream: the GPU time of the work enqueued between start() and stop().
  struct EventPair {
    cudaStream_t s;
    cudaEvent_t a = nullptr, b = nullptr;
    explicit EventPair(cudaStream_t stream) : s(stream) {
      LB_CUDA_CHECK(cudaEventCreate(&a));
      LB_CUDA_CHECK(cudaEventCreate(&b));
    }
    ~EventPair() {
      cudaEventDestroy(a);
      cudaEventDestroy(b);
    }
    EventPair(const EventPair&) = delete;
    void start() { LB_CUDA_CHECK(cudaEventRecord(a, s)); }
    void stop() { LB_CUDA_CHECK(cudaEventRecord(b, s)); }
    double ms() {  // waits for stop()
      LB_CUDA_CHECK(cudaEventSynchronize(b));
      float v = 0;
      LB_CUDA_CHECK(cudaEventElapsedTime(&v, a, b));
      return double(v);
    }
    // An `op(name, f)` for decode_ops / prompt_ops: runs f between the events and appends (name, ms).
    auto timing(std::vector<std::pair<std::string, double>>& out) {
      return [this, &out](const std::string& name, auto&& f) {
        start();
        f();
        stop();
        out.push_back({name, ms()});
      };
    }
  };

  // One decode step launched op by op with events around each, for the per-kernel breakdown.
  std::vector<std::pair<std::string, double>> profile_decode_step(int token, int pos) {
    pause_prefetcher();
    sync_token_pos(token, pos);
    std::vector<std::pair<std::string, double>> out;
    EventPair ev(stream_);
    SampleParams sp{};
    decode_ops(sp, ev.timing(out));
    dev_pos_ = pos + 1;
    dev_token_ = -1;  // re-sync next time
    host_step_ = ~0ull;
    return out;
  }

  // One decode step captured with timeline stamps (cuda_api.h, StepOpTimes).
  std::vector<StepOpTimes> timeline_decode_step(int token, int pos) {
    LB_CHECK(pos + 1 < max_seq_, "--timeline: positions ", pos, " and ", pos + 1, " must lie inside the KV cache of ",
             max_seq_);
    pause_prefetcher();  // (it runs again for the two replays below)
    sync_token_pos(token, pos);
    constexpr int kMaxBlocks = 1024;  // stream GEMVs launch one block per multiprocessor, attention n_kv x 32
    constexpr size_t kPerOp = size_t(kMaxBlocks) * kTimelineStamps;
    LB_CHECK(size_t(c_.n_kv_heads) * attention_parts(max_seq_) <= size_t(kMaxBlocks), "--timeline: ",
             c_.n_kv_heads, " kv heads x ", attention_parts(max_seq_), " attention blocks exceed the ", kMaxBlocks,
             " blocks of stamps per op");
    const SampleParams sp{};
    std::vector<std::string> names;
    decode_ops(sp, [&](const std::string& n, auto&&) { names.push_back(n); });  // names only, nothing launched
    DeviceBuffer buf(names.size() * kPerOp * sizeof(unsigned long long));
    auto* stamps = buf.get<unsigned long long>();
    cudaGraph_t g;
    cudaGraphExec_t exec = nullptr;
    LB_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    gemv_set_progress(pf_ ? pf_->counter() : nullptr);  // the step as decode runs it, the prefetcher too
    size_t i = 0;
    try {
      decode_ops(sp, [&](const std::string&, auto&& f) {
        unsigned long long* mine = stamps + i++ * kPerOp;
        gemv_set_timeline(mine);  // read at launch: baked into the captured kernels' arguments
        attn_stamps_ = mine;
        f();
        gemv_set_timeline(nullptr);
        attn_stamps_ = nullptr;
      });
    } catch (...) {
      gemv_set_timeline(nullptr);
      gemv_set_progress(nullptr);
      attn_stamps_ = nullptr;
      cudaStreamEndCapture(stream_, &g);
      throw;
    }
    gemv_set_progress(nullptr);
    LB_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    LB_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
    LB_CUDA_CHECK(cudaGraphDestroy(g));
    if (pf_) pf_->ensure_running(stream_);
    LB_CUDA_CHECK(cudaGraphLaunch(exec, stream_));  // warm-up: code, caches, clocks
    LB_CUDA_CHECK(cudaMemsetAsync(stamps, 0, buf.size(), stream_));
    LB_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
    LB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    pause_prefetcher();
    LB_CUDA_CHECK(cudaGraphExecDestroy(exec));
    std::vector<unsigned long long> h(names.size() * kPerOp);
    LB_CUDA_CHECK(cudaMemcpy(h.data(), stamps, buf.size(), cudaMemcpyDeviceToHost));
    dev_token_ = -1;  // the device moved on by two tokens: re-sync next time
    dev_pos_ = -1;
    host_step_ = ~0ull;

    {  // the timer's step: the smallest gap between distinct stamps (sub-step times are averages of ticks)
      std::vector<unsigned long long> all;
      for (unsigned long long t : h)
        if (t != 0) all.push_back(t);
      std::sort(all.begin(), all.end());
      unsigned long long step = ~0ull;
      for (size_t i = 1; i < all.size(); ++i)
        if (all[i] != all[i - 1]) step = std::min(step, all[i] - all[i - 1]);
      if (step != ~0ull) std::fprintf(stderr, "timeline: %%globaltimer advances in steps of >= %llu ns\n", step);
    }
    auto median = [](std::vector<unsigned long long> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::vector<StepOpTimes> out(names.size());
    unsigned long long t0 = ~0ull;
    std::vector<unsigned long long> first(names.size()), rel(names.size()), stg(names.size()), last(names.size()),
        arr(names.size()), red(names.size()), lrel(names.size()), larr(names.size()), emed(names.size());
    for (size_t o = 0; o < names.size(); ++o) {
      out[o].name = names[o];
      std::vector<unsigned long long> r, st, ar, rd, lr, la, en, ent;
      std::vector<int> sm, bi;  // each stamped block's multiprocessor (-1: not stamped) and index
      std::map<unsigned long long, int> per_sm;
      unsigned long long f = ~0ull, e = 0;
      for (int b = 0; b < kMaxBlocks; ++b) {
        const unsigned long long* t = &h[o * kPerOp + size_t(b) * kTimelineStamps];
        if (t[0] == 0 || t[3] == 0) continue;
        f = std::min(f, t[0]);
        e = std::max(e, t[3]);
        r.push_back(t[1]);
        st.push_back(t[2]);
        en.push_back(t[3]);
        ent.push_back(t[0]);
        sm.push_back(t[6] != 0 ? int(t[6] - 1) : -1);
        bi.push_back(b);
        if (t[6] != 0 && ++per_sm[t[6]] == 2) ++out[o].doubled;
        if (t[4] != 0 && t[5] != 0) {
          ar.push_back(t[4]);
          rd.push_back(t[5]);
        }
        if (t[7] != 0 && t[8] != 0) {
          lr.push_back(t[7]);
          la.push_back(t[8]);
        }
      }
      out[o].blocks = int(r.size());
      if (r.empty()) continue;
      out[o].stamped = true;
      first[o] = f;
      last[o] = e;
      rel[o] = median(r);
      stg[o] = median(st);
      emed[o] = median(en);
      if (en.size() >= 8) {  // the latest-exiting tenth against the median block
        std::vector<size_t> idx(en.size());
        for (size_t k = 0; k < idx.size(); ++k) idx[k] = k;
        std::sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return en[x] > en[y]; });
        const size_t n_late = std::max<size_t>(1, idx.size() / 10);
        double de = 0, dr = 0, ds = 0, dx = 0;
        const double me = double(median(ent)), mr = double(rel[o]), ms = double(stg[o]), mx = double(emed[o]);
        for (size_t k = 0; k < n_late; ++k) {
          de += double(ent[idx[k]]) - me;
          dr += double(r[idx[k]]) - mr;
          ds += double(st[idx[k]]) - ms;
          dx += double(en[idx[k]]) - mx;
          if (sm[idx[k]] >= 0) out[o].late_sms.push_back(sm[idx[k]]);
          out[o].late_blocks.push_back(bi[idx[k]]);
        }
        out[o].late_entry = de / double(n_late) * 1e-3;
        out[o].late_release = dr / double(n_late) * 1e-3;
        out[o].late_staged = ds / double(n_late) * 1e-3;
        out[o].late_end = dx / double(n_late) * 1e-3;
      }
      arr[o] = ar.empty() ? 0 : median(ar);
      red[o] = rd.empty() ? 0 : median(rd);
      lrel[o] = lr.empty() ? 0 : median(lr);
      larr[o] = la.empty() ? 0 : median(la);
      t0 = std::min(t0, f);
    }
    for (size_t o = 0; o < names.size(); ++o)
      if (out[o].stamped) {
        out[o].start = double(first[o] - t0) * 1e-3;
        out[o].released = double(rel[o] - t0) * 1e-3;
        out[o].staged = double(stg[o] - t0) * 1e-3;
        out[o].end = double(last[o] - t0) * 1e-3;
        out[o].end_median = double(emed[o] - t0) * 1e-3;
        if (arr[o] != 0) {
          out[o].arrived = double(arr[o] - t0) * 1e-3;
          out[o].reduced = double(red[o] - t0) * 1e-3;
        }
        if (larr[o] != 0) {
          out[o].last_released = double(lrel[o] - t0) * 1e-3;
          out[o].last_arrived = double(larr[o] - t0) * 1e-3;
        }
      }
    return out;
  }

  // The next decode step captures a new graph (the A/B knobs changed: cuda_reread_env_knobs).
  void drop_graph() {
    if (graph_exec_) {
      LB_CUDA_CHECK(cudaGraphExecDestroy(graph_exec_));
      graph_exec_ = nullptr;
    }
  }
  // The prompt of `tokens` (n >= 2) op by op with events around each (as profile_decode_step), then as
  // forward_sample runs it (the GPU's time between two events, the host's time to enqueue it, the wall time
  // to the token on the host).
  PromptProfile profile_prompt(const std::vector<int>& tokens, Sampler& sampler) {
    const int n = int(tokens.size());
    LB_CHECK(n >= 2, "--profile: the prompt profile needs a prompt of at least 2 tokens (got ", n, ")");
    const SamplerConfig& sc = sampler.config();
    const SampleParams sp{sc.temperature, sc.top_k, sc.top_p, (unsigned long long)sc.seed};
    pause_prefetcher();
    set_step(sampler.step());
    PromptProfile pp;
    pp.tokens = n;
    EventPair ev(stream_);
    upload_prompt(tokens.data(), n, 0);
    synchronize();
    prompt_sample_ops(n, n, sp, ev.timing(pp.ops));
    // as forward_sample runs it (no syncs between ops)
    const double t0 = now_seconds();
    upload_prompt(tokens.data(), n, 0);
    ev.start();
    prompt_sample_ops(n, n, sp, [](const std::string&, auto&& f) { f(); });
    ev.stop();
    const double t1 = now_seconds();
    LB_CUDA_CHECK(cudaMemcpyAsync(host_io_, d_token(), sizeof(int), cudaMemcpyDeviceToHost, stream_));
    synchronize();
    pp.wall_ms = (now_seconds() - t0) * 1e3;
    pp.enqueue_ms = (t1 - t0) * 1e3;
    pp.gpu_ms = ev.ms();
    dev_token_ = -1;  // re-sync next time
    dev_pos_ = -1;
    host_step_ = ~0ull;
    return pp;
  }

 private:
  int* d_token() const { return state_.get<int>(); }           // [kPrefillChunk] token ids
  int* d_pos() const { return state_.get<int>() + kPrefillChunk; }
  unsigned long long* d_step() const {
    return reinterpret_cast<unsigned long long*>(state_.get<char>() + (kPrefillChunk + 2) * sizeof(int));
  }

  // The device drew this step's uniform; keep the host sampler's counter in line with it.
  static void sampler_advance(Sampler& s) { s.advance(); }

  // Uploads the token and position when the device does not already hold them (it does during decode).
  void sync_token_pos(int token, int pos) {
    LB_CHECK(pos >= 0 && pos < max_seq_, "forward: position ", pos, " outside the KV cache of ", max_seq_,
             " (raise --max-seq-len)");
    if (token == dev_token_ && pos == dev_pos_) return;
    host_io_[0] = token;
    host_io_[1] = pos;
    LB_CUDA_CHECK(cudaMemcpyAsync(d_token(), &host_io_[0], sizeof(int), cudaMemcpyHostToDevice, stream_));
    LB_CUDA_CHECK(cudaMemcpyAsync(d_pos(), &host_io_[1], sizeof(int), cudaMemcpyHostToDevice, stream_));
    synchronize();  // host_io_ is reused for the result
    dev_token_ = token;
    dev_pos_ = pos;
  }

  void set_step(uint64_t step) {
    if (step == host_step_) return;
    unsigned long long s = step;
    LB_CUDA_CHECK(cudaMemcpyAsync(d_step(), &s, sizeof s, cudaMemcpyHostToDevice, stream_));
    synchronize();
    host_step_ = step;
  }

  // ---- weights ----------------------------------------------------------------------------------
  void upload_weights() {
    const bool deferred = m_.deferred.has_value();
    LB_CHECK(deferred || !m_.weights.layers.empty(), m_.path, ": model has no weights loaded");
    const int dim = c_.dim;
    Progress bar("upload to " + device_name_, c_.n_layers + 2, true);
    uint64_t seed = deferred ? m_.deferred->seed : 0;
    auto random = [&](Format f, int64_t rows, int64_t cols, const std::string& name) {
      return random_qtensor(f, rows, cols, deferred ? m_.deferred->group : 0, seed++, name);
    };
    // embeddings: kept as a plain table on the device (one row read per token)
    {
      QTensor tmp;
      const QTensor* E = &m_.weights.tok_embeddings;
      if (deferred) {
        tmp = random(Format::BF16, c_.vocab_size, dim, "tok_embeddings");
        E = &tmp;
      }
      upload_embeddings(*E);
    }
    bar.update(1);
    std::vector<float> ones(size_t(dim), 1.0f);
    auto upload_vec = [&](const std::vector<float>& v, DeviceBuffer& d) {
      d.alloc(v.size() * 4);
      LB_CUDA_CHECK(cudaMemcpy(d.get(), v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    };
    layers_.resize(size_t(c_.n_layers));
    for (int l = 0; l < c_.n_layers; ++l) {
      DevLayer& D = layers_[l];
      if (deferred) {
        const Format f = m_.deferred->linear;
        const std::string p = "layers." + std::to_string(l) + ".";
        QTensor wq = random(f, c_.q_dim(), dim, p + "wq"), wk = random(f, c_.kv_dim(), dim, p + "wk"),
                wv = random(f, c_.kv_dim(), dim, p + "wv");
        D.qkv = DevLinear::create({&wq, &wk, &wv}, false, stream_);
        QTensor wo = random(f, dim, c_.q_dim(), p + "wo");
        D.wo = DevLinear::create({&wo}, false, stream_);
        QTensor w1 = random(f, c_.hidden_dim, dim, p + "w1"), w3 = random(f, c_.hidden_dim, dim, p + "w3");
        D.w13 = DevLinear::create({&w1, &w3}, true, stream_);
        QTensor w2 = random(f, dim, c_.hidden_dim, p + "w2");
        D.w2 = DevLinear::create({&w2}, false, stream_);
        upload_vec(ones, D.attn_norm);
        upload_vec(ones, D.ffn_norm);
        LB_CUDA_CHECK(cudaStreamSynchronize(stream_));  // host tensors die at the end of this scope
      } else {
        const LayerWeights& L = m_.weights.layers[l];
        D.qkv = DevLinear::create({&L.wq, &L.wk, &L.wv}, false, stream_);
        D.wo = DevLinear::create({&L.wo}, false, stream_);
        D.w13 = DevLinear::create({&L.w1, &L.w3}, true, stream_);
        D.w2 = DevLinear::create({&L.w2}, false, stream_);
        upload_vec(L.attn_norm, D.attn_norm);
        upload_vec(L.ffn_norm, D.ffn_norm);
      }
      bar.update(l + 2);
    }
    if (deferred) {
      upload_vec(ones, final_norm_);
      QTensor out = random(m_.deferred->lm_head, c_.vocab_size, dim, "output");
      lm_head_ = DevLinear::create({&out}, false, stream_);
      LB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    } else {
      upload_vec(m_.weights.norm, final_norm_);
      lm_head_ = DevLinear::create({&m_.weights.output}, false, stream_);
    }
    LB_CUDA_CHECK(cudaStreamSynchronize(stream_));
    bar.finish();
  }

  void upload_embeddings(const QTensor& E) {
    const size_t n = size_t(E.rows) * E.cols;
    if (E.fmt == Format::F32 || E.fmt == Format::BF16 || E.fmt == Format::F16) {
      embed_type_ = E.fmt == Format::F32 ? EmbedType::F32 : E.fmt == Format::BF16 ? EmbedType::BF16 : EmbedType::F16;
      embed_elem_bytes_ = E.fmt == Format::F32 ? 4 : 2;
      embed_.alloc(E.codes.size);
      LB_CUDA_CHECK(cudaMemcpy(embed_.get(), E.codes.data, E.codes.size, cudaMemcpyHostToDevice));
      return;
    }
    // a quantized table: decoded once on the host to bf16 (one row per token is read; its format
    // matters for quality, which the decode preserves exactly up to the bf16 rounding)
    std::vector<uint16_t> bf(n);
    std::vector<float> row(size_t(E.cols));
    for (int64_t r = 0; r < E.rows; ++r) {
      dequantize_row(E, r, row.data());
      for (int64_t j = 0; j < E.cols; ++j) bf[size_t(r) * E.cols + j] = ::lowbit::f32_to_bf16(row[j]);
    }
    embed_type_ = EmbedType::BF16;
    embed_elem_bytes_ = 2;
    embed_.alloc(n * 2);
    LB_CUDA_CHECK(cudaMemcpy(embed_.get(), bf.data(), n * 2, cudaMemcpyHostToDevice));
  }

  void allocate_state() {
    const int dim = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hid = c_.hidden_dim, hd = c_.head_dim;
    const size_t P = kPrefillChunk;
    for (auto& L : layers_) {
      L.k_cache.alloc(size_t(max_seq_) * kvd * 4);
      L.v_cache.alloc(size_t(max_seq_) * kvd * 4);
      LB_CUDA_CHECK(cudaMemset(L.k_cache.get(), 0, L.k_cache.size()));
      LB_CUDA_CHECK(cudaMemset(L.v_cache.get(), 0, L.v_cache.size()));
    }
    x_.alloc(P * dim * 4);
    qkv_.alloc(P * (qd + 2 * kvd) * 4);
    q_.alloc(P * qd * 4);
    att_.alloc(P * qd * 4);
    h_.alloc(P * hid * 4);
    gu_.alloc(P * 2 * hid * 4);
    proj_.alloc(P * dim * 4);
    logits_.alloc(P * size_t(c_.vocab_size) * 4);
    act_bf16_.alloc(P * std::max({dim, qd, hid}) * 2);
    const int max_chunks = attention_parts(max_seq_);
    part_o_.alloc(size_t(c_.n_heads) * max_chunks * hd * 4);
    part_ml_.alloc(size_t(c_.n_heads) * max_chunks * 2 * 4);
    attn_counters_.alloc(size_t(c_.n_kv_heads) * sizeof(unsigned));
    LB_CUDA_CHECK(cudaMemset(attn_counters_.get(), 0, attn_counters_.size()));
    state_.alloc((kPrefillChunk + 2) * sizeof(int) + sizeof(unsigned long long));
    LB_CUDA_CHECK(cudaMemset(state_.get(), 0, state_.size()));
    LB_CUDA_CHECK(cudaMallocHost(&host_io_, 4 * sizeof(int)));
    // rotary table [max_seq, hd/2] (cos, sin), computed exactly as the CPU backend does
    const std::vector<float> inv = c_.rope_inv_freq();
    std::vector<float> rope(size_t(max_seq_) * hd);
    for (int p = 0; p < max_seq_; ++p)
      for (int i = 0; i < hd / 2; ++i) {
        const float a = float(p) * inv[i];
        rope[(size_t(p) * (hd / 2) + i) * 2] = std::cos(a);
        rope[(size_t(p) * (hd / 2) + i) * 2 + 1] = std::sin(a);
      }
    rope_.alloc(rope.size() * 4);
    LB_CUDA_CHECK(cudaMemcpy(rope_.get(), rope.data(), rope.size() * 4, cudaMemcpyHostToDevice));
    // the dequantized-weight scratch of the prefill GEMM path: the largest stored matrix
    size_t wmax = size_t(lm_head_->rows()) * lm_head_->in_features();
    for (const auto& L : layers_)
      for (const DevLinear* W : {L.qkv.get(), L.wo.get(), L.w13.get(), L.w2.get()})
        wmax = std::max(wmax, size_t(W->rows()) * W->in_features());
    wscratch_elems_ = wmax;
  }

  // ---- the forward pass ------------------------------------------------------------------------
  // The decode step, op by op; `op(name, f)` runs f (directly, or timed when profiling).
  template <typename Op>
  void decode_ops(const SampleParams& sp, Op&& op) {
    const int dim = c_.dim;
    float* x = x_.get<float>();
    op("embed", [&] { embed(embed_.get(), embed_type_, dim, d_token(), 1, x, stream_); });
    for (int l = 0; l < c_.n_layers; ++l) {
      DevLayer& L = layers_[l];
      op("qkv_gemv+rmsnorm", [&] {
        L.qkv->gemv(x, 1, L.attn_norm.get<float>(), c_.norm_eps, LinearEpilogue::Store, qkv_.get<float>(), stream_);
      });
      auto attend = [&] {
        attention_decode(qkv_.get<float>(), d_pos(), rope_.get<float2>(), max_seq_, c_.n_heads, c_.n_kv_heads,
                         c_.head_dim, c_.rope_interleaved, L.k_cache.get<float>(), L.v_cache.get<float>(),
                         part_o_.get<float>(), part_ml_.get<float>(), attn_counters_.get<unsigned>(),
                         att_.get<float>(), stream_, attn_stamps_);
      };
      op("attention_decode+rope+kv_write", attend);
      // LOWBIT_ATTN_REPEAT=1 (a diagnostic for the step timeline): the attention once more, right after
      // itself (it is idempotent: the same row written, the same output), to compare a run on warm
      // instruction and constant caches with the first
      static EnvKnob<bool> repeat([] { return env_switch("LOWBIT_ATTN_REPEAT", "0", "1", false); });
      if (repeat.get()) op("attention_decode (repeated)", attend);
      op("o_gemv+residual", [&] {
        // the attention runs n_kv_heads x a few blocks: o's blocks may fill their ring early (reset however
        // the launch ends)
        struct AfterNarrow {
          AfterNarrow() { gemv_set_after_narrow(true); }
          ~AfterNarrow() { gemv_set_after_narrow(false); }
        } after_narrow;
        L.wo->gemv(att_.get<float>(), 1, nullptr, 0.0f, LinearEpilogue::AddTo, x, stream_);
      });
      op("gate_up_gemv+rmsnorm+swiglu", [&] {
        L.w13->gemv(x, 1, L.ffn_norm.get<float>(), c_.norm_eps, LinearEpilogue::SwiGLU, h_.get<float>(), stream_);
      });
      op("down_gemv+residual", [&] {
        L.w2->gemv(h_.get<float>(), 1, nullptr, 0.0f, LinearEpilogue::AddTo, x, stream_);
      });
    }
    op("lm_head_gemv+rmsnorm", [&] {
      lm_head_->gemv(x, 1, final_norm_.get<float>(), c_.norm_eps, LinearEpilogue::Store, logits_.get<float>(), stream_);
    });
    op("sample", [&] { sample(logits_.get<float>(), c_.vocab_size, sp, d_token(), d_pos(), 1, d_step(), stream_); });
  }

  void decode_step(const SampleParams& sp) {
    decode_ops(sp, [](const std::string&, auto&& f) { f(); });
  }

  void capture(const SampleParams& sp) {
    drop_graph();
    setup_prefetcher();
    cudaGraph_t g;
    LB_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    gemv_set_progress(pf_ ? pf_->counter() : nullptr);  // baked into the captured launches
    try {
      decode_step(sp);
    } catch (...) {
      gemv_set_progress(nullptr);
      cudaStreamEndCapture(stream_, &g);
      throw;
    }
    gemv_set_progress(nullptr);
    LB_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    LB_CUDA_CHECK(cudaGraphInstantiate(&graph_exec_, g, 0));
    LB_CUDA_CHECK(cudaGraphDestroy(g));
    graph_params_ = sp;
  }

  // The L2 prefetcher (l2_prefetch.cuh; LOWBIT_L2PF=<SMs>, off by default), read at every capture: the
  // step's stream-GEMV launches in order, each its bytes in the order its blocks read them.
  void setup_prefetcher() {
    const L2PrefetchConfig cfg = l2_prefetch_config_from_env();
    pf_.reset();
    gemv_set_reserved_sms(cfg.sms);
    if (cfg.sms == 0) return;
    std::vector<std::vector<PrefetchChunk>> launches;
    bool ok = true;
    auto add = [&](const DevLinear& W, const float* x, const float* norm_w, LinearEpilogue e, float* y) {
      launches.emplace_back();
      ok = ok && W.read_order(x, norm_w, c_.norm_eps, e, y, cfg.chunk, launches.back());
    };
    float* x = x_.get<float>();
    for (DevLayer& L : layers_) {  // as decode_ops launches them
      add(*L.qkv, x, L.attn_norm.get<float>(), LinearEpilogue::Store, qkv_.get<float>());
      add(*L.wo, att_.get<float>(), nullptr, LinearEpilogue::AddTo, x);
      add(*L.w13, x, L.ffn_norm.get<float>(), LinearEpilogue::SwiGLU, h_.get<float>());
      add(*L.w2, h_.get<float>(), nullptr, LinearEpilogue::AddTo, x);
    }
    add(*lm_head_, x, final_norm_.get<float>(), LinearEpilogue::Store, logits_.get<float>());
    if (!ok) {
      std::fprintf(stderr, "lowbit: warning: LOWBIT_L2PF=%d: a GEMV of the decode step does not run the stream "
                           "kernel; the L2 prefetcher stays off\n", cfg.sms);
      gemv_set_reserved_sms(0);
      return;
    }
    pf_ = std::make_unique<L2Prefetcher>(cfg, launches);
    std::fprintf(stderr, "lowbit: L2 prefetcher on %d SMs: %.2f GB per step in %zu chunks of <= %u KB, window %u MB, "
                         "%.0f GB/s assumed\n", cfg.sms, pf_->step_bytes() / 1e9, pf_->chunks(), cfg.chunk >> 10,
                 cfg.window_kb >> 10, cfg.rate_gbs);
  }
  // Before anything but the captured step's replays (the prefetcher paces on its launches only).
  void pause_prefetcher() {
    if (pf_) pf_->stop();
  }

  // A linear layer over n prompt tokens: GEMV kernels for n <= 8 (weights read once), else bf16
  // dequantization + cuBLAS. x: [n, K] fp32 (normalised by norm_w when given); y per the epilogue.
  void prompt_linear(const DevLinear& W, const float* x, int n, const float* norm_w, LinearEpilogue epi, float* y) {
    if (n <= kGemvMaxM) {
      // plain bf16 / fp16 weights: cuBLAS on the stored weight with x in three exact parts (gemm_parts; the
      // weight read once at cuBLAS's speed instead of the tiled GEMV's; LOWBIT_PROMPT_GEMM=0: the GEMV
      // kernels, for A/B measurements)
      static EnvKnob<bool> gemm_knob([] { return env_switch("LOWBIT_PROMPT_GEMM", "0", "1", true); });
      if (gemm_knob.get() &&
          W.gemm_parts(cublas_, x, n, norm_w, c_.norm_eps, epi, y, act_bf16_.get(), act_bf16_.size(), gu_.get<float>(),
                       gu_.size(), stream_))
        return;
      W.gemv(x, n, norm_w, c_.norm_eps, epi, y, stream_);
      return;
    }
    const int K = W.in_features(), R = W.rows();
    __nv_bfloat16* xb = act_bf16_.get<__nv_bfloat16>();
    if (norm_w) rmsnorm_to_bf16(x, norm_w, n, K, c_.norm_eps, xb, stream_);
    else f32_to_bf16(x, int64_t(n) * K, xb, stream_);
    if (!wscratch_.size()) wscratch_.alloc(wscratch_elems_ * 2);  // only prompts longer than 8 need it
    __nv_bfloat16* wb = wscratch_.get<__nv_bfloat16>();
    W.dequant_bf16(wb, stream_);
    float* out = (epi == LinearEpilogue::Store) ? y : (epi == LinearEpilogue::AddTo ? proj_.get<float>() : gu_.get<float>());
    gemm_bf16_nt(cublas_, xb, wb, out, n, R, K, stream_);
    if (epi == LinearEpilogue::AddTo) add_inplace(y, out, int64_t(n) * R, stream_);
    if (epi == LinearEpilogue::SwiGLU) {
      // silu(gate) * up, then back to fp32 for the next (down) projection's input
      swiglu_to_bf16(out, n, R / 2, xb, stream_);
      bf16_to_f32(xb, int64_t(n) * (R / 2), y, stream_);  // the down projection takes fp32 input
    }
  }

  // Uploads n prompt tokens and their base position (the prompt's kernels read both on the device).
  void upload_prompt(const int* tokens, int n, int pos) {
    LB_CHECK(n > 0 && n <= kPrefillChunk, "forward: ", n, " tokens in one call (at most ", kPrefillChunk, ")");
    LB_CHECK(pos >= 0 && pos + n <= max_seq_, "forward: positions ", pos, "..", pos + n - 1, " exceed the KV cache of ",
             max_seq_, " (raise --max-seq-len)");
    for (int i = 0; i < n; ++i)
      LB_CHECK(tokens[i] >= 0 && tokens[i] < c_.vocab_size, "token id ", tokens[i], " out of range [0, ", c_.vocab_size, ")");
    LB_CUDA_CHECK(cudaMemcpyAsync(d_token(), tokens, size_t(n) * sizeof(int), cudaMemcpyHostToDevice, stream_));
    host_io_[1] = pos;
    LB_CUDA_CHECK(cudaMemcpyAsync(d_pos(), &host_io_[1], sizeof(int), cudaMemcpyHostToDevice, stream_));
    dev_token_ = -1;
    dev_pos_ = pos;
  }

  // The prompt's forward pass over the uploaded tokens, op by op (`op(name, f)` as in decode_ops): the
  // logits of the last token, or of every token (all_logits). max_ctx: the longest context the prefill
  // attention may see (its shared memory; the base position is read on the device).
  template <typename Op>
  void prompt_ops(int n, int max_ctx, bool all_logits, Op&& op) {
    const int dim = c_.dim;
    float* x = x_.get<float>();
    op("embed", [&] { embed(embed_.get(), embed_type_, dim, d_token(), n, x, stream_); });
    for (int l = 0; l < c_.n_layers; ++l) {
      DevLayer& L = layers_[l];
      op("qkv_linear+rmsnorm", [&] {
        prompt_linear(*L.qkv, x, n, L.attn_norm.get<float>(), LinearEpilogue::Store, qkv_.get<float>());
      });
      op("rope+kv_write", [&] {
        rope_qkv_write(qkv_.get<float>(), n, d_pos(), rope_.get<float2>(), c_.n_heads, c_.n_kv_heads, c_.head_dim,
                       c_.rope_interleaved, q_.get<float>(), L.k_cache.get<float>(), L.v_cache.get<float>(), stream_);
      });
      op("attention_prefill", [&] {
        attention_prefill(q_.get<float>(), L.k_cache.get<float>(), L.v_cache.get<float>(), d_pos(), n, max_ctx,
                          c_.n_heads, c_.n_kv_heads, c_.head_dim, att_.get<float>(), stream_);
      });
      op("o_linear+residual",
         [&] { prompt_linear(*L.wo, att_.get<float>(), n, nullptr, LinearEpilogue::AddTo, x); });
      op("gate_up_linear+rmsnorm+swiglu", [&] {
        prompt_linear(*L.w13, x, n, L.ffn_norm.get<float>(), LinearEpilogue::SwiGLU, h_.get<float>());
      });
      op("down_linear+residual", [&] { prompt_linear(*L.w2, h_.get<float>(), n, nullptr, LinearEpilogue::AddTo, x); });
    }
    if (all_logits) {
      op("lm_head_linear+rmsnorm", [&] {
        prompt_linear(*lm_head_, x, n, final_norm_.get<float>(), LinearEpilogue::Store, logits_.get<float>());
      });
    } else {
      op("lm_head_gemv+rmsnorm", [&] {
        lm_head_->gemv(x + size_t(n - 1) * dim, 1, final_norm_.get<float>(), c_.norm_eps, LinearEpilogue::Store,
                       logits_.get<float>(), stream_);
      });
    }
  }
  // The prompt and the sampling of its next token (forward_sample's work on the device).
  template <typename Op>
  void prompt_sample_ops(int n, int max_ctx, const SampleParams& sp, Op&& op) {
    prompt_ops(n, max_ctx, false, op);
    op("sample", [&] { sample(logits_.get<float>(), c_.vocab_size, sp, d_token(), d_pos(), n, d_step(), stream_); });
  }

  void run_prompt(const int* tokens, int n, int pos, bool all_logits) {
    upload_prompt(tokens, n, pos);
    prompt_ops(n, pos + n, all_logits, [](const std::string&, auto&& f) { f(); });
  }

  // ---- autotune ----------------------------------------------------------------------------------
  // Times every GEMV variant of each distinct (format, shape, epilogue) on first use and keeps the
  // fastest; choices are cached on disk per GPU name.
  void autotune() {
    const std::string path = autotune_path();
    nlohmann::json cache = nlohmann::json::object();
    {
      std::ifstream in(path);
      if (in) {
        try { in >> cache; } catch (...) { cache = nlohmann::json::object(); }
      }
    }
    bool changed = false;
    const size_t kmax = size_t(std::max({c_.hidden_dim, c_.q_dim(), c_.dim}));
    DeviceBuffer xin(kmax * 4), yout(size_t(lm_head_->rows()) * 4);
    {
      std::vector<float> xs(kmax);  // small non-zero inputs: never time on zeros
      for (size_t i = 0; i < kmax; ++i) xs[i] = 0.01f * float(int(i % 17) - 8);
      LB_CUDA_CHECK(cudaMemcpy(xin.get(), xs.data(), kmax * 4, cudaMemcpyHostToDevice));
    }
    auto tune = [&](DevLinear& W, LinearEpilogue epi, const float* norm) {
      const std::string key = device_name_ + "|" + format_name(W.format()) + "|" + std::to_string(W.rows()) + "x" +
                              std::to_string(W.in_features()) + "|" + std::to_string(int(epi));
      if (cache.contains(key)) {
        W.set_default_variant(cache[key].get<int>());
        return;
      }
      cudaEvent_t a, b;
      LB_CUDA_CHECK(cudaEventCreate(&a));
      LB_CUDA_CHECK(cudaEventCreate(&b));
      int best = 0;
      float best_ms = 1e30f;
      for (int v = 0; v < W.num_variants(); ++v) {
        for (int i = 0; i < 3; ++i) W.gemv(xin.get<float>(), 1, norm, c_.norm_eps, epi, yout.get<float>(), stream_, v);
        LB_CUDA_CHECK(cudaEventRecord(a, stream_));
        for (int i = 0; i < 20; ++i) W.gemv(xin.get<float>(), 1, norm, c_.norm_eps, epi, yout.get<float>(), stream_, v);
        LB_CUDA_CHECK(cudaEventRecord(b, stream_));
        LB_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        LB_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        if (ms < best_ms) { best_ms = ms; best = v; }
      }
      cudaEventDestroy(a);
      cudaEventDestroy(b);
      W.set_default_variant(best);
      cache[key] = best;
      changed = true;
    };
    for (auto& L : layers_) {
      tune(*L.qkv, LinearEpilogue::Store, L.attn_norm.get<float>());
      tune(*L.wo, LinearEpilogue::AddTo, nullptr);
      tune(*L.w13, LinearEpilogue::SwiGLU, L.ffn_norm.get<float>());
      tune(*L.w2, LinearEpilogue::AddTo, nullptr);
    }
    tune(*lm_head_, LinearEpilogue::Store, final_norm_.get<float>());
    if (changed) {
      std::ofstream out(path);
      if (out) out << cache.dump(1) << "\n";
      else std::fprintf(stderr, "lowbit: warning: cannot write the autotune cache %s\n", path.c_str());
    }
  }

  std::string autotune_path() const {
    if (!opt_.autotune_cache.empty()) return opt_.autotune_cache;
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    std::string dir = xdg ? std::string(xdg) + "/lowbit" : (home ? std::string(home) + "/.cache/lowbit" : "/tmp");
    std::string cmd = "mkdir -p '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) dir = "/tmp";
    return dir + "/autotune.json";
  }

  Model& m_;
  const LlamaConfig& c_;
  RunnerOptions opt_;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int max_seq_ = 0;
  std::vector<DevLayer> layers_;
  std::unique_ptr<DevLinear> lm_head_;
  DeviceBuffer embed_, final_norm_, rope_;
  EmbedType embed_type_ = EmbedType::BF16;
  size_t embed_elem_bytes_ = 2;
  DeviceBuffer x_, qkv_, q_, att_, h_, gu_, proj_, logits_, act_bf16_, part_o_, part_ml_, attn_counters_, state_,
      wscratch_;
  size_t wscratch_elems_ = 0;
  int* host_io_ = nullptr;  // pinned: [0] token, [1] position
  int dev_token_ = -1, dev_pos_ = -1;
  uint64_t host_step_ = ~0ull;
  std::vector<float> host_logits_;
  cudaGraphExec_t graph_exec_ = nullptr;
  SampleParams graph_params_{};
  unsigned long long* attn_stamps_ = nullptr;  // timeline_decode_step(): the attention kernel's stamps
  std::unique_ptr<L2Prefetcher> pf_;  // LOWBIT_L2PF (setup_prefetcher); last: it goes before the weights
};

}  // namespace

}  // namespace cuda

std::vector<std::pair<std::string, double>> cuda_profile_decode_step(Runner& r, int token, int pos) {
  auto* cr = dynamic_cast<cuda::CudaRunner*>(&r);
  LB_CHECK(cr != nullptr, "--profile needs the CUDA backend (--device cuda)");
  return cr->profile_decode_step(token, pos);
}

void cuda_reread_env_knobs(Runner& r) {
  ++cuda::env_knob_epoch();
  if (auto* cr = dynamic_cast<cuda::CudaRunner*>(&r)) cr->drop_graph();
}

PromptProfile cuda_profile_prompt(Runner& r, const std::vector<int>& tokens, Sampler& sampler) {
  auto* cr = dynamic_cast<cuda::CudaRunner*>(&r);
  LB_CHECK(cr != nullptr, "--profile needs the CUDA backend (--device cuda)");
  return cr->profile_prompt(tokens, sampler);
}

std::vector<StepOpTimes> cuda_timeline_decode_step(Runner& r, int token, int pos) {
  auto* cr = dynamic_cast<cuda::CudaRunner*>(&r);
  LB_CHECK(cr != nullptr, "--timeline needs the CUDA backend (--device cuda)");
  return cr->timeline_decode_step(token, pos);
}

std::unique_ptr<Runner> make_cuda_runner(Model& model, const RunnerOptions& opt) {
  std::string why;
  LB_CHECK(cuda_available(&why), "CUDA backend: ", why);
  return std::make_unique<cuda::CudaRunner>(model, opt);
}

}  // namespace lowbit
