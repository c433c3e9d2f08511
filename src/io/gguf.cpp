// GGUF v2/v3 reader. The file is untrusted: every count, length, offset and size is checked against the
// bytes that remain before it is used, so a corrupt header fails with an Error instead of reading past the
// end or allocating absurd amounts of memory.
#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "util/error.h"
#include "util/half.h"

namespace lowbit {

namespace {

// Block size (elements) and bytes per block of every ggml type we know the layout of. Types lowbit does
// not dequantize are still sized so that a file using them parses (and `info` can show them); the loader
// rejects them by name.
struct GgmlTypeTraits {
  const char* name;
  int64_t block;
  int64_t block_bytes;
};

const GgmlTypeTraits* ggml_traits(uint32_t t) {
  // Indexed by type id; ids 4, 5, 31-33 and 36-38 were removed from ggml and are unknown here.
  static const GgmlTypeTraits table[] = {
      {"F32", 1, 4},         {"F16", 1, 2},        {"Q4_0", 32, 18},    {"Q4_1", 32, 20},
      {nullptr, 0, 0},       {nullptr, 0, 0},      {"Q5_0", 32, 22},    {"Q5_1", 32, 24},
      {"Q8_0", 32, 34},      {"Q8_1", 32, 36},     {"Q2_K", 256, 84},   {"Q3_K", 256, 110},
      {"Q4_K", 256, 144},    {"Q5_K", 256, 176},   {"Q6_K", 256, 210},  {"Q8_K", 256, 292},
      {"IQ2_XXS", 256, 66},  {"IQ2_XS", 256, 74},  {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
      {"IQ4_NL", 32, 18},    {"IQ3_S", 256, 110},  {"IQ2_S", 256, 82},  {"IQ4_XS", 256, 136},
      {"I8", 1, 1},          {"I16", 1, 2},        {"I32", 1, 4},       {"I64", 1, 8},
      {"F64", 1, 8},         {"IQ1_M", 256, 56},   {"BF16", 1, 2},      {nullptr, 0, 0},
      {nullptr, 0, 0},       {nullptr, 0, 0},      {"TQ1_0", 256, 54},  {"TQ2_0", 256, 66},
      {nullptr, 0, 0},       {nullptr, 0, 0},      {nullptr, 0, 0},     {"MXFP4", 32, 17},
  };
  if (t >= sizeof(table) / sizeof(table[0]) || table[t].name == nullptr) return nullptr;
  return &table[t];
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }
bool add_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_add_overflow(a, b, out); }

const char* gguf_type_name(uint32_t t) {
  static const char* names[] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32",  "float32",
                                "bool",  "string", "array", "uint64", "int64",  "float64"};
  return t < 13 ? names[t] : "unknown";
}

// Smallest encoding of one value of a GGUF type, used to bound element counts before allocating.
uint64_t min_value_bytes(uint32_t t) {
  switch (static_cast<GgufType>(t)) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;   // the length prefix
    case GgufType::ARRAY: return 12;   // element type + count
  }
  return 1;
}

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& name) : p_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail(name_, ": truncated GGUF file: ", what, " needs ", n, " bytes at offset ", pos_, ", only ",
           remaining(), " left (file size ", size_, ")");
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));  // unaligned-safe; GGUF is little-endian like every host we run on
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail(name_, ": truncated or corrupt GGUF file: ", what, " has length ", len, " at offset ", pos_ - 8, ", but only ",
           remaining(), " bytes remain");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }
  void skip(uint64_t n, const char* what) {
    need(n, what);
    pos_ += size_t(n);
  }
  // A count of elements each taking at least `min_bytes`: rejects counts the remaining bytes cannot hold,
  // which bounds every allocation by the file size.
  uint64_t read_count(const char* what, uint64_t min_bytes) {
    uint64_t n = read<uint64_t>(what);
    if (min_bytes > 0 && n > remaining() / min_bytes)
      fail(name_, ": truncated or corrupt GGUF file: ", what, " is ", n, " at offset ", pos_ - 8, ", but the ", remaining(),
           " remaining bytes hold at most ", remaining() / min_bytes);
    return n;
  }
  const std::string& name() const { return name_; }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

int64_t read_int_of_type(Reader& r, GgufType t, const char* what) {
  switch (t) {
    case GgufType::UINT8: return r.read<uint8_t>(what);
    case GgufType::INT8: return r.read<int8_t>(what);
    case GgufType::UINT16: return r.read<uint16_t>(what);
    case GgufType::INT16: return r.read<int16_t>(what);
    case GgufType::UINT32: return r.read<uint32_t>(what);
    case GgufType::INT32: return r.read<int32_t>(what);
    case GgufType::INT64: return r.read<int64_t>(what);
    case GgufType::UINT64: return static_cast<int64_t>(r.read<uint64_t>(what));
    default: return 0;
  }
}

bool is_int_type(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64: return true;
    default: return false;
  }
}
bool is_unsigned_type(GgufType t) {
  return t == GgufType::UINT8 || t == GgufType::UINT16 || t == GgufType::UINT32 || t == GgufType::UINT64;
}

// Arrays of arrays are legal GGUF; the depth limit bounds the recursion on corrupt input.
constexpr int kMaxArrayDepth = 4;

// Reads an array's element type, count and elements (r is positioned after the ARRAY type id).
GgufValue read_array(Reader& r, const std::string& key, int depth) {
  if (depth > kMaxArrayDepth)
    fail(r.name(), ": corrupt GGUF file: key '", key, "' nests arrays deeper than ", kMaxArrayDepth);
  GgufValue v;
  v.type = GgufType::ARRAY;
  uint32_t et = r.read<uint32_t>("array element type");
  if (et > uint32_t(GgufType::FLOAT64))
    fail(r.name(), ": corrupt GGUF file: key '", key, "' has an array of unknown value type ", et);
  v.array_type = static_cast<GgufType>(et);
  uint64_t n = r.read_count("array length", min_value_bytes(et));
  // No reserve: counts are bounded by the file size, but growing with what is actually read keeps a
  // corrupt count from allocating several times the file size up front.
  if (v.array_type == GgufType::ARRAY) {
    v.v = std::vector<int64_t>{};
    // Each inner array is encoded like a top-level one without its ARRAY type id: element type, count, data.
    for (uint64_t i = 0; i < n; ++i) v.elements.push_back(read_array(r, key, depth + 1));
  } else if (v.array_type == GgufType::STRING) {
    std::vector<std::string> a;
    for (uint64_t i = 0; i < n; ++i) a.push_back(r.read_string("array string"));
    v.v = std::move(a);
  } else if (v.array_type == GgufType::FLOAT32 || v.array_type == GgufType::FLOAT64) {
    std::vector<double> a;
    for (uint64_t i = 0; i < n; ++i)
      a.push_back(v.array_type == GgufType::FLOAT32 ? double(r.read<float>("array float32"))
                                                    : r.read<double>("array float64"));
    v.v = std::move(a);
  } else if (v.array_type == GgufType::BOOL) {
    std::vector<bool> a;
    for (uint64_t i = 0; i < n; ++i) a.push_back(r.read<uint8_t>("array bool") != 0);
    v.v = std::move(a);
  } else {
    std::vector<int64_t> a;
    for (uint64_t i = 0; i < n; ++i) a.push_back(read_int_of_type(r, v.array_type, "array integer"));
    v.v = std::move(a);
  }
  return v;
}

GgufValue read_value(Reader& r, uint32_t type_id, const std::string& key) {
  GgufValue v;
  if (type_id > uint32_t(GgufType::FLOAT64))
    fail(r.name(), ": corrupt GGUF file: key '", key, "' has unknown value type ", type_id);
  v.type = static_cast<GgufType>(type_id);
  switch (v.type) {
    case GgufType::FLOAT32: v.v = double(r.read<float>("float32 value")); break;
    case GgufType::FLOAT64: v.v = r.read<double>("float64 value"); break;
    case GgufType::BOOL: v.v = r.read<uint8_t>("bool value") != 0; break;
    case GgufType::STRING: v.v = r.read_string("string value"); break;
    case GgufType::UINT64: v.v = r.read<uint64_t>("uint64 value"); break;
    case GgufType::ARRAY: v = read_array(r, key, 1); break;
    default:
      if (is_unsigned_type(v.type)) v.v = uint64_t(read_int_of_type(r, v.type, "integer value"));
      else v.v = read_int_of_type(r, v.type, "integer value");
      break;
  }
  return v;
}

}  // namespace

const char* ggml_type_name(uint32_t t) {
  const GgmlTypeTraits* tr = ggml_traits(t);
  return tr ? tr->name : "unknown";
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

GgufFile GgufFile::open(const std::string& path) {
  auto mf = MappedFile::open(path);
  GgufFile g = parse(mf->data(), mf->size(), path);
  g.path = path;
  g.file = std::move(mf);
  return g;
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  GgufFile g;
  g.path = name;
  Reader r(data, size, name);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) fail(name, ": not a GGUF file (magic is not \"GGUF\")");
  r.read<uint32_t>("magic");
  g.version = r.read<uint32_t>("version");
  if (g.version == 1) fail(name, ": GGUF version 1 is not supported (only versions 2 and 3)");
  if (g.version != 2 && g.version != 3)
    fail(name, ": unsupported GGUF version ", g.version, " (expected 2 or 3)");
  // Smallest tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
  uint64_t n_tensors = r.read_count("tensor count", 24);
  // Smallest key/value: key length (8) + value type (4) + one byte of value.
  uint64_t n_kv = r.read_count("metadata key/value count", 13);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.read_string("metadata key");
    uint32_t type_id = r.read<uint32_t>("metadata value type");
    GgufValue v = read_value(r, type_id, key);
    if (g.kv.count(key)) fail(name, ": corrupt GGUF file: duplicate metadata key '", key, "'");
    g.kv.emplace(std::move(key), std::move(v));
  }

  uint64_t alignment = 32;
  if (g.has("general.alignment")) {
    const GgufValue& a = g.kv.at("general.alignment");
    if (!is_int_type(a.type)) fail(name, ": general.alignment has type ", gguf_type_name(uint32_t(a.type)),
                                   ", expected an integer");
    int64_t av = g.get_int("general.alignment");
    // Alignment is used as a mask below: it must be a power of two.
    if (av <= 0 || (av & (av - 1)) != 0 || av > (int64_t(1) << 30))
      fail(name, ": general.alignment is ", av, ", expected a power of two");
    alignment = uint64_t(av);
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo ti;
    ti.name = r.read_string("tensor name");
    uint32_t n_dims = r.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > 4)
      fail(name, ": tensor '", ti.name, "' has ", n_dims, " dimensions (expected 1 to 4)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = r.read<uint64_t>("tensor dimension");
      if (dim == 0 || dim > uint64_t(std::numeric_limits<int64_t>::max()) || mul_overflows(numel, dim, &numel) ||
          numel > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(name, ": tensor '", ti.name, "' has an invalid dimension ", dim, " (or its element count overflows)");
      ti.dims.push_back(int64_t(dim));
    }
    ti.type = r.read<uint32_t>("tensor type");
    ti.offset = r.read<uint64_t>("tensor offset");
    const GgmlTypeTraits* tr = ggml_traits(ti.type);
    if (!tr) fail(name, ": tensor '", ti.name, "' has unknown ggml type id ", ti.type);
    if (uint64_t(ti.dims[0]) % uint64_t(tr->block) != 0)
      fail(name, ": tensor '", ti.name, "' (", tr->name, ") has ", ti.dims[0], " columns, not a multiple of the ",
           tr->name, " block size ", tr->block);
    uint64_t nbytes = 0;
    if (mul_overflows(numel / uint64_t(tr->block), uint64_t(tr->block_bytes), &nbytes))
      fail(name, ": tensor '", ti.name, "' byte size overflows");
    ti.nbytes = size_t(nbytes);
    if (ti.offset % alignment != 0)
      fail(name, ": tensor '", ti.name, "' offset ", ti.offset, " is not a multiple of the alignment ", alignment);
    g.tensors.push_back(std::move(ti));
  }

  // The data section starts at the next multiple of the alignment after the tensor infos.
  uint64_t data_start = (uint64_t(r.pos()) + alignment - 1) / alignment * alignment;
  std::vector<size_t> order(g.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (auto& ti : g.tensors) {
    uint64_t begin = 0, end = 0;
    if (add_overflows(data_start, ti.offset, &begin) || add_overflows(begin, ti.nbytes, &end) || end > size)
      fail(name, ": tensor '", ti.name, "' (", ggml_type_name(ti.type), ", ", ti.nbytes, " bytes at data offset ",
           ti.offset, ") extends past the end of the file (data section starts at ", data_start, ", file size ",
           size, ")");
    ti.data = data + begin;
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return g.tensors[a].offset < g.tensors[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const auto& prev = g.tensors[order[k - 1]];
    const auto& cur = g.tensors[order[k]];
    if (prev.offset + prev.nbytes > cur.offset)
      fail(name, ": tensors '", prev.name, "' and '", cur.name, "' overlap in the data section (offsets ",
           prev.offset, "+", prev.nbytes, " and ", cur.offset, ")");
  }
  std::map<std::string, int> seen;
  for (auto& ti : g.tensors)
    if (seen[ti.name]++) fail(name, ": duplicate tensor name '", ti.name, "'");
  return g;
}

// ---- typed getters ------------------------------------------------------------------------------

namespace {
const GgufValue& get_value(const GgufFile& g, const std::string& key) {
  auto it = g.kv.find(key);
  if (it == g.kv.end()) fail(g.path, ": GGUF metadata key '", key, "' is missing");
  return it->second;
}
[[noreturn]] void wrong_type(const GgufFile& g, const std::string& key, const GgufValue& v, const char* want) {
  std::string have = gguf_type_name(uint32_t(v.type));
  if (v.type == GgufType::ARRAY) have = std::string("array of ") + gguf_type_name(uint32_t(v.array_type));
  fail(g.path, ": GGUF metadata key '", key, "' has type ", have, ", expected ", want);
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get_value(*this, key);
  if (v.type != GgufType::STRING) wrong_type(*this, key, v, "string");
  return std::get<std::string>(v.v);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get_value(*this, key);
  if (!is_int_type(v.type)) wrong_type(*this, key, v, "an integer");
  if (auto* u = std::get_if<uint64_t>(&v.v)) {
    if (*u > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(path, ": GGUF metadata key '", key, "' value ", *u, " is out of range");
    return int64_t(*u);
  }
  return std::get<int64_t>(v.v);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get_value(*this, key);
  if (v.type == GgufType::FLOAT32 || v.type == GgufType::FLOAT64) return std::get<double>(v.v);
  if (is_int_type(v.type)) return double(get_int(key));
  wrong_type(*this, key, v, "a number");
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = get_value(*this, key);
  if (v.type != GgufType::ARRAY || v.array_type != GgufType::STRING) wrong_type(*this, key, v, "array of string");
  return std::get<std::vector<std::string>>(v.v);
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue& v = get_value(*this, key);
  if (v.type == GgufType::ARRAY && (v.array_type == GgufType::FLOAT32 || v.array_type == GgufType::FLOAT64))
    return std::get<std::vector<double>>(v.v);
  if (v.type == GgufType::ARRAY && is_int_type(v.array_type)) {
    const auto& a = std::get<std::vector<int64_t>>(v.v);
    return std::vector<double>(a.begin(), a.end());
  }
  wrong_type(*this, key, v, "array of numbers");
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = get_value(*this, key);
  if (v.type != GgufType::ARRAY || !is_int_type(v.array_type)) wrong_type(*this, key, v, "array of integers");
  return std::get<std::vector<int64_t>>(v.v);
}

int64_t GgufFile::get_int_or(const std::string& key, int64_t def) const { return has(key) ? get_int(key) : def; }
double GgufFile::get_float_or(const std::string& key, double def) const {
  return has(key) ? get_float(key) : def;
}
std::string GgufFile::get_string_or(const std::string& key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// ---- writer -------------------------------------------------------------------------------------

namespace {
class Writer {
 public:
  template <typename T>
  void put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    out.insert(out.end(), tmp, tmp + sizeof(T));
  }
  void str(const std::string& s) {
    put(uint64_t(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  void integer(GgufType t, int64_t v) {
    switch (t) {
      case GgufType::UINT8: put(uint8_t(v)); break;
      case GgufType::INT8: put(int8_t(v)); break;
      case GgufType::UINT16: put(uint16_t(v)); break;
      case GgufType::INT16: put(int16_t(v)); break;
      case GgufType::UINT32: put(uint32_t(v)); break;
      case GgufType::INT32: put(int32_t(v)); break;
      case GgufType::UINT64: put(uint64_t(v)); break;
      default: put(int64_t(v)); break;
    }
  }
  std::vector<uint8_t> out;
};
}  // namespace

namespace {
void write_array(Writer& w, const GgufValue& v) {
  w.put(uint32_t(v.array_type));
  if (v.array_type == GgufType::ARRAY) {
    w.put(uint64_t(v.elements.size()));
    for (const auto& e : v.elements) write_array(w, e);
  } else if (auto* a = std::get_if<std::vector<std::string>>(&v.v)) {
    w.put(uint64_t(a->size()));
    for (const auto& s : *a) w.str(s);
  } else if (auto* f = std::get_if<std::vector<double>>(&v.v)) {
    w.put(uint64_t(f->size()));
    for (double x : *f) v.array_type == GgufType::FLOAT32 ? w.put(float(x)) : w.put(x);
  } else if (auto* b = std::get_if<std::vector<bool>>(&v.v)) {
    w.put(uint64_t(b->size()));
    for (bool x : *b) w.put(uint8_t(x));
  } else {
    const auto& iv = std::get<std::vector<int64_t>>(v.v);
    w.put(uint64_t(iv.size()));
    for (int64_t x : iv) w.integer(v.array_type, x);
  }
}
}  // namespace

std::vector<uint8_t> gguf_write_metadata(const std::map<std::string, GgufValue>& kv) {
  Writer w;
  w.out = {'G', 'G', 'U', 'F'};
  w.put(uint32_t(3));
  w.put(uint64_t(0));
  w.put(uint64_t(kv.size()));
  for (const auto& [key, v] : kv) {
    w.str(key);
    w.put(uint32_t(v.type));
    switch (v.type) {
      case GgufType::FLOAT32: w.put(float(std::get<double>(v.v))); break;
      case GgufType::FLOAT64: w.put(std::get<double>(v.v)); break;
      case GgufType::BOOL: w.put(uint8_t(std::get<bool>(v.v))); break;
      case GgufType::STRING: w.str(std::get<std::string>(v.v)); break;
      case GgufType::ARRAY: write_array(w, v); break;
      default:
        if (auto* u = std::get_if<uint64_t>(&v.v)) w.integer(v.type, int64_t(*u));
        else w.integer(v.type, std::get<int64_t>(v.v));
        break;
    }
  }
  return w.out;
}

// ---- dequantization -----------------------------------------------------------------------------

namespace {
inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Q8_0 block: fp16 d, then 32 int8 q; x = q * d.
void dequant_q8_0_block(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = float(q[j]) * d;
}
// Q4_0 block: fp16 d, then 16 bytes; byte j holds element j (low nibble) and element j+16 (high nibble);
// x = (nibble - 8) * d.
void dequant_q4_0_block(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint8_t* q = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = float(int(q[j] & 0x0f) - 8) * d;
    y[j + 16] = float(int(q[j] >> 4) - 8) * d;
  }
}
// Q4_1 block: fp16 d, fp16 m, then 16 bytes as in Q4_0; x = nibble * d + m.
void dequant_q4_1_block(const uint8_t* b, float* y) {
  const float d = load_f16(b), m = load_f16(b + 2);
  const uint8_t* q = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = float(q[j] & 0x0f) * d + m;
    y[j + 16] = float(q[j] >> 4) * d + m;
  }
}
}  // namespace

void ggml_dequantize(uint32_t type, const uint8_t* src, int64_t n, float* dst, const std::string& tensor_name) {
  LB_CHECK(n >= 0, "tensor '", tensor_name, "': negative element count ", n);
  const GgmlTypeTraits* tr = ggml_traits(type);
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GgmlType::F16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) dst[i] = load_f16(src + 2 * i);
      return;
    case GgmlType::BF16:
#pragma omp parallel for schedule(static) if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1: {
      LB_CHECK(n % 32 == 0, "tensor '", tensor_name, "' (", tr->name, "): ", n,
               " elements is not a multiple of the block size 32");
      const int64_t nb = n / 32;
      const int64_t bb = tr->block_bytes;
      const auto t = static_cast<GgmlType>(type);
#pragma omp parallel for schedule(static) if (nb > 2048)
      for (int64_t i = 0; i < nb; ++i) {
        if (t == GgmlType::Q8_0) dequant_q8_0_block(src + i * bb, dst + i * 32);
        else if (t == GgmlType::Q4_0) dequant_q4_0_block(src + i * bb, dst + i * 32);
        else dequant_q4_1_block(src + i * bb, dst + i * 32);
      }
      return;
    }
  }
  fail("tensor '", tensor_name, "' has ggml type ", ggml_type_name(type), " (id ", type,
       "), which lowbit does not read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
}

}  // namespace lowbit
