// Shared test helpers: where the real models are, and running the CLI.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "util/mapped_file.h"

namespace lowbit::test {

// ../shared/models next to the checkout (or $LOWBIT_SHARED_MODELS).
inline std::string shared_models() {
  if (const char* e = std::getenv("LOWBIT_SHARED_MODELS")) return e;
  return std::string(LOWBIT_SOURCE_DIR) + "/../shared/models";
}
// models/ fetched by scripts/setup.sh (SmolLM2) (or $LOWBIT_MODELS).
inline std::string fetched_models() {
  if (const char* e = std::getenv("LOWBIT_MODELS")) return e;
  return std::string(LOWBIT_SOURCE_DIR) + "/models";
}
inline std::string stories260k() { return shared_models() + "/stories260K/stories260K.bin"; }
inline std::string tok512() { return shared_models() + "/stories260K/tok512.bin"; }
inline std::string llama2_tokenizer() { return shared_models() + "/llama2-tokenizer/tokenizer.bin"; }
inline std::string llama3_tokenizer() { return shared_models() + "/llama3-tokenizer/tokenizer.model"; }
inline std::string smollm2() { return fetched_models() + "/SmolLM2-135M-Instruct.Q4_1.gguf"; }

#define LOWBIT_REQUIRE_FILE(path)                                                           \
  do {                                                                                      \
    if (!::lowbit::file_exists(path)) GTEST_SKIP() << "test data absent: " << (path)         \
                                                   << " (see ../shared/models or scripts/setup.sh)"; \
  } while (0)

struct CmdResult {
  int status = -1;
  std::string out;  // stdout (stderr goes to the file `err`)
  std::string err;
};

// Runs the lowbit CLI with `args` (a shell-quoted string); captures stdout and stderr.
CmdResult run_cli(const std::string& args);

}  // namespace lowbit::test
