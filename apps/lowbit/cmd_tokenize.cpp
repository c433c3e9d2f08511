// lowbit tokenize: text -> token ids (one line, space-separated); --bench measures encoding speed.
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/timer.h"

namespace lowbit::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, text, file;
  bool bos = false, bench = false;
};

int run_tokenize(const TokenizeOptions& o, bool have_text, bool have_file) {
  LB_CHECK(have_text != have_file, "tokenize: give exactly one of --text or --file");
  auto tok = load_tokenizer(o.tokenizer);
  const std::string text = have_file ? read_text_file(o.file) : o.text;
  std::vector<int> ids = tok->encode(text, o.bos);
  if (o.bench) {
    // Repeat for about a second so short inputs still give a stable rate.
    size_t iters = 0;
    double t0 = now_seconds(), elapsed = 0;
    do {
      ids = tok->encode(text, o.bos);
      ++iters;
      elapsed = now_seconds() - t0;
    } while (elapsed < 1.0);
    double mb_per_s = static_cast<double>(text.size()) * static_cast<double>(iters) / elapsed / 1e6;
    std::fprintf(stderr, "tokenize: %zu bytes -> %zu tokens, %.1f MB/s\n", text.size(), ids.size(), mb_per_s);
    return 0;
  }
  std::string line;
  line.reserve(ids.size() * 6 + 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  return 0;
}

RegisterCommand register_tokenize(
    "tokenize", "Encode text with a model's tokenizer and print the token ids", [](CLI::App& app) {
      auto o = std::make_shared<TokenizeOptions>();
      app.add_option("--tokenizer", o->tokenizer,
                     "tokenizer.bin / tokenizer.model / tokenizer.json, a model file carrying its vocabulary "
                     "(.gguf, lowbit .safetensors, llama2.c .bin) or a model directory")
          ->required();
      CLI::Option* text = app.add_option("--text", o->text, "text to encode");
      CLI::Option* file = app.add_option("--file", o->file, "file whose bytes to encode");
      text->excludes(file);
      app.add_flag("--bos", o->bos, "prepend the model's BOS token (when the model takes one)");
      app.add_flag("--bench", o->bench,
                   "encode repeatedly for ~1 s and print 'tokenize: N bytes -> T tokens, X MB/s' to stderr "
                   "(instead of the ids)");
      return [o, text, file]() { return run_tokenize(*o, text->count() > 0, file->count() > 0); };
    });

}  // namespace
}  // namespace lowbit::cli
