// Tokenizers: llama2.c tokenizer.bin (SentencePiece-style BPE by scores, byte fallback), tiktoken
// (Llama-3 tokenizer.model), HF tokenizer.json byte-level BPE, and the vocabulary embedded in GGUF files.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Encodes text; special tokens written in the text (e.g. "<|eot_id|>") are recognised where the
  // tokenizer has them. bos/eos add the model's BOS/EOS ids; bos adds nothing for a vocabulary that says
  // the model takes no BOS (GGUF tokenizer.ggml.add_bos_token = false, e.g. SmolLM2).
  virtual std::vector<int> encode(std::string_view text, bool bos, bool eos = false) const;
  // The bytes token `id` stands for when it follows token `prev` (SentencePiece drops the leading
  // space of the first piece after BOS; byte tokens become their byte).
  virtual std::string decode(int prev, int id) const = 0;
  // Decodes a whole sequence (no BOS handling beyond decode()).
  std::string decode_all(const std::vector<int>& ids) const;
  virtual int vocab_size() const = 0;
  virtual std::string kind() const = 0;  // "llama2c", "tiktoken", "hf-bpe", "gguf-gpt2", "gguf-llama"

  int bos_id() const { return bos_; }
  int eos_id() const { return eos_; }
  bool adds_bos() const { return add_bos_ && bos_ >= 0; }
  const std::vector<int>& stop_ids() const { return stops_; }
  // Chat formatting (Llama-3 headers; ChatML for models whose vocabulary has <|im_start|>).
  // add_generation_prompt appends the assistant header.
  virtual std::vector<int> encode_chat(const std::vector<ChatMessage>& dialog, bool add_generation_prompt) const;
  bool has_chat_template() const { return chat_ != ChatStyle::None; }

 protected:
  enum class ChatStyle { None, Llama3, ChatML };
  // Sets BOS/EOS/stop ids and picks the chat format from the special tokens the vocabulary has.
  void init_specials(int bos, int eos, bool add_bos, std::vector<int> stops);
  // Appends the ids of `text` without BOS/EOS; special tokens spelled in it are recognised only when
  // `specials` is true (chat content is encoded with it false, so text cannot forge a header).
  virtual void encode_into(std::string_view text, bool specials, std::vector<int>& out) const = 0;
  // The id of the special token spelled `text`; -1 when the vocabulary has none.
  virtual int special_token_id(std::string_view text) const = 0;
  int bos_ = -1, eos_ = -1;
  bool add_bos_ = true;
  std::vector<int> stops_;
  ChatStyle chat_ = ChatStyle::None;
};

// Loads a tokenizer from a file: tokenizer.bin (llama2.c), tokenizer.model (tiktoken), tokenizer.json (HF)
// or a .gguf model file carrying its vocabulary. Also accepts a model directory, a llama2.c checkpoint or a
// lowbit .safetensors file (via find_tokenizer_for). Throws Error naming the file on bad input.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Loads a tokenizer from the bytes of a tokenizer file of the given kind: "llama2c" (tokenizer.bin),
// "tiktoken" (tokenizer.model), "hf-bpe" or "hf-json" (tokenizer.json), "gguf" (a GGUF file; its tensors may
// be absent).
// This is how the tokenizer embedded in a lowbit .safetensors file (tensor "tokenizer.bytes", metadata
// "lowbit.tokenizer" = kind) is read. `name` is used in errors.
std::unique_ptr<Tokenizer> load_tokenizer_from_bytes(const std::string& kind, const uint8_t* data, size_t size,
                                                     const std::string& name);

// Finds the tokenizer that belongs to a model path (next to it, or inside it for GGUF); "" when none.
// llama2.c .bin checkpoint: tok<vocab_size>.bin or tokenizer.bin next to it; directory: tokenizer.json,
// then tokenizer.model, then tokenizer.bin in it; .gguf: the file itself; .safetensors: the file itself
// when its metadata has "lowbit.tokenizer", else tokenizer.json / tokenizer.model next to it.
std::string find_tokenizer_for(const std::string& model_path, int vocab_size);

}  // namespace lowbit
