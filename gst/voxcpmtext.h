// Text buffer → utterance text: UTF-8 validation, pango-markup stripping, trimming. No GStreamer.
#pragma once

#include <cstddef>
#include <string>

namespace gstvoxcpm {

// Fills `out` with the speakable text of a buffer's bytes: trailing NULs dropped, markup tags
// removed and entities decoded when `pango_markup`, surrounding whitespace trimmed (may leave it
// empty). False (and `problem` set) when the bytes are not valid UTF-8.
bool clean_text(const char* data, size_t size, bool pango_markup, std::string* out, std::string* problem);

// Pango markup → plain text: <tags> removed; &amp; &lt; &gt; &quot; &apos; &#N; &#xH; decoded;
// anything malformed is kept as written.
std::string strip_pango_markup(const std::string& markup);

}  // namespace gstvoxcpm
