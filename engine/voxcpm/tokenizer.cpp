// Port of what Hugging Face `tokenizers` does with VoxCPM's tokenizer.json (added-token split,
// normalizer, BPE with byte fallback) plus transformers' tokenizer_config added tokens and VoxCPM's
// multi-char CJK split (spec §1.4, §5.1, §5.2).
#include "voxcpm/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "voxcpm/error.h"

namespace voxcpm {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF) and its code point; 0 if the bytes there are not one.
size_t utf8_char(const std::string& s, size_t i, uint32_t* cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  unsigned char c = p[i];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, v = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, v = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (len > s.size() - i) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((p[i + k] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i + k] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

void check_utf8(const std::string& s, const char* what) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_char(s, i, &cp);
    if (n == 0)
      throw Error(std::string("Tokenizer: invalid UTF-8 in ") + what + " at byte offset " + std::to_string(i));
    i += n;
  }
}

// Calls f(code point, byte offset, byte length) for each character of a valid UTF-8 string.
template <class F>
void for_each_char(const std::string& s, F&& f) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_char(s, i, &cp);
    if (n == 0) n = 1, cp = 0xFFFD;  // unreachable for checked input; never loop forever
    f(cp, i, n);
    i += n;
  }
}

// Python str.isspace() == re `\s` on str (checked against CPython 3.11 for all code points).
bool is_py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// ---------------------------------------------------------------------------------------------
// Reading JSON with errors that name the file and field

[[noreturn]] void fail(const std::string& file, const std::string& field, const std::string& msg) {
  throw Error(file + ": field '" + field + "': " + msg);
}

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("cannot read " + path);
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

// Optional member: nullptr when absent or null.
const json* member(const json& obj, const char* key) {
  auto it = obj.find(key);
  return (it == obj.end() || it->is_null()) ? nullptr : &*it;
}

bool get_bool(const json& obj, const char* key, bool dflt, const std::string& file, const std::string& field) {
  const json* v = member(obj, key);
  if (!v) return dflt;
  if (!v->is_boolean()) fail(file, field + "." + key, "expected true or false");
  return v->get<bool>();
}

std::string get_string(const json& obj, const char* key, const std::string& file, const std::string& field) {
  const json* v = member(obj, key);
  if (!v) fail(file, field + "." + key, "missing");
  if (!v->is_string()) fail(file, field + "." + key, "expected a string");
  return v->get<std::string>();
}

// Token ids must fit the id tables; anything this large is a broken file, not a tokenizer.
constexpr int64_t kMaxId = (int64_t{1} << 24) - 1;

int32_t get_id(const json& v, const std::string& file, const std::string& field) {
  if (!v.is_number_integer()) fail(file, field, "expected a non-negative integer id");
  int64_t id = v.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), kMaxId + 1))
                                      : v.get<int64_t>();
  if (id < 0 || id > kMaxId) fail(file, field, "id " + std::to_string(id) + " out of range");
  return static_cast<int32_t>(id);
}

// ---------------------------------------------------------------------------------------------
// Normalizers (the tokenizers types this tokenizer.json uses)

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prefix_(std::move(p)) {}
  void apply(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix_);  // tokenizers leaves empty strings alone
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::string& s) const override {  // non-overlapping, left to right
    size_t pos = s.find(pattern_);
    if (pos == std::string::npos) return;
    std::string out;
    out.reserve(s.size() + s.size() / 2);
    size_t from = 0;
    for (; pos != std::string::npos; pos = s.find(pattern_, from)) {
      out.append(s, from, pos - from).append(content_);
      from = pos + pattern_.size();
    }
    out.append(s, from, std::string::npos);
    s.swap(out);
  }

 private:
  std::string pattern_, content_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void apply(std::string& s) const override {
    for (const auto& p : parts_) p->apply(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const std::string& file, const std::string& field) {
  if (!j.is_object()) fail(file, field, "expected an object or null");
  std::string type = get_string(j, "type", file, field);
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(get_string(j, "prepend", file, field));
  }
  if (type == "Replace") {
    const json* pat = member(j, "pattern");
    if (!pat || !pat->is_object()) fail(file, field + ".pattern", "expected an object");
    const json* str = member(*pat, "String");
    if (!str) fail(file, field + ".pattern", "only {\"String\": ...} patterns are supported (no Regex)");
    if (!str->is_string() || str->get<std::string>().empty())
      fail(file, field + ".pattern.String", "expected a non-empty string");
    return std::make_unique<ReplaceNormalizer>(str->get<std::string>(), get_string(j, "content", file, field));
  }
  if (type == "Sequence") {
    const json* list = member(j, "normalizers");
    if (!list || !list->is_array()) fail(file, field + ".normalizers", "expected an array");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list->size(); ++i)
      parts.push_back(parse_normalizer((*list)[i], file, field + ".normalizers[" + std::to_string(i) + "]"));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  fail(file, field + ".type", "unsupported normalizer type '" + type + "' (supported: Prepend, Replace, Sequence)");
}

// ---------------------------------------------------------------------------------------------
// Added tokens: byte trie giving the longest token that starts at a position

class TokenMatcher {
 public:
  void add(const std::string& pattern, int32_t value) {
    int32_t node = 0;
    for (unsigned char c : pattern) {
      auto it = nodes_[node].next.find(c);
      if (it == nodes_[node].next.end()) {
        nodes_[node].next.emplace(c, static_cast<int32_t>(nodes_.size()));
        node = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
      } else {
        node = it->second;
      }
    }
    nodes_[node].value = value;
  }
  bool empty() const { return nodes_.size() == 1; }
  // Byte length of the longest pattern starting at s[i] (0 if none); its value in *value.
  size_t longest_at(const std::string& s, size_t i, int32_t* value) const {
    size_t best = 0;
    int32_t node = 0;
    for (size_t k = i; k < s.size(); ++k) {
      auto it = nodes_[node].next.find(static_cast<unsigned char>(s[k]));
      if (it == nodes_[node].next.end()) break;
      node = it->second;
      if (nodes_[node].value >= 0) best = k + 1 - i, *value = nodes_[node].value;
    }
    return best;
  }
  // Leftmost-longest split (aho-corasick LeftmostLongest): calls text(begin, end) for the text
  // between matches and match(value) for each match, in order.
  template <class Text, class Match>
  void split(const std::string& s, Text&& text, Match&& match) const {
    size_t start = 0;
    int32_t value = -1;
    for (size_t i = 0; i < s.size();) {
      size_t n = empty() ? 0 : longest_at(s, i, &value);
      if (n == 0) {
        ++i;
        continue;
      }
      if (i > start) text(start, i);
      match(value);
      i += n;
      start = i;
    }
    if (start < s.size()) text(start, s.size());
  }

 private:
  struct Node {
    std::map<unsigned char, int32_t> next;
    int32_t value = -1;
  };
  std::vector<Node> nodes_{1};
};

struct AddedToken {
  std::string content;
  int32_t id;
  bool normalized;  // matched on normalized text (content normalized too) instead of raw text
};

// ---------------------------------------------------------------------------------------------
// BPE model

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Bpe {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> vocab_r;  // by id; holes are empty with has_id false
  std::vector<bool> has_id;
  std::unordered_map<uint32_t, int32_t> char_ids;  // vocab entries that are one code point
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) → (rank, merged id)
  std::array<int32_t, 256> byte_ids{};                               // <0xXX> tokens, -1 if absent
  bool has_unk = false;
  std::string unk_token;
  int32_t unk_id = -1;  // -1: unk_token not in the vocab (an error only if an unk is needed)
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;

  // tokenizers' BPE::merge_word + Word::merge_all on one word.
  void encode_word(const std::string& w, std::vector<int32_t>& out) const {
    if (w.empty()) return;
    if (w.size() > static_cast<size_t>(INT32_MAX)) throw Error("Tokenizer: text segment longer than 2 GiB");
    if (ignore_merges) {
      auto it = vocab.find(w);
      if (it != vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
    struct Sym {
      int32_t id, prev, next, len;  // len 0: merged into its left neighbour
    };
    std::vector<Sym> syms;
    syms.reserve(w.size());
    auto add = [&](int32_t id, size_t len) {
      int32_t idx = static_cast<int32_t>(syms.size());
      if (idx > 0) syms.back().next = idx;
      syms.push_back({id, idx - 1, -1, static_cast<int32_t>(len)});
    };
    int32_t unk_len = 0;  // pending (fused) unk, flushed before the next vocab character
    for_each_char(w, [&](uint32_t cp, size_t off, size_t len) {
      auto it = char_ids.find(cp);
      if (it != char_ids.end()) {
        if (unk_len) add(unk_id, unk_len), unk_len = 0;
        add(it->second, len);
        return;
      }
      if (byte_fallback) {
        bool all = true;
        for (size_t k = 0; k < len; ++k) all = all && byte_ids[static_cast<unsigned char>(w[off + k])] >= 0;
        if (all) {  // like tokenizers, a pending unk is not flushed here
          for (size_t k = 0; k < len; ++k) add(byte_ids[static_cast<unsigned char>(w[off + k])], 1);
          return;
        }
      }
      if (!has_unk) return;  // no unk token: the character is dropped
      if (unk_id < 0) throw Error("Tokenizer: unk_token '" + unk_token + "' is not in the vocab");
      if (unk_len && !fuse_unk) add(unk_id, unk_len), unk_len = 0;
      unk_len += static_cast<int32_t>(len);
    });
    if (unk_len) add(unk_id, unk_len);

    // Lowest rank first, then leftmost; stale queue entries are skipped when popped.
    struct Cand {
      int32_t rank, pos, new_id;
    };
    auto later = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Cand, std::vector<Cand>, decltype(later)> queue(later);
    auto find = [&](int32_t a, int32_t b) -> const std::pair<int32_t, int32_t>* {
      auto it = merges.find(pair_key(a, b));
      return it == merges.end() ? nullptr : &it->second;
    };
    for (size_t i = 0; i + 1 < syms.size(); ++i)
      if (auto m = find(syms[i].id, syms[i + 1].id)) queue.push({m->first, static_cast<int32_t>(i), m->second});
    while (!queue.empty()) {
      Cand top = queue.top();
      queue.pop();
      Sym& s = syms[top.pos];
      if (s.len == 0 || s.next < 0) continue;
      const Sym right = syms[s.next];
      auto m = find(s.id, right.id);
      if (!m || m->second != top.new_id) continue;
      syms[s.next].len = 0;
      s.id = top.new_id;
      s.len += right.len;
      s.next = right.next;
      if (right.next >= 0) syms[right.next].prev = top.pos;
      if (s.prev >= 0)
        if (auto mp = find(syms[s.prev].id, s.id)) queue.push({mp->first, s.prev, mp->second});
      if (s.next >= 0)
        if (auto mn = find(s.id, syms[s.next].id)) queue.push({mn->first, top.pos, mn->second});
    }
    for (const Sym& s : syms)
      if (s.len != 0) out.push_back(s.id);
  }
};

void parse_bpe(const json& m, const std::string& file, Bpe& bpe) {
  if (!m.is_object()) fail(file, "model", "expected an object");
  const json* type = member(m, "type");
  if (!type) fail(file, "model.type", "missing");
  if (!type->is_string() || type->get<std::string>() != "BPE")
    fail(file, "model.type", "unsupported model type " + type->dump() + " (only BPE)");
  if (const json* d = member(m, "dropout"))
    if (!d->is_number() || d->get<double>() != 0.0) fail(file, "model.dropout", "BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = member(m, key))
      if (!v->is_string() || !v->get<std::string>().empty())
        fail(file, std::string("model.") + key, "not supported (must be null)");
  bpe.byte_fallback = get_bool(m, "byte_fallback", false, file, "model");
  bpe.fuse_unk = get_bool(m, "fuse_unk", false, file, "model");
  bpe.ignore_merges = get_bool(m, "ignore_merges", false, file, "model");

  const json* vocab = member(m, "vocab");
  if (!vocab) fail(file, "model.vocab", "missing");
  if (!vocab->is_object()) fail(file, "model.vocab", "expected an object {token: id}");
  bpe.vocab.reserve(vocab->size() * 2);
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    int32_t id = get_id(it.value(), file, "model.vocab[\"" + it.key() + "\"]");
    bpe.vocab.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  bpe.vocab_r.assign(static_cast<size_t>(max_id + 1), std::string());
  bpe.has_id.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [tok, id] : bpe.vocab) {
    if (bpe.has_id[id])
      fail(file, "model.vocab", "id " + std::to_string(id) + " is used by both '" + bpe.vocab_r[id] + "' and '" +
                                    tok + "'");
    bpe.vocab_r[id] = tok;
    bpe.has_id[id] = true;
    uint32_t cp;
    if (!tok.empty() && utf8_char(tok, 0, &cp) == tok.size()) bpe.char_ids.emplace(cp, id);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = bpe.vocab.find(name);
    bpe.byte_ids[b] = it == bpe.vocab.end() ? -1 : it->second;
  }
  if (const json* unk = member(m, "unk_token")) {
    if (!unk->is_string()) fail(file, "model.unk_token", "expected a string or null");
    bpe.has_unk = true;
    bpe.unk_token = unk->get<std::string>();
    auto it = bpe.vocab.find(bpe.unk_token);
    bpe.unk_id = it == bpe.vocab.end() ? -1 : it->second;
  }

  const json* merges = member(m, "merges");
  if (!merges) fail(file, "model.merges", "missing");
  if (!merges->is_array()) fail(file, "model.merges", "expected an array");
  bpe.merges.reserve(merges->size() * 2);
  auto lookup = [&](const std::string& tok, const std::string& field) {
    auto it = bpe.vocab.find(tok);
    if (it == bpe.vocab.end()) fail(file, field, "token '" + tok + "' is not in model.vocab");
    return it->second;
  };
  int32_t rank = 0;
  std::string left, right;
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& e = (*merges)[i];
    std::string field = "model.merges[" + std::to_string(i) + "]";
    if (e.is_string()) {  // legacy "a b"; tokenizers skips "#version" lines and splits on every ' '
      const std::string& s = e.get_ref<const std::string&>();
      if (s.rfind("#version", 0) == 0) continue;
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(file, field, "expected \"left right\" with exactly one space");
      left.assign(s, 0, sp);
      right.assign(s, sp + 1, std::string::npos);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      left = e[0].get<std::string>();
      right = e[1].get<std::string>();
    } else {
      fail(file, field, "expected a string \"left right\" or a pair [left, right]");
    }
    int32_t a = lookup(left, field), b = lookup(right, field), merged = lookup(left + right, field);
    bpe.merges[pair_key(a, b)] = {rank++, merged};  // a repeated pair keeps its last rank, as in tokenizers
  }
}

// Multi-char CJK set M of spec §5.2.
bool is_multichar_cjk(const std::string& tok) {
  size_t n = 0;
  bool all = true;
  for_each_char(tok, [&](uint32_t cp, size_t, size_t) {
    ++n;
    all = all && cp >= 0x4E00 && cp <= 0x9FFF;
  });
  return all && n >= 2;
}

const std::string kMetaspace = "\xE2\x96\x81";  // "▁" U+2581

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  Bpe bpe;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> added_ids;   // content → id
  std::unordered_map<int32_t, size_t> added_by_id;      // id → index in `added`
  TokenMatcher raw_matcher, normalized_matcher;         // value: index in `added`
  std::unordered_set<std::string> multichar;
  int32_t unk_id = -1;  // convert_tokens_to_ids fallback

  struct Piece {
    int32_t id;
    const std::string* token;  // owned by this Impl
  };

  // tokenizers: token_to_id checks the added vocabulary first, then the model.
  int32_t find_id(const std::string& tok) const {
    auto a = added_ids.find(tok);
    if (a != added_ids.end()) return a->second;
    auto v = bpe.vocab.find(tok);
    return v == bpe.vocab.end() ? -1 : v->second;
  }

  // transformers' AddedVocabulary.add_tokens for one token (no-op for empty or known content).
  void add_token(const std::string& content, bool normalized) {
    if (content.empty() || added_ids.count(content)) return;
    int32_t id = find_id(content);
    if (id < 0) {
      int32_t model_size = static_cast<int32_t>(bpe.vocab.size());
      int32_t max_added = -1;
      for (const auto& t : added) max_added = std::max(max_added, t.id);
      id = max_added < 0 ? model_size : (max_added >= model_size || model_size == 0 ? max_added + 1 : model_size);
    }
    added_ids[content] = id;
    added_by_id[id] = added.size();
    added.push_back({content, id, normalized});
  }

  void finish() {
    for (size_t i = 0; i < added.size(); ++i) {
      if (added[i].normalized) {
        std::string pattern = added[i].content;  // tokenizers matches normalized tokens by normalized content
        if (normalizer) normalizer->apply(pattern);
        if (!pattern.empty()) normalized_matcher.add(pattern, static_cast<int32_t>(i));
      } else {
        raw_matcher.add(added[i].content, static_cast<int32_t>(i));
      }
    }
    for (const auto& [tok, id] : bpe.vocab)
      if (is_multichar_cjk(tok)) multichar.insert(tok);
    for (const auto& t : added)
      if (is_multichar_cjk(t.content)) multichar.insert(t.content);
    auto it = bpe.has_unk ? added_ids.find(bpe.unk_token) : added_ids.end();
    unk_id = it != added_ids.end() ? it->second : bpe.unk_id;
  }

  std::vector<Piece> run(const std::string& text) const {
    check_utf8(text, "text");
    std::vector<Piece> out;
    std::vector<int32_t> ids;
    auto emit_added = [&](int32_t idx) { out.push_back({added[idx].id, &added[idx].content}); };
    raw_matcher.split(
        text,
        [&](size_t b, size_t e) {
          std::string seg = text.substr(b, e - b);
          if (normalizer) normalizer->apply(seg);
          normalized_matcher.split(
              seg,
              [&](size_t b2, size_t e2) {
                ids.clear();
                if (b2 == 0 && e2 == seg.size()) {
                  bpe.encode_word(seg, ids);
                } else {
                  bpe.encode_word(seg.substr(b2, e2 - b2), ids);
                }
                for (int32_t id : ids) out.push_back({id, &bpe.vocab_r[id]});
              },
              emit_added);
        },
        emit_added);
    return out;
  }

  int64_t convert(const std::string& tok) const {
    int32_t id = find_id(tok);
    if (id >= 0) return id;
    if (unk_id < 0) throw Error("Tokenizer: token '" + tok + "' is not in the vocab and there is no unk token");
    return unk_id;
  }
};

Tokenizer Tokenizer::load(const std::string& model_dir) {
  auto impl = std::make_shared<Impl>();
  const std::string path = model_dir + "/tokenizer.json";
  json j = read_json(path);
  try {
    if (!j.is_object()) fail(path, "(root)", "expected a JSON object");
    if (const json* n = member(j, "normalizer")) impl->normalizer = parse_normalizer(*n, path, "normalizer");
    if (const json* p = member(j, "pre_tokenizer"))
      fail(path, "pre_tokenizer", "unsupported " + p->value("type", p->dump()) + " (only null)");
    const json* model = member(j, "model");
    if (!model) fail(path, "model", "missing");
    parse_bpe(*model, path, impl->bpe);

    if (const json* list = member(j, "added_tokens")) {
      if (!list->is_array()) fail(path, "added_tokens", "expected an array");
      for (size_t i = 0; i < list->size(); ++i) {
        const json& t = (*list)[i];
        std::string field = "added_tokens[" + std::to_string(i) + "]";
        if (!t.is_object()) fail(path, field, "expected an object");
        for (const char* flag : {"lstrip", "rstrip", "single_word"})
          if (get_bool(t, flag, false, path, field)) fail(path, field + "." + flag, "true is not supported");
        bool special = get_bool(t, "special", false, path, field);
        if (const json* id = member(t, "id")) get_id(*id, path, field + ".id");  // validated; tokenizers re-derives it
        impl->add_token(get_string(t, "content", path, field), get_bool(t, "normalized", !special, path, field));
      }
    }
  } catch (const json::exception& e) {  // a type mismatch the checks above did not anticipate
    throw Error(path + ": " + e.what());
  }

  // transformers adds tokenizer_config.json's added_tokens_decoder entries whose id is not yet an
  // added token (e.g. <|audio_start|> = 101), in id order.
  const std::string cfg_path = model_dir + "/tokenizer_config.json";
  if (std::ifstream(cfg_path).good()) {
    json cfg = read_json(cfg_path);
    try {
      if (!cfg.is_object()) fail(cfg_path, "(root)", "expected a JSON object");
      if (const json* dec = member(cfg, "added_tokens_decoder")) {
        if (!dec->is_object()) fail(cfg_path, "added_tokens_decoder", "expected an object {id: token}");
        std::map<int64_t, std::pair<std::string, bool>> todo;
        for (auto it = dec->begin(); it != dec->end(); ++it) {
          std::string field = "added_tokens_decoder[\"" + it.key() + "\"]";
          char* end = nullptr;
          long long id = std::strtoll(it.key().c_str(), &end, 10);
          if (it.key().empty() || *end != '\0' || id < 0 || id > kMaxId) fail(cfg_path, field, "key is not a token id");
          const json& t = it.value();
          if (!t.is_object()) fail(cfg_path, field, "expected an object");
          for (const char* flag : {"lstrip", "rstrip", "single_word"})
            if (get_bool(t, flag, false, cfg_path, field)) fail(cfg_path, field + "." + flag, "true is not supported");
          bool special = get_bool(t, "special", false, cfg_path, field);
          todo[id] = {get_string(t, "content", cfg_path, field), get_bool(t, "normalized", !special, cfg_path, field)};
        }
        for (const auto& [id, tok] : todo)
          if (!impl->added_by_id.count(static_cast<int32_t>(id))) impl->add_token(tok.first, tok.second);
      }
    } catch (const json::exception& e) {
      throw Error(cfg_path + ": " + e.what());
    }
  }
  impl->finish();
  return Tokenizer(std::move(impl));
}

std::vector<std::string> Tokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& p : impl_->run(text)) out.push_back(*p.token);
  return out;
}

std::vector<int64_t> Tokenizer::raw_ids(const std::string& text) const {
  std::vector<int64_t> out;
  for (const auto& p : impl_->run(text)) out.push_back(p.id);
  return out;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> out;
  std::string clean;
  for (const auto& p : impl_->run(text)) {
    const std::string& tok = *p.token;
    clean.clear();
    for (size_t i = 0; i < tok.size();) {  // the token without any "▁"
      if (tok.compare(i, kMetaspace.size(), kMetaspace) == 0) {
        i += kMetaspace.size();
      } else {
        clean.push_back(tok[i++]);
      }
    }
    if (clean.size() >= 6 && impl_->multichar.count(clean)) {  // >= 2 three-byte characters
      for_each_char(clean, [&](uint32_t, size_t off, size_t len) { out.push_back(impl_->convert(clean.substr(off, len))); });
    } else {
      out.push_back(impl_->convert(tok));
    }
  }
  return out;
}

std::string Tokenizer::id_to_token(int64_t id) const {
  if (id >= 0 && id <= kMaxId) {
    auto a = impl_->added_by_id.find(static_cast<int32_t>(id));
    if (a != impl_->added_by_id.end()) return impl_->added[a->second].content;
    if (static_cast<size_t>(id) < impl_->bpe.has_id.size() && impl_->bpe.has_id[id]) return impl_->bpe.vocab_r[id];
  }
  throw Error("Tokenizer: unknown token id " + std::to_string(id));
}

int64_t Tokenizer::token_to_id(const std::string& token) const { return impl_->find_id(token); }

int64_t Tokenizer::vocab_size() const {
  int64_t n = static_cast<int64_t>(impl_->bpe.vocab_r.size());
  for (const auto& t : impl_->added) n = std::max<int64_t>(n, t.id + 1);
  return n;
}

std::vector<std::string> Tokenizer::multichar_cjk_tokens() const {
  std::vector<std::string> out(impl_->multichar.begin(), impl_->multichar.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::string Tokenizer::normalize_whitespace(const std::string& text) {
  check_utf8(text, "text");
  std::string out;
  out.reserve(text.size());
  bool in_run = false;
  for_each_char(text, [&](uint32_t cp, size_t off, size_t len) {
    if (is_py_space(cp)) {  // "\n" is whitespace too, so "\n" → " " is part of the collapse
      if (!in_run) out.push_back(' ');
      in_run = true;
    } else {
      out.append(text, off, len);
      in_run = false;
    }
  });
  return out;
}

bool Tokenizer::is_blank(const std::string& text) {
  check_utf8(text, "text");
  bool blank = true;
  for_each_char(text, [&](uint32_t cp, size_t, size_t) { blank = blank && is_py_space(cp); });
  return blank;
}

}  // namespace voxcpm
