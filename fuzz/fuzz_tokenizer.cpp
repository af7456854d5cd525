// libFuzzer target: arbitrary bytes as text through the real VoxCPM1.5 tokenizer (loaded once),
// the way the plugin feeds it: §5.1 whitespace rules, then encode(). Invalid UTF-8 must be
// rejected with voxcpm::Error and valid UTF-8 must never be; anything else is a finding, and so is
// a tokenization that loses or invents text, or yields an id outside the vocabulary.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "voxcpm/error.h"
#include "voxcpm/tokenizer.h"

namespace {

// Independent of the tokenizer's own decoder: the well-formed byte sequences of Unicode 15,
// table 3-7 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c <= 0x7F) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

// The text without " " and "▁": what the tokens must spell once "▁" (the normalizer's space
// and prefix) is ignored.
std::string without_spaces(const std::string& s) {
  static const std::string meta = "\xE2\x96\x81";
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == ' ') {
      ++i;
    } else if (s.compare(i, meta.size(), meta) == 0) {
      i += meta.size();
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// Tokens spelled out: byte-fallback tokens <0xXX> become their byte.
std::string spell(const std::vector<std::string>& tokens) {
  std::string out;
  for (const std::string& t : tokens) {
    unsigned b;
    if (t.size() == 6 && std::sscanf(t.c_str(), "<0x%2X>", &b) == 1) {
      out.push_back(static_cast<char>(b));
    } else {
      out += t;
    }
  }
  return out;
}

const voxcpm::Tokenizer& tokenizer() {
  static const voxcpm::Tokenizer tok = voxcpm::Tokenizer::load(voxcpm::fuzz::reference_models_dir() + "/VoxCPM1.5");
  return tok;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer();  // load before the first input: neither its time nor its memory belongs to one
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const voxcpm::Tokenizer& tok = tokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool valid = valid_utf8(text);
  try {
    const bool blank = voxcpm::Tokenizer::is_blank(text);
    const std::string norm = voxcpm::Tokenizer::normalize_whitespace(text);
    FUZZ_CHECK(valid, "invalid UTF-8 accepted");
    FUZZ_CHECK(blank == (norm.empty() || norm == " "), "is_blank disagrees with normalize_whitespace");

    const std::vector<std::string> tokens = tok.tokenize(norm);
    const std::vector<int64_t> raw = tok.raw_ids(norm), ids = tok.encode(norm);
    FUZZ_CHECK(raw.size() == tokens.size(), "raw_ids and tokenize disagree");
    FUZZ_CHECK(without_spaces(spell(tokens)) == without_spaces(norm), "tokens do not spell the text");
    for (int64_t id : ids) {
      FUZZ_CHECK(id >= 0 && id < tok.vocab_size(), "id outside the vocabulary");
      tok.id_to_token(id);  // throws (a finding) for an id the tokenizer does not know
    }
  } catch (const voxcpm::Error& e) {
    FUZZ_CHECK(!valid, std::string("valid UTF-8 rejected: ") + e.what());
  }
  return 0;
}
