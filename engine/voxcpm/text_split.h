// Long-text segmentation: cuts a text that is over the model's token budget into pieces that each
// fit, at the strongest boundary available (sentence, clause, word, CJK character, code point), so
// they can be synthesized one after another. Plain C++, no libtorch: tokens are counted by a callback.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace voxcpm {

// Splits `text` into segments of at most `max_tokens` tokens each, as counted by `count_tokens`.
//
// A non-blank text that fits is returned whole and byte-identical (one segment). A blank text gives
// no segments. Otherwise, each level is tried only for a piece the level above could not fit:
//   1. sentences: after . ! ? ; … ⋯ and 。！？；｡‼⁇⁈⁉ (runs of them, plus adjacent closing quotes and
//      brackets: `He said "Hi."`, 「你好。」), and at line breaks. The ASCII ones, … ⋯ and ． end a
//      sentence only before whitespace, the end, or a CJK/kana/hangul character (so 3.14, e.g. and
//      URLs stay whole); a lone '.' not after a single letter other than I (J. K. Rowling) nor after
//      Mr/Mrs/Ms/Dr/Prof/St/Jr/Sr/vs/Mt/Fig/Vol.
//   2. clauses: after , : (same condition as above), ，、：､ and the dashes — ― ‒ – (not between digits).
//   3. words: at whitespace.
//   4. inside a word, next to a CJK/kana/hangul character (each such character is a word), never
//      right after an opening bracket or right before punctuation.
//   5. inside a word, after ASCII punctuation such as / . - _ ? & = (URLs, paths).
//   6. at code point boundaries, not before a combining mark, variation selector or ZWJ, nor after a ZWJ.
//   7. at any code point boundary (never inside a UTF-8 sequence).
// Consecutive pieces of one level are packed greedily into the longest run that fits; a piece that
// alone is over the budget goes to the next level. Every segment is a substring of `text` with
// leading and trailing whitespace removed, in order, and only whitespace lies between consecutive
// segments: no non-whitespace character is lost or duplicated. No segment is empty or blank.
//
// `count_tokens` is called on exactly the strings it judges (trimmed substrings, raw whitespace
// included: a caller that normalizes whitespace before synthesis should do the same when counting),
// and every segment returned was counted at most `max_tokens`. Runs are found by galloping, so the
// characters passed to `count_tokens` add up to O(n log n) for an n-character text.
//
// Throws voxcpm::Error for invalid UTF-8 (naming the byte offset), max_tokens == 0, an empty
// callback, or a single character that alone counts more than max_tokens.
std::vector<std::string> split_text(const std::string& text, size_t max_tokens,
                                    const std::function<size_t(const std::string&)>& count_tokens);

}  // namespace voxcpm
