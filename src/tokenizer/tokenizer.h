// Tokenizers: llama2.c tokenizer.bin (SentencePiece-style BPE by scores, byte fallback), tiktoken
// (Llama-3 tokenizer.model), HF tokenizer.json byte-level BPE, and the vocabulary embedded in GGUF files.
#pragma once
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
  // tokenizer has them. bos/eos add the model's BOS/EOS ids.
  virtual std::vector<int> encode(std::string_view text, bool bos, bool eos = false) const = 0;
  // The bytes token `id` stands for when it follows token `prev` (SentencePiece drops the leading
  // space of the first piece after BOS; byte tokens become their byte).
  virtual std::string decode(int prev, int id) const = 0;
  // Decodes a whole sequence (no BOS handling beyond decode()).
  std::string decode_all(const std::vector<int>& ids) const;
  virtual int vocab_size() const = 0;
  virtual std::string kind() const = 0;  // "llama2c", "tiktoken", "hf-bpe", "gguf-gpt2", "gguf-llama"

  int bos_id() const { return bos_; }
  int eos_id() const { return eos_; }
  const std::vector<int>& stop_ids() const { return stops_; }
  // Chat formatting (Llama-3 headers; ChatML for models whose vocabulary has <|im_start|>).
  // add_generation_prompt appends the assistant header.
  virtual std::vector<int> encode_chat(const std::vector<ChatMessage>& dialog, bool add_generation_prompt) const;
  bool has_chat_template() const { return chat_ != ChatStyle::None; }

 protected:
  enum class ChatStyle { None, Llama3, ChatML };
  int bos_ = -1, eos_ = -1;
  std::vector<int> stops_;
  ChatStyle chat_ = ChatStyle::None;
};

// Loads a tokenizer from a file: tokenizer.bin (llama2.c), tokenizer.model (tiktoken), tokenizer.json (HF)
// or a .gguf model file carrying its vocabulary. Throws Error naming the file on bad input.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Finds the tokenizer that belongs to a model path (next to it, or inside it for GGUF); "" when none.
std::string find_tokenizer_for(const std::string& model_path, int vocab_size);

}  // namespace lowbit
