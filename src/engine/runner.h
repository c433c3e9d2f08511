// The engine API every backend implements: run tokens through the model with a static KV cache.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "formats/format.h"

namespace lowbit {

struct Model;
class Sampler;
struct ActCalibration;

struct RunnerOptions {
  int max_seq_len = 0;               // KV-cache positions; 0 = min(model's max, 4096)
  std::optional<Format> acts;        // per-token activation quantization of linear inputs (none = A16/A32)
  // Static activation ranges (engine/calibration.h): required by the static act formats (int8-static,
  // fp8-static), which take each linear input's per-tensor scale from them.
  std::shared_ptr<const ActCalibration> calibration;
  // CPU: when set, every linear input's absmax is folded into this table (lowbit calibrate).
  ActCalibration* record_calibration = nullptr;
  std::optional<Format> kv;          // KV-cache format (none = the compute type)
  int threads = 0;                   // CPU threads (0 = all cores)
  std::string mode = "graph";        // CUDA: eager | graph | autotune
  std::string autotune_cache;        // CUDA autotune: where choices are cached ("" = ~/.cache/lowbit)
  bool verbose = false;
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual std::string device() const = 0;  // "cpu (2 threads)", "cuda: NVIDIA H200"
  virtual int max_seq_len() const = 0;
  virtual int vocab_size() const = 0;
  // Runs tokens[0..n) at positions pos..pos+n-1 (a batched prefill when n > 1), writing the KV cache.
  // Returns the last token's logits (vocab floats, host memory, valid until the next call).
  virtual const float* forward(const int* tokens, int n, int pos) = 0;
  // Same, writing every position's logits to out[n, vocab] (evaluation).
  virtual void forward_all(const int* tokens, int n, int pos, float* out) = 0;
  // forward() and then sample the next token. Backends that sample on the device override this so that
  // only the token id crosses to the host.
  virtual int forward_sample(const int* tokens, int n, int pos, Sampler& sampler);
  // Waits for queued device work (timing).
  virtual void synchronize() {}
  // Bytes of weights one decode step reads (all linear layers, lm_head, one embedding row), and the
  // KV-cache bytes read per position of context, for bandwidth accounting. 0 when unknown.
  virtual size_t weight_bytes_per_token() const { return 0; }
  virtual size_t kv_bytes_per_position() const { return 0; }
};

// The CPU backend (always available).
std::unique_ptr<Runner> make_cpu_runner(Model& model, const RunnerOptions& opt);

}  // namespace lowbit
