// libFuzzer target: load_model on arbitrary file contents (GGUF, lowbit safetensors, llama2.c .bin are
// told apart by their first bytes) must either return a consistent Model or throw lowbit::Error.
// The bytes live in a memfd so no files are written.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "io/loader.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  static int fd = memfd_create("fuzz_model", 0);
  if (fd < 0) std::abort();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != ssize_t(size)) std::abort();
  LoadOptions opt;
  opt.progress = false;
  opt.host_memory_limit = size_t(64) << 20;  // fuzz inputs describing huge models must fail, not allocate
  try {
    Model m = load_model("/proc/self/fd/" + std::to_string(fd), opt);
    m.config.validate("fuzz");
    m.for_each_linear([](const std::string&, QTensor& t) { t.validate(); });
    if (m.weights.norm.size() != size_t(m.config.dim)) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
