// GGUF v2/v3 reader: metadata key/values and tensor infos; tensor data is memory-mapped.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "util/mapped_file.h"

namespace lowbit {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// ggml tensor types lowbit reads (others are rejected with a clear error naming the tensor and type).
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, BF16 = 30 };
const char* ggml_type_name(uint32_t t);

struct GgufValue {
  GgufType type = GgufType::UINT8;
  // scalar values widened; arrays as vectors of the widened element type
  std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<int64_t>, std::vector<double>,
               std::vector<std::string>, std::vector<bool>>
      v;
  GgufType array_type = GgufType::UINT8;  // element type when type == ARRAY
  std::vector<GgufValue> elements;         // array of arrays: the inner arrays (each of type ARRAY)
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous (innermost) dimension
  uint32_t type = 0;          // ggml type id
  uint64_t offset = 0;        // relative to the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
};

class GgufFile {
 public:
  // Parses the header, metadata and tensor infos; checks every offset and size against the file.
  // Throws Error naming the file and what was wrong.
  static GgufFile open(const std::string& path);
  // The same from memory (fuzzing, tests); `name` is used in errors. The memory must outlive the object.
  static GgufFile parse(const uint8_t* data, size_t size, const std::string& name);

  uint32_t version = 0;
  std::string path;
  std::map<std::string, GgufValue> kv;
  std::vector<GgufTensorInfo> tensors;
  std::shared_ptr<MappedFile> file;  // null when parsed from memory

  bool has(const std::string& key) const { return kv.count(key) != 0; }
  // Typed getters: throw Error naming the key when it is missing or of another type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  // With a default when missing (still an error when present with a wrong type).
  int64_t get_int_or(const std::string& key, int64_t def) const;
  double get_float_or(const std::string& key, double def) const;
  std::string get_string_or(const std::string& key, const std::string& def) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;
};

// Serializes metadata as a GGUF v3 file with no tensors (e.g. a model's tokenizer.* keys on their own).
std::vector<uint8_t> gguf_write_metadata(const std::map<std::string, GgufValue>& kv);

// Dequantizes `n` values of ggml type `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_1) to fp32.
void ggml_dequantize(uint32_t type, const uint8_t* src, int64_t n, float* dst, const std::string& tensor_name);

}  // namespace lowbit
