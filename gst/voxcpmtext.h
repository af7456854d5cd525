// Text buffer → utterance text: UTF-8 validation, pango-markup stripping, control characters,
// trimming, nothing-to-say detection. No GStreamer.
#pragma once

#include <cstddef>
#include <string>

namespace gstvoxcpm {

// Most bytes one text buffer (or `text`/`speak` string) may hold: 256 KiB, about 5 hours of speech.
// An utterance's text is split into segments (tokenized many times over) before its first audio,
// and no flush can interrupt that: 256 KiB of prose takes about 1 s (2 busy cores), 1 MB about 4 s.
// Bigger texts are refused whole, so a paste cannot stall a live stream or hold its memory.
constexpr size_t kMaxTextBytes = size_t{256} << 10;

// Fills `out` with the speakable text of a buffer's bytes: trailing NULs dropped, markup tags
// removed and entities decoded when `pango_markup`, control characters (other than whitespace)
// replaced by spaces, surrounding Unicode whitespace trimmed. `out` is left empty when nothing is
// left to say: blank text, or no letter or digit at all (only punctuation, symbols, emoji).
// False (and `problem` set) when the bytes are not valid UTF-8, hold a NUL before the trailing
// ones, or are more than kMaxTextBytes.
bool clean_text(const char* data, size_t size, bool pango_markup, std::string* out, std::string* problem);

// `text` for a log or message: whole if short, else its first ~`max_bytes` (whole characters) + "…".
std::string excerpt(const std::string& text, size_t max_bytes = 160);

// Pango markup → plain text: <tags> removed; &amp; &lt; &gt; &quot; &apos; &nbsp; &#N; &#xH; decoded;
// anything malformed is kept as written. Linear in the size of the input.
std::string strip_pango_markup(const std::string& markup);

}  // namespace gstvoxcpm
