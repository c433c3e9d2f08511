// Shared machinery of the model loaders: every format describes where each weight lives (a WeightSource),
// and assemble_model checks every shape against the config and builds the Model.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/loader.h"
#include "model/model.h"

namespace lowbit::io_detail {

// One weight as stored in a file.
struct StoredTensor {
  std::string name;             // name in the file ("blk.0.attn_q.weight")
  std::string file;             // file it lives in, for errors
  std::vector<int64_t> shape;   // row-major, outermost first: [rows, cols] for matrices, [n] for vectors
  std::string type;             // as stored: "BF16", "Q4_1", "int4"
  size_t nbytes = 0;            // bytes as stored
  size_t host_bytes = 0;        // bytes of new host memory materializing it takes (0 for zero-copy views)
  std::function<QTensor()> as_qtensor;             // matrices
  std::function<std::vector<float>()> as_floats;   // norm vectors
};

// Weights are looked up by their canonical names, the ones Model::for_each_linear uses:
//   tok_embeddings, layers.N.attention.{wq,wk,wv,wo}, layers.N.feed_forward.{w1,w2,w3},
//   layers.N.attention_norm, layers.N.ffn_norm, norm, output.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual std::optional<StoredTensor> find(const std::string& canonical) const = 0;
  // Where the weights come from, for errors ("model.gguf", "dir/ (model-*.safetensors)").
  virtual std::string where() const = 0;
  // Why materializing takes host memory, for the out-of-memory message (" for bf16 weights").
  virtual std::string memory_note() const { return ""; }
};

// Checks every tensor's presence and shape against m.config, fills m.weights (unless opt.config_only),
// m.source_types and m.source_weight_bytes. An absent `output` means tied embeddings only when
// m.config.tie_embeddings is set (callers decide tying before calling).
void assemble_model(Model& m, const WeightSource& src, const LoadOptions& opt);

// A plain (f32/bf16/f16) matrix or vector in memory owned by `owner`: a zero-copy view when the pointer is
// aligned for the element type, else a copy (kernels read the elements as their native type).
QTensor plain_matrix(const std::string& name, Format fmt, int64_t rows, int64_t cols, const uint8_t* data,
                     std::shared_ptr<const void> owner);
std::vector<float> plain_to_floats(Format fmt, const uint8_t* data, int64_t n);

// An uninitialized host buffer of n bytes (weights are written right after; zero-filling would double the
// memory traffic of generating a large synthetic model).
Buffer uninitialized_buffer(size_t n);

// "12.3 GB"
std::string format_gb(double bytes);

// Throws "<who> needs 12.3 GB of host memory<note>; 4.5 GB available" when `bytes` more of host memory do
// not fit (opt.host_memory_limit, else available_host_memory()).
void check_host_memory(size_t bytes, const LoadOptions& opt, const std::string& who, const std::string& note);

std::string dir_of(const std::string& path);

}  // namespace lowbit::io_detail
