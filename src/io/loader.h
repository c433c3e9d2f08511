// Model loading. `spec` is a file, a directory or "synthetic:<preset>":
//   - HF directory: config.json + model.safetensors or model-*.safetensors with model.safetensors.index.json
//   - .gguf (v2/v3, llama architecture)
//   - llama2.c .bin (legacy header)
//   - a lowbit quantized file (.lowbit.safetensors, see docs/file-format.md)
//   - synthetic:llama-3.1-8b etc.: random weights in the exact shape (seeded, never all zeros)
// Weights are memory-mapped where the file's layout allows; nothing is copied needlessly.
#pragma once
#include <cstdint>
#include <string>

#include "model/model.h"

namespace lowbit {

struct LoadOptions {
  uint64_t seed = 0;               // synthetic weights
  // Synthetic weights are generated in this format (bf16 default: the real checkpoints' type).
  Format synthetic_format = Format::BF16;
  bool progress = true;            // progress line while generating/converting
  // Refuse to allocate more than this many bytes of host memory for weights (0 = available RAM).
  size_t host_memory_limit = 0;
};

Model load_model(const std::string& spec, const LoadOptions& opt = {});

// Individual loaders (load_model dispatches on the path).
Model load_hf_dir(const std::string& dir, const LoadOptions& opt);
Model load_gguf(const std::string& path, const LoadOptions& opt);
Model load_llama2c(const std::string& path, const LoadOptions& opt);
Model make_synthetic(const std::string& preset, const LoadOptions& opt);

// Host memory available for a new allocation (MemAvailable), in bytes.
size_t available_host_memory();

}  // namespace lowbit
