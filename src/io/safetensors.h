// safetensors reader and writer. Tensors are memory-mapped views; the header is checked against the file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/mapped_file.h"

namespace lowbit {

struct SafeTensorInfo {
  std::string name;
  std::string dtype;            // "F32", "BF16", "F16", "U8", "I8", "F8_E4M3", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
};

class SafeTensorsFile {
 public:
  // Throws Error naming the file: truncated header, bad JSON, offsets out of range or overlapping,
  // size not matching dtype*shape.
  static SafeTensorsFile open(const std::string& path);
  static SafeTensorsFile parse(const uint8_t* data, size_t size, const std::string& name);

  std::string path;
  std::map<std::string, SafeTensorInfo> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__" (string -> string)
  std::shared_ptr<MappedFile> file;

  const SafeTensorInfo* find(const std::string& name) const;
  const SafeTensorInfo& get(const std::string& name) const;  // throws naming the tensor and file
};

size_t safetensors_dtype_size(const std::string& dtype);  // 0 when unknown

// Streams tensors into a .safetensors file (header first, then data in order).
class SafeTensorsWriter {
 public:
  void add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape, const void* data,
           size_t nbytes);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Writes the file; throws Error naming the path on I/O failure.
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    const void* data;
    size_t nbytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace lowbit
