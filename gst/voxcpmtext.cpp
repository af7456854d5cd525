#include "voxcpmtext.h"

#include <glib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace gstvoxcpm {
namespace {

void append_utf8(std::string* out, gunichar c) {
  char buf[6];
  const int n = g_unichar_to_utf8(c, buf);
  out->append(buf, n);
}

// Decodes the entity starting at markup[i] == '&'; returns its length, 0 if it is not one.
size_t decode_entity(const std::string& m, size_t i, std::string* out) {
  // Entities are short: looking further for the ';' would make a long run of '&' quadratic.
  const size_t window = std::min<size_t>(m.size() - i, 13);
  const void* found = std::memchr(m.data() + i, ';', window);
  if (!found) return 0;
  const size_t semi = static_cast<size_t>(static_cast<const char*>(found) - m.data());
  const std::string name = m.substr(i + 1, semi - i - 1);
  static const struct { const char* name; const char* text; } named[] = {
      {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", "\xc2\xa0"}};
  for (const auto& e : named)
    if (name == e.name) {
      out->append(e.text);
      return semi - i + 1;
    }
  if (name.size() >= 2 && name[0] == '#') {
    const bool hex = name[1] == 'x' || name[1] == 'X';
    const char* digits = name.c_str() + (hex ? 2 : 1);
    if (!*digits) return 0;
    char* end = nullptr;
    const unsigned long c = std::strtoul(digits, &end, hex ? 16 : 10);
    if (*end || c == 0 || c > 0x10FFFF || !g_unichar_validate(static_cast<gunichar>(c))) return 0;
    append_utf8(out, static_cast<gunichar>(c));
    return semi - i + 1;
  }
  return 0;
}

// Python's str.isspace(), which the engine's whitespace rules use: GLib's spaces plus the
// information separators U+001C..U+001F and NEL.
bool is_space(gunichar c) { return g_unichar_isspace(c) || (c >= 0x1C && c <= 0x1F) || c == 0x85; }

// C0/C1 control characters that are not whitespace (NUL..BS, SO..ESC, DEL, C1 but NEL) and the
// byte-order mark: nothing a voice can say, and the tokenizer would feed them as raw bytes.
bool is_unspeakable_control(gunichar c) {
  return (g_unichar_type(c) == G_UNICODE_CONTROL && !is_space(c)) || c == 0xFEFF;
}

}  // namespace

std::string strip_pango_markup(const std::string& m) {
  std::string out;
  out.reserve(m.size());
  bool no_more_close = false;  // no '>' after here: every later '<' is kept (linear, not quadratic)
  for (size_t i = 0; i < m.size();) {
    if (m[i] == '<' && !no_more_close) {
      const size_t close = m.find('>', i);
      if (close != std::string::npos) {
        i = close + 1;
        continue;
      }
      no_more_close = true;
    } else if (m[i] == '&') {
      if (size_t n = decode_entity(m, i, &out)) {
        i += n;
        continue;
      }
    }
    out.push_back(m[i++]);
  }
  return out;
}

std::string excerpt(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;  // not inside a character
  return text.substr(0, n) + "\xe2\x80\xa6 (" + std::to_string(text.size()) + " bytes)";
}

bool clean_text(const char* data, size_t size, bool pango_markup, std::string* out, std::string* problem) {
  out->clear();
  while (size > 0 && data[size - 1] == '\0') --size;  // C strings written with their terminator
  if (const void* nul = std::memchr(data, '\0', size)) {
    *problem = "NUL byte at byte " + std::to_string(static_cast<const char*>(nul) - data) + " of " +
               std::to_string(size);
    return false;
  }
  if (size > kMaxTextBytes) {
    *problem = std::to_string(size) + " bytes of text, more than the " + std::to_string(kMaxTextBytes) +
               " bytes one utterance may have";
    return false;
  }
  const char* bad = nullptr;
  if (!g_utf8_validate(data, static_cast<gssize>(size), &bad)) {
    *problem = "invalid UTF-8 at byte " + std::to_string(bad - data) + " of " + std::to_string(size);
    return false;
  }
  std::string text(data, size);
  if (pango_markup) text = strip_pango_markup(text);

  // Controls become spaces, surrounding whitespace goes, and a text with no letter or digit at all
  // (only punctuation, symbols, emoji: "...", "♪♪") is left empty, so it is skipped, not voiced.
  std::string clean;
  clean.reserve(text.size());
  size_t end = 0;  // clean.size() after the last non-space character
  bool speakable = false;
  for (const char* p = text.c_str(); *p;) {
    const gunichar c = g_utf8_get_char(p);
    const char* next = g_utf8_next_char(p);
    const size_t len = static_cast<size_t>(next - p);
    if (is_unspeakable_control(c) || is_space(c)) {
      if (!clean.empty()) clean.append(is_unspeakable_control(c) ? " " : std::string(p, len));
    } else {
      speakable = speakable || g_unichar_isalnum(c);
      clean.append(p, len);
      end = clean.size();
    }
    p = next;
  }
  clean.resize(end);
  if (speakable) *out = std::move(clean);
  return true;
}

}  // namespace gstvoxcpm
