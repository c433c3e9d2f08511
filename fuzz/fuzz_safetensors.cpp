// libFuzzer target: SafeTensorsFile::parse on arbitrary bytes must either succeed or throw lowbit::Error.
// When it succeeds, every tensor's bytes are read so ASan catches an offset check that let a bad range through.
#include <cstdint>
#include <cstdlib>

#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  try {
    SafeTensorsFile f = SafeTensorsFile::parse(data, size, "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : f.tensors) {
      if (size_t(t.numel()) * safetensors_dtype_size(t.dtype) != t.nbytes) std::abort();
      for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
    }
  } catch (const Error&) {
  }
  return 0;
}
