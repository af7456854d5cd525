// Long-text segmentation (see text_split.h). The text is decoded once into code points; every piece is
// a range of character indices, and a segment is the range's text minus surrounding whitespace.
#include "voxcpm/text_split.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>

#include "voxcpm/error.h"

namespace voxcpm {
namespace {

struct Char {
  uint32_t cp;
  size_t off;  // byte offset in the text
};

// Decodes well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points above U+10FFFF).
// The result has a sentinel entry (cp 0) at the end whose offset is text.size().
std::vector<Char> decode(const std::string& s) {
  std::vector<Char> out;
  out.reserve(s.size() + 1);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = p[i];
    size_t len = 0;
    uint32_t v = 0, min = 0;
    if (c < 0x80) {
      len = 1, v = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, v = c & 0x07, min = 0x10000;
    }
    bool ok = len != 0 && len <= s.size() - i;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      v = (v << 6) | (p[i + k] & 0x3F);
    }
    ok = ok && v >= min && v <= 0x10FFFF && !(v >= 0xD800 && v <= 0xDFFF);
    if (!ok) throw Error("split_text: invalid UTF-8 in text at byte offset " + std::to_string(i));
    out.push_back({v, i});
    i += len;
  }
  out.push_back({0, s.size()});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Character classes

bool in(uint32_t c, uint32_t lo, uint32_t hi) { return c >= lo && c <= hi; }

bool one_of(uint32_t c, std::initializer_list<uint32_t> set) {
  return std::find(set.begin(), set.end(), c) != set.end();
}

// Python str.isspace(): the whitespace the synthesizer collapses (spec §5.1).
bool is_space(uint32_t c) {
  return in(c, 0x09, 0x0D) || in(c, 0x1C, 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 || in(c, 0x2000, 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_line_break(uint32_t c) {
  return in(c, 0x0A, 0x0D) || in(c, 0x1C, 0x1E) || c == 0x85 || c == 0x2028 || c == 0x2029;
}

// Scripts written without spaces, where each character is a word: Han, kana, hangul.
bool is_cjk(uint32_t c) {
  return in(c, 0x3005, 0x3007) || in(c, 0x3021, 0x3029) || in(c, 0x3040, 0x30FF) || in(c, 0x31F0, 0x31FF) ||
         in(c, 0x3400, 0x4DBF) || in(c, 0x4E00, 0x9FFF) || in(c, 0xF900, 0xFAFF) || in(c, 0xFF66, 0xFF9F) ||
         in(c, 0x1100, 0x11FF) || in(c, 0x3130, 0x318F) || in(c, 0xA960, 0xA97F) || in(c, 0xAC00, 0xD7FF) ||
         in(c, 0x1B000, 0x1B16F) || in(c, 0x20000, 0x3134F);
}

bool is_ascii_letter(uint32_t c) { return in(c, 'a', 'z') || in(c, 'A', 'Z'); }

// Sentence ends that cut wherever they stand.
bool is_strong_terminator(uint32_t c) {
  return one_of(c, {0x3002, 0xFF01, 0xFF1F, 0xFF1B, 0xFF61, 0x203C, 0x2047, 0x2048, 0x2049, 0xFE52, 0xFE56,
                    0xFE57, 0xFE54});
}
// Sentence ends that also occur inside numbers, abbreviations and URLs (3.14, e.g., a.com): they cut
// only before whitespace, the end, or a CJK character.
bool is_weak_terminator(uint32_t c) { return one_of(c, {'.', '!', '?', ';', 0x2026, 0x22EF, 0xFF0E}); }
bool is_terminator(uint32_t c) { return is_weak_terminator(c) || is_strong_terminator(c); }

bool is_closer(uint32_t c) {
  return one_of(c, {'"', '\'', ')', ']', '}', 0x201D, 0x2019, 0x00BB, 0x203A, 0x300D, 0x300F, 0xFF09, 0xFF3D,
                    0xFF5D, 0x3011, 0x300B, 0x3009, 0x3015, 0x3017, 0x3019, 0x301B, 0xFF02, 0xFF07, 0x301E,
                    0x301F, 0xFE42, 0xFE44});
}
// ASCII quotes open as often as they close.
bool is_opener(uint32_t c) {
  return one_of(c, {'"', '\'', '(', '[', '{', '<', 0x201C, 0x2018, 0x00AB, 0x2039, 0x300C, 0x300E, 0xFF08,
                    0xFF3B, 0xFF5B, 0x3010, 0x300A, 0x3008, 0x3014, 0x3016, 0x3018, 0x301A, 0x301D, 0xFE41,
                    0xFE43});
}

bool is_weak_clause_mark(uint32_t c) { return c == ',' || c == ':'; }
bool is_strong_clause_mark(uint32_t c) { return one_of(c, {0xFF0C, 0x3001, 0xFF1A, 0xFF64, 0xFE50, 0xFE51, 0xFE55}); }
bool is_dash(uint32_t c) { return one_of(c, {0x2014, 0x2015, 0x2012, 0x2013, 0x2E3A, 0x2E3B}); }
bool is_clause_mark(uint32_t c) { return is_weak_clause_mark(c) || is_strong_clause_mark(c) || is_dash(c); }

// Characters that attach to the one before: combining marks (a common subset), variation selectors,
// ZWNJ/ZWJ, emoji skin tones and tags, kana voicing marks.
bool is_attaching(uint32_t c) {
  return in(c, 0x0300, 0x036F) || in(c, 0x0483, 0x0489) || in(c, 0x0591, 0x05C7) || in(c, 0x0610, 0x061A) ||
         in(c, 0x064B, 0x065F) || in(c, 0x0900, 0x0903) || in(c, 0x093A, 0x094F) || in(c, 0x0E31, 0x0E3A) ||
         in(c, 0x0E47, 0x0E4E) || in(c, 0x1AB0, 0x1AFF) || in(c, 0x1DC0, 0x1DFF) || in(c, 0x200C, 0x200D) ||
         in(c, 0x20D0, 0x20FF) || in(c, 0x3099, 0x309A) || in(c, 0xFE00, 0xFE0F) || in(c, 0xFE20, 0xFE2F) ||
         in(c, 0x1F3FB, 0x1F3FF) || in(c, 0xE0020, 0xE007F) || in(c, 0xE0100, 0xE01EF);
}

// ---------------------------------------------------------------------------------------------

class Splitter {
 public:
  Splitter(const std::string& text, size_t max_tokens, const std::function<size_t(const std::string&)>& count)
      : text_(text), c_(decode(text)), n_(c_.size() - 1), max_(max_tokens), count_(count) {}

  std::vector<std::string> run() {
    size_t b = 0, e = n_;
    trim(b, e);
    if (b == e) return {};
    if (count_(text_) <= max_) return {text_};
    pack(0, n_, 0);
    return std::move(out_);
  }

 private:
  static constexpr int kLevels = 7;

  uint32_t cp(size_t i) const { return c_[i].cp; }  // i == n_ gives the sentinel 0
  bool space(size_t i) const { return i < n_ && is_space(cp(i)); }

  void trim(size_t& b, size_t& e) const {
    while (b < e && is_space(cp(b))) ++b;
    while (e > b && is_space(cp(e - 1))) --e;
  }
  std::string slice(size_t b, size_t e) const { return text_.substr(c_[b].off, c_[e].off - c_[b].off); }

  // Tokens of the trimmed range (0 for a blank one, without asking the callback).
  size_t tokens(size_t b, size_t e) const {
    trim(b, e);
    return b == e ? 0 : count_(slice(b, e));
  }

  void emit(size_t b, size_t e) {
    trim(b, e);
    if (b < e) out_.push_back(slice(b, e));
  }

  size_t skip_space(size_t i, size_t e) const {
    while (i < e && is_space(cp(i))) ++i;
    return i;
  }

  // After a weak mark ending at j: whitespace, the end of the text, or a CJK character.
  bool weak_cut_ok(size_t j) const { return j >= n_ || is_space(cp(j)) || is_cjk(cp(j)); }

  // A '.' at i that follows an initial (J. K.) or a common title abbreviation does not end a sentence.
  bool abbreviation_dot(size_t i) const {
    size_t w = i;
    while (w > 0 && is_ascii_letter(cp(w - 1))) --w;
    size_t len = i - w;
    if (len == 0 || len > 4) return false;
    std::string word;
    for (size_t k = w; k < i; ++k) word.push_back(static_cast<char>(cp(k)));
    if (len == 1) return word != "I";
    for (const char* a : {"Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "vs", "Mt", "Fig", "Vol"})
      if (word == a) return true;
    return false;
  }

  // Cut positions of one level inside [b, e): unit starts after b, strictly increasing.
  std::vector<size_t> cuts(int level, size_t b, size_t e) const {
    std::vector<size_t> out;
    auto add = [&](size_t p) {
      if (p > b && p < e && (out.empty() || p > out.back())) out.push_back(p);
    };
    switch (level) {
      case 0:  // sentences
        for (size_t i = b; i < e;) {
          uint32_t c = cp(i);
          if (is_line_break(c)) {
            i = skip_space(i, e);
            add(i);
          } else if (is_terminator(c)) {
            bool strong = false;
            size_t j = i;  // past the run of marks and closing quotes/brackets
            for (; j < e && (is_terminator(cp(j)) || is_closer(cp(j))); ++j)
              strong = strong || is_strong_terminator(cp(j));
            bool single_dot = c == '.' && !is_terminator(cp(i + 1));
            if (strong || (weak_cut_ok(j) && !(single_dot && abbreviation_dot(i)))) add(skip_space(j, e));
            i = j;
          } else {
            ++i;
          }
        }
        break;
      case 1:  // clauses
        for (size_t i = b; i < e;) {
          uint32_t c = cp(i);
          if (!is_clause_mark(c)) {
            ++i;
            continue;
          }
          bool strong = false, dash = false;
          size_t j = i;
          while (j < e && (is_clause_mark(cp(j)) || is_closer(cp(j)))) {
            strong = strong || is_strong_clause_mark(cp(j));
            dash = dash || is_dash(cp(j));
            ++j;
          }
          bool ok = strong || (dash && !(i > 0 && in(cp(i - 1), '0', '9') && in(cp(j), '0', '9'))) || weak_cut_ok(j);
          if (ok) add(skip_space(j, e));
          i = j;
        }
        break;
      case 2:  // words
        for (size_t i = b + 1; i < e; ++i)
          if (is_space(cp(i - 1)) && !is_space(cp(i))) add(i);
        break;
      case 3:  // next to CJK characters
        for (size_t i = b + 1; i < e; ++i) {
          uint32_t l = cp(i - 1), r = cp(i);
          if ((is_cjk(l) || is_cjk(r)) && !is_space(r) && !is_opener(l) && !is_closer(r) && !is_terminator(r) &&
              !is_clause_mark(r) && !is_attaching(r))
            add(i);
        }
        break;
      case 4:  // after ASCII punctuation inside a word (URLs, paths)
        for (size_t i = b + 1; i < e; ++i) {
          uint32_t l = cp(i - 1), r = cp(i);
          bool l_punct = l < 0x80 && std::ispunct(static_cast<int>(l)) && !is_opener(l);
          bool r_punct = r < 0x80 && std::ispunct(static_cast<int>(r));
          if (l_punct && !r_punct && !is_space(r) && !is_attaching(r)) add(i);
        }
        break;
      case 5:  // code points, keeping attached marks with their base
        for (size_t i = b + 1; i < e; ++i)
          if (!is_attaching(cp(i)) && cp(i - 1) != 0x200D) add(i);
        break;
      default:  // any code point boundary
        for (size_t i = b + 1; i < e; ++i) add(i);
        break;
    }
    return out;
  }

  // Largest n in [1, m] with fits(n), or 0 if none; starts at `guess` and gallops from there, so a
  // good guess costs O(log |answer - guess|) calls. Assumes fits is monotone (true below, false above).
  template <class F>
  static size_t longest_fit(size_t m, size_t guess, F&& fits) {
    size_t g = std::clamp<size_t>(guess, 1, m);
    size_t lo, hi;  // fits(lo) (lo 0: none), !fits(hi) (hi m + 1: not probed)
    if (fits(g)) {
      lo = g, hi = m + 1;
      for (size_t d = 1; lo < m; d *= 2) {
        size_t t = std::min(m, g + d);
        if (!fits(t)) {
          hi = t;
          break;
        }
        lo = t;
      }
    } else {
      lo = 0, hi = g;
      for (size_t d = 1; hi > 1; d *= 2) {
        size_t t = d < g ? g - d : 1;
        if (fits(t)) {
          lo = t;
          break;
        }
        hi = t;
      }
    }
    while (hi - lo > 1) {
      size_t mid = lo + (hi - lo) / 2;
      if (fits(mid)) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  // Splits [b, e), known to be over the budget, at `level` and packs its units greedily; a unit that
  // alone is over goes one level down.
  void pack(size_t b, size_t e, int level) {
    std::vector<size_t> bounds = cuts(level, b, e);
    if (bounds.empty()) {  // one unit: nothing to cut at this level
      if (level + 1 < kLevels) return pack(b, e, level + 1);
      char buf[16];
      std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp(b)));
      throw Error("split_text: the character " + std::string(buf) + " at byte offset " + std::to_string(c_[b].off) +
                  " alone counts " + std::to_string(tokens(b, e)) + " tokens, over max_tokens " +
                  std::to_string(max_));
    }
    bounds.insert(bounds.begin(), b);
    bounds.push_back(e);
    const size_t units = bounds.size() - 1;
    size_t last_chars = 0;  // length of the previous segment: the next one is probably alike
    for (size_t i = 0; i < units;) {
      size_t guess = 1;
      while (i + guess < units && bounds[i + guess] - bounds[i] < last_chars) ++guess;
      size_t n = longest_fit(units - i, guess, [&](size_t k) { return tokens(bounds[i], bounds[i + k]) <= max_; });
      if (n == 0) {
        pack(bounds[i], bounds[i + 1], level + 1);
        ++i;
        continue;
      }
      emit(bounds[i], bounds[i + n]);
      last_chars = bounds[i + n] - bounds[i];
      i += n;
    }
  }

  const std::string& text_;
  const std::vector<Char> c_;
  const size_t n_;  // characters, without the sentinel
  const size_t max_;
  const std::function<size_t(const std::string&)>& count_;
  std::vector<std::string> out_;
};

}  // namespace

std::vector<std::string> split_text(const std::string& text, size_t max_tokens,
                                    const std::function<size_t(const std::string&)>& count_tokens) {
  if (max_tokens == 0) throw Error("split_text: max_tokens must be at least 1");
  if (!count_tokens) throw Error("split_text: count_tokens is empty");
  return Splitter(text, max_tokens, count_tokens).run();
}

}  // namespace voxcpm
