// Model loading. `spec` is a file, a directory or "synthetic:<preset>":
//   - HF directory: config.json + model.safetensors or model-*.safetensors with model.safetensors.index.json
//   - .gguf (v2/v3, llama architecture)
//   - llama2.c .bin (legacy header)
//   - a lowbit quantized file (.lowbit.safetensors, see docs/file-format.md)
//   - synthetic:llama-3.1-8b etc.: random weights in the exact shape (seeded, never all zeros)
// Weights are memory-mapped where the file's layout allows; nothing is copied needlessly.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace lowbit {

struct LoadOptions {
  uint64_t seed = 0;               // synthetic weights
  // Synthetic weights are generated in this format (bf16 default: the real checkpoints' type).
  Format synthetic_format = Format::BF16;
  bool progress = true;            // progress line while generating/converting
  // Refuse to allocate more than this many bytes of host memory for weights (0 = available RAM).
  size_t host_memory_limit = 0;
  // Read the config (and, for files, the stored tensor types and sizes, with every shape checked) but
  // load or generate no weights: `lowbit info` on any model, even one larger than host memory.
  bool config_only = false;
};

Model load_model(const std::string& spec, const LoadOptions& opt = {});

// Individual loaders (load_model dispatches on the path).
Model load_hf_dir(const std::string& dir, const LoadOptions& opt);
Model load_gguf(const std::string& path, const LoadOptions& opt);
Model load_llama2c(const std::string& path, const LoadOptions& opt);
Model make_synthetic(const std::string& preset, const LoadOptions& opt);
// A lowbit quantized file (docs/file-format.md); weights are zero-copy views into the memory map.
Model load_lowbit(const std::string& path, const LoadOptions& opt);

// Writes `model` as a lowbit quantized file (docs/file-format.md). `tokenizer_file` ("" for none) is
// embedded so the file is self-contained; a GGUF tokenizer is reduced to its tokenizer.* metadata.
void save_lowbit(const Model& model, const std::string& path, const std::string& tokenizer_file);

// The tokenizer embedded in a lowbit file: kind ("llama2c", "tiktoken", "hf-json", "gguf") and the file's
// bytes. nullopt when the file embeds none. Throws Error naming the file when it is not a lowbit file.
struct EmbeddedTokenizer {
  std::string kind;
  std::vector<uint8_t> bytes;
};
std::optional<EmbeddedTokenizer> lowbit_embedded_tokenizer(const std::string& path);

// Host memory available for a new allocation (MemAvailable), in bytes.
size_t available_host_memory();

}  // namespace lowbit
