// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then the data. The header is untrusted: offsets are checked against the data section, against the
// dtype and shape, and against each other.
#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace lowbit {

using nlohmann::json;

int64_t SafeTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t safetensors_dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "U8" || dtype == "I8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2" ||
      dtype == "F8_E8M0")
    return 1;
  return 0;
}

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  auto mf = MappedFile::open(path);
  SafeTensorsFile f = parse(mf->data(), mf->size(), path);
  f.file = std::move(mf);
  return f;
}

SafeTensorsFile SafeTensorsFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  SafeTensorsFile f;
  f.path = name;
  if (size < 8) fail(name, ": truncated safetensors file (", size, " bytes, the header length alone needs 8)");
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);  // little-endian, as on every host we run on
  if (header_len > size - 8)
    fail(name, ": corrupt safetensors file: header length ", header_len, " exceeds the ", size - 8,
         " bytes after it (truncated file or not a safetensors file)");
  const char* hdr = reinterpret_cast<const char*>(data + 8);
  json j;
  try {
    j = json::parse(hdr, hdr + header_len);
  } catch (const json::exception& e) {
    fail(name, ": bad safetensors JSON header: ", e.what());
  }
  if (!j.is_object()) fail(name, ": bad safetensors header: expected a JSON object");
  const uint8_t* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) fail(name, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(name, ": __metadata__ value for '", m.key(), "' is not a string");
        f.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail(name, ": tensor '", key, "': header entry must be an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) fail(name, ": tensor '", key, "': missing or non-string dtype");
    if (sh == v.end() || !sh->is_array()) fail(name, ": tensor '", key, "': missing or non-array shape");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(name, ": tensor '", key, "': data_offsets must be two non-negative integers");
    SafeTensorInfo ti;
    ti.name = key;
    ti.dtype = dt->get<std::string>();
    const size_t esize = safetensors_dtype_size(ti.dtype);
    if (esize == 0) fail(name, ": tensor '", key, "' has unknown dtype '", ti.dtype, "'");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) fail(name, ": tensor '", key, "': shape entries must be non-negative integers");
      uint64_t dv = d.get<uint64_t>();
      if (dv > uint64_t(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(numel, dv, &numel) ||
          numel > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(name, ": tensor '", key, "': shape ", sh->dump(), " overflows");
      ti.shape.push_back(int64_t(dv));
    }
    uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(name, ": tensor '", key, "': data_offsets [", begin, ", ", end, "] out of range (data section holds ",
           data_size, " bytes)");
    uint64_t want = 0;
    if (__builtin_mul_overflow(numel, uint64_t(esize), &want) || want != end - begin)
      fail(name, ": tensor '", key, "': data_offsets span ", end - begin, " bytes, but ", ti.dtype, " ",
           sh->dump(), " needs ", numel, " * ", esize, " bytes");
    ti.data = base + begin;
    ti.nbytes = size_t(end - begin);
    auto [pos, inserted] = f.tensors.emplace(key, std::move(ti));
    ranges.push_back({begin, end, &pos->first});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  // Empty tensors occupy no bytes and cannot overlap anything.
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin == r.end) continue;
    if (prev && prev->end > r.begin)
      fail(name, ": tensors '", *prev->name, "' [", prev->begin, ", ", prev->end, ") and '", *r.name, "' [",
           r.begin, ", ", r.end, ") overlap");
    prev = &r;
  }
  return f;
}

const SafeTensorInfo* SafeTensorsFile::find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

const SafeTensorInfo& SafeTensorsFile::get(const std::string& name) const {
  const SafeTensorInfo* t = find(name);
  if (!t) fail(path, ": tensor '", name, "' is missing");
  return *t;
}

// ---- writer -------------------------------------------------------------------------------------

void SafeTensorsWriter::add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
  LB_CHECK(name != "__metadata__" && !name.empty(), "safetensors writer: invalid tensor name '", name, "'");
  for (const auto& e : entries_)
    LB_CHECK(e.name != name, "safetensors writer: tensor '", name, "' added twice");
  const size_t esize = safetensors_dtype_size(dtype);
  LB_CHECK(esize > 0, "safetensors writer: tensor '", name, "' has unknown dtype '", dtype, "'");
  uint64_t numel = 1;
  for (int64_t d : shape) {
    LB_CHECK(d >= 0, "safetensors writer: tensor '", name, "' has a negative dimension");
    numel *= uint64_t(d);
  }
  LB_CHECK(numel * esize == nbytes, "safetensors writer: tensor '", name, "' (", dtype, ") has ", nbytes,
           " bytes, its shape needs ", numel * esize);
  LB_CHECK(nbytes == 0 || data != nullptr, "safetensors writer: tensor '", name, "' has no data");
  entries_.push_back({name, dtype, std::move(shape), data, nbytes});
}

void SafeTensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header;
  if (!metadata_.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.nbytes}}};
    offset += e.nbytes;
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data section starts 8-byte aligned (as the reference writer does).
  text.append((8 - text.size() % 8) % 8, ' ');

  // Write next to the target and rename, so a failed write never leaves a truncated file under the name.
  const std::string tmp = path + ".tmp";
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) fail(path, ": cannot create (", std::strerror(errno), ")");
  auto write_all = [&](const void* p, size_t n) {
    if (n > 0 && std::fwrite(p, 1, n, fp) != n) {
      int e = errno;
      std::fclose(fp);
      std::remove(tmp.c_str());
      fail(path, ": write failed (", std::strerror(e), ")");
    }
  };
  uint64_t hlen = text.size();
  write_all(&hlen, 8);
  write_all(text.data(), text.size());
  for (const auto& e : entries_) write_all(e.data, e.nbytes);
  if (std::fclose(fp) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail(path, ": write failed (", std::strerror(e), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail(path, ": cannot rename ", tmp, " into place (", std::strerror(e), ")");
  }
}

}  // namespace lowbit
