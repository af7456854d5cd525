// VoxCPM's text tokenizer: the Hugging Face BPE of tokenizer.json (as LlamaTokenizerFast runs it)
// followed by VoxCPM's multi-character CJK split (spec §5.2). Plain C++, no libtorch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace voxcpm {

class Tokenizer {
 public:
  // Reads <model_dir>/tokenizer.json (required) and the added_tokens_decoder of
  // <model_dir>/tokenizer_config.json (optional), like transformers does: a config token whose id is
  // not yet an added token is added by content (its vocab id when the content is in the vocab, else
  // the next free id after the largest one). Throws voxcpm::Error naming the file and field.
  static Tokenizer load(const std::string& model_dir);

  // Raw HF tokens of `text` (tokenizer.tokenize(): no BOS/EOS), and their ids.
  std::vector<std::string> tokenize(const std::string& text) const;
  std::vector<int64_t> raw_ids(const std::string& text) const;
  // What VoxCPM feeds its model (spec §5.2): tokenize, split multi-char CJK tokens into characters
  // (dropping "▁"), convert_tokens_to_ids. No BOS. §5.1 whitespace rules are NOT applied here.
  std::vector<int64_t> encode(const std::string& text) const;
  // All three throw voxcpm::Error on invalid UTF-8, naming the byte offset.

  // Token string of an id (added tokens first, like HF); throws voxcpm::Error for an unknown id.
  std::string id_to_token(int64_t id) const;
  // Id of a token string (added tokens first, then the vocab); -1 if neither has it.
  int64_t token_to_id(const std::string& token) const;
  // Largest id + 1 over the vocab and the added tokens.
  int64_t vocab_size() const;
  // The set M of §5.2 (vocab strings of >= 2 chars, all in U+4E00..U+9FFF), sorted by bytes.
  std::vector<std::string> multichar_cjk_tokens() const;

  // Spec §5.1: "\n" → " ", then every run of Unicode whitespace (Python re `\s`) → one " ". No strip.
  static std::string normalize_whitespace(const std::string& text);
  // Python `not text.strip()`: true when empty or all characters are whitespace (str.isspace).
  static bool is_blank(const std::string& text);

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable after load: copies share it, calls are thread-safe
};

}  // namespace voxcpm
