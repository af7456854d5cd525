#include "voxcpmtext.h"

#include <glib.h>

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
  const size_t semi = m.find(';', i);
  if (semi == std::string::npos || semi - i > 12) return 0;
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
    if (*end || c == 0 || !g_unichar_validate(static_cast<gunichar>(c))) return 0;
    append_utf8(out, static_cast<gunichar>(c));
    return semi - i + 1;
  }
  return 0;
}

}  // namespace

std::string strip_pango_markup(const std::string& m) {
  std::string out;
  out.reserve(m.size());
  for (size_t i = 0; i < m.size();) {
    if (m[i] == '<') {
      const size_t close = m.find('>', i);
      if (close != std::string::npos) {
        i = close + 1;
        continue;
      }
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

bool clean_text(const char* data, size_t size, bool pango_markup, std::string* out, std::string* problem) {
  while (size > 0 && data[size - 1] == '\0') --size;
  const char* bad = nullptr;
  if (!g_utf8_validate(data, static_cast<gssize>(size), &bad)) {
    *problem = "invalid UTF-8 at byte " + std::to_string(bad - data) + " of " + std::to_string(size);
    return false;
  }
  std::string text(data, size);
  if (pango_markup) text = strip_pango_markup(text);
  const char* ws = " \t\r\n\v\f";
  const size_t a = text.find_first_not_of(ws);
  *out = a == std::string::npos ? std::string() : text.substr(a, text.find_last_not_of(ws) - a + 1);
  return true;
}

}  // namespace gstvoxcpm
