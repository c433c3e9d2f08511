// libFuzzer target: GgufFile::parse on arbitrary bytes must either succeed or throw lowbit::Error.
// When it succeeds, every tensor's bytes are read (ASan catches a range check that let a bad offset
// through), supported tensors are dequantized, and the metadata must survive a write/parse round trip.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/gguf.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  GgufFile g;
  try {
    g = GgufFile::parse(data, size, "fuzz.gguf");
  } catch (const Error&) {
    return 0;
  }
  volatile uint8_t sink = 0;
  for (const auto& t : g.tensors) {
    for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
    if (t.numel() <= (int64_t(1) << 16)) {
      std::vector<float> out(size_t(t.numel()));
      try {
        ggml_dequantize(t.type, t.data, t.numel(), out.data(), t.name);
      } catch (const Error&) {
      }
    }
  }
  for (const auto& [key, v] : g.kv) {
    try {
      (void)g.get_int(key);
    } catch (const Error&) {
    }
    try {
      (void)g.get_float_array(key);
    } catch (const Error&) {
    }
  }
  // Whatever parsed must serialize to a file that parses back to the same keys.
  std::vector<uint8_t> again = gguf_write_metadata(g.kv);
  try {
    GgufFile h = GgufFile::parse(again.data(), again.size(), "again.gguf");
    if (h.kv.size() != g.kv.size()) std::abort();
  } catch (const Error&) {
    std::abort();  // the writer produced something the reader rejects
  }
  return 0;
}
