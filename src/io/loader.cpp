// load_model dispatch and the shared assembly of a Model from any weight source.
#include "io/loader.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/loader_internal.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/half.h"
#include "util/mapped_file.h"
#include "util/progress.h"

namespace lowbit {

namespace io_detail {

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string format_gb(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f GB", bytes / 1e9);
  return buf;
}

void check_host_memory(size_t bytes, const LoadOptions& opt, const std::string& who, const std::string& note) {
  const size_t avail = opt.host_memory_limit ? opt.host_memory_limit : available_host_memory();
  if (bytes > avail)
    fail(who, " needs ", format_gb(double(bytes)), " of host memory", note, "; ", format_gb(double(avail)),
         " available");
}

Buffer uninitialized_buffer(size_t n) {
  std::shared_ptr<uint8_t[]> p(new uint8_t[n]);  // default-initialized: no zero fill
  return Buffer::view(p.get(), n, std::shared_ptr<const void>(p, p.get()));
}

namespace {
size_t elem_size(Format fmt) { return fmt == Format::F32 ? 4 : 2; }
}  // namespace

QTensor plain_matrix(const std::string& name, Format fmt, int64_t rows, int64_t cols, const uint8_t* data,
                     std::shared_ptr<const void> owner) {
  const size_t es = elem_size(fmt);
  if (reinterpret_cast<uintptr_t>(data) % es == 0) return view_plain(name, fmt, rows, cols, data, std::move(owner));
  const size_t n = size_t(rows) * size_t(cols) * es;
  Buffer b = uninitialized_buffer(n);
  std::memcpy(b.mutable_data(), data, n);
  QTensor t = view_plain(name, fmt, rows, cols, b.data, b.owner);
  return t;
}

std::vector<float> plain_to_floats(Format fmt, const uint8_t* data, int64_t n) {
  std::vector<float> out(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) {
    if (fmt == Format::F32) {
      std::memcpy(&out[size_t(i)], data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      out[size_t(i)] = fmt == Format::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return out;
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

struct Role {
  std::string name;
  std::vector<int64_t> shape;
  const char* meaning;
};

}  // namespace

void assemble_model(Model& m, const WeightSource& src, const LoadOptions& opt) {
  const LlamaConfig& c = m.config;
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), h = c.hidden_dim, v = c.vocab_size;
  // A config that claims more layers than the file holds fails here, before anything is sized by the
  // claim (the file's own tensor count is bounded by its size).
  if (c.n_layers > 0) {
    const std::string last = "layers." + std::to_string(c.n_layers - 1) + ".attention_norm";
    if (!src.find(last)) fail(src.where(), ": tensor for '", last, "' is missing (the config has ", c.n_layers, " layers)");
  }
  std::vector<Role> roles;
  roles.push_back({"tok_embeddings", {v, d}, "vocab_size x dim"});
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    roles.push_back({p + "attention_norm", {d}, "dim"});
    roles.push_back({p + "attention.wq", {q, d}, "n_heads*head_dim x dim"});
    roles.push_back({p + "attention.wk", {kv, d}, "n_kv_heads*head_dim x dim"});
    roles.push_back({p + "attention.wv", {kv, d}, "n_kv_heads*head_dim x dim"});
    roles.push_back({p + "attention.wo", {d, q}, "dim x n_heads*head_dim"});
    roles.push_back({p + "ffn_norm", {d}, "dim"});
    roles.push_back({p + "feed_forward.w1", {h, d}, "hidden_dim x dim"});
    roles.push_back({p + "feed_forward.w2", {d, h}, "dim x hidden_dim"});
    roles.push_back({p + "feed_forward.w3", {h, d}, "hidden_dim x dim"});
  }
  roles.push_back({"norm", {d}, "dim"});
  if (!c.tie_embeddings) roles.push_back({"output", {v, d}, "vocab_size x dim"});

  std::vector<StoredTensor> found;
  found.reserve(roles.size());
  size_t host_bytes = 0;
  m.source_types.clear();
  m.source_weight_bytes = 0;
  for (const Role& r : roles) {
    std::optional<StoredTensor> t = src.find(r.name);
    if (!t) fail(src.where(), ": tensor for '", r.name, "' is missing");
    if (t->shape != r.shape)
      fail(t->file, ": tensor '", t->name, "' has shape ", shape_str(t->shape), ", expected ", shape_str(r.shape),
           " (", r.meaning, " from the config)");
    m.source_types.push_back(t->type);
    m.source_weight_bytes += t->nbytes;
    host_bytes += t->host_bytes;
    found.push_back(std::move(*t));
  }
  if (opt.config_only) return;
  check_host_memory(host_bytes, opt, m.path, src.memory_note());

  int64_t total = 0;
  for (const Role& r : roles) total += r.shape.size() == 2 ? r.shape[0] * r.shape[1] : r.shape[0];
  Progress progress("loading " + m.path, total, opt.progress && host_bytes > (size_t(1) << 28));
  int64_t done = 0;
  auto numel = [](const Role& r) { return r.shape.size() == 2 ? r.shape[0] * r.shape[1] : r.shape[0]; };
  auto matrix = [&](size_t i) {
    QTensor qt = found[i].as_qtensor();
    qt.validate();
    done += numel(roles[i]);
    progress.update(done);
    return qt;
  };
  auto vec = [&](size_t i) {
    std::vector<float> f = found[i].as_floats();
    LB_CHECK(int64_t(f.size()) == roles[i].shape[0], found[i].file, ": tensor '", found[i].name, "' gave ",
             f.size(), " values");
    done += numel(roles[i]);
    return f;
  };
  size_t k = 0;
  ModelWeights& w = m.weights;
  w.tok_embeddings = matrix(k++);
  w.layers.resize(size_t(c.n_layers));
  for (auto& L : w.layers) {
    L.attn_norm = vec(k++);
    L.wq = matrix(k++);
    L.wk = matrix(k++);
    L.wv = matrix(k++);
    L.wo = matrix(k++);
    L.ffn_norm = vec(k++);
    L.w1 = matrix(k++);
    L.w2 = matrix(k++);
    L.w3 = matrix(k++);
  }
  w.norm = vec(k++);
  w.output = c.tie_embeddings ? w.tok_embeddings : matrix(k++);
  progress.finish();
}

}  // namespace io_detail

namespace {

// min(MemAvailable, cgroup limit - usage): containers limit memory below what /proc/meminfo reports.
size_t cgroup_headroom() {
  auto read_u64 = [](const char* path, uint64_t* out) {
    std::ifstream in(path);
    std::string s;
    if (!(in >> s) || s == "max") return false;
    try {
      *out = std::stoull(s);
    } catch (...) {
      return false;
    }
    return true;
  };
  uint64_t limit = 0, usage = 0;
  if (read_u64("/sys/fs/cgroup/memory.max", &limit) && read_u64("/sys/fs/cgroup/memory.current", &usage))
    return limit > usage ? size_t(limit - usage) : 0;
  if (read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit) &&
      read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes", &usage) && limit < (uint64_t(1) << 60))
    return limit > usage ? size_t(limit - usage) : 0;
  return SIZE_MAX;
}

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

size_t available_host_memory() {
  size_t avail = 0;
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream ls(line.substr(13));
      uint64_t kb = 0;
      ls >> kb;
      avail = size_t(kb) * 1024;
      break;
    }
  }
  if (avail == 0) {  // no /proc/meminfo: fall back to physical pages
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = size_t(pages) * size_t(page);
  }
  return std::min(avail, cgroup_headroom());
}

Model load_model(const std::string& spec, const LoadOptions& opt) {
  const std::string synth = "synthetic:";
  if (spec.rfind(synth, 0) == 0) return make_synthetic(spec.substr(synth.size()), opt);
  if (spec.empty()) fail("no model given (a file, an HF directory or synthetic:<preset>)");
  if (is_directory(spec)) return load_hf_dir(spec, opt);
  if (!file_exists(spec)) fail(spec, ": no such file or directory");

  // Sniff the first bytes: the magic decides, the extension only breaks ties.
  unsigned char head[16] = {};
  size_t got = 0;
  if (FILE* fp = std::fopen(spec.c_str(), "rb")) {
    got = std::fread(head, 1, sizeof(head), fp);
    std::fclose(fp);
  } else {
    fail(spec, ": cannot open");
  }
  if (got >= 4 && std::memcmp(head, "GGUF", 4) == 0) return load_gguf(spec, opt);
  // safetensors: a little-endian header length, then a JSON object.
  if (got >= 9 && head[8] == '{') {
    SafeTensorsFile st = SafeTensorsFile::open(spec);
    if (st.metadata.count("lowbit.format")) return load_lowbit(spec, opt);
    const std::string dir = io_detail::dir_of(spec);
    if (file_exists(dir + "/config.json")) return load_hf_dir(dir, opt);
    fail(spec, ": a safetensors file without lowbit metadata and without a config.json next to it "
               "(pass the Hugging Face model directory)");
  }
  if (has_suffix(spec, ".gguf")) fail(spec, ": not a GGUF file (magic is not \"GGUF\")");
  if (has_suffix(spec, ".safetensors")) fail(spec, ": not a safetensors file (no JSON header)");
  return load_llama2c(spec, opt);
}

}  // namespace lowbit
