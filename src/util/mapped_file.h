// A read-only memory map of a whole file. Weights point into it; nothing is copied on load.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lowbit {

class MappedFile {
 public:
  // Throws Error naming the path when the file is missing, unreadable or a directory.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string; throws Error naming the path.
std::string read_text_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace lowbit
