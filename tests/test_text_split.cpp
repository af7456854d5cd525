// Long-text segmentation with the real VoxCPM1.5 tokenizer as the token counter: segments fit, cut at
// the strongest boundary, lose or duplicate no character, and a 20,000-character text is fast.
#include "voxcpm/text_split.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/error.h"
#include "voxcpm/tokenizer.h"

using voxcpm::split_text;
using voxcpm::Tokenizer;
using Segments = std::vector<std::string>;

namespace {

// Loaded once for the whole binary (a few hundred ms).
const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::load(voxcpm::test::reference_models_dir() + "/VoxCPM1.5");
  return tok;
}

size_t tokens(const std::string& s) { return tokenizer().encode(s).size(); }

// The real counter, plus what it was asked: the splitter must never pass blank or padded strings.
struct Counter {
  size_t calls = 0, chars = 0;
  std::function<size_t(const std::string&)> fn() {
    return [this](const std::string& s) {
      ++calls;
      chars += s.size();
      return tokens(s);
    };
  }
};

Segments split(const std::string& text, size_t max_tokens) {
  Counter c;
  return split_text(text, max_tokens, c.fn());
}

bool ascii_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Non-whitespace characters of `s`, in order (whitespace as Python's str.isspace()).
std::string non_space(const std::string& s) {
  std::string out;
  for (char c : Tokenizer::normalize_whitespace(s))
    if (c != ' ') out.push_back(c);
  return out;
}

size_t utf8_len(unsigned char lead) { return lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2; }
std::string first_char(const std::string& s) { return s.substr(0, utf8_len(s[0])); }
std::string last_char(const std::string& s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return s.substr(i);
}

// Checks the contract of split_text for `segs` of `text`; returns the byte offset of each segment.
// `whole_words`: every cut between two ASCII letters/digits must lie at whitespace.
std::vector<size_t> check_segments(const std::string& text, const Segments& segs, size_t max_tokens,
                                   bool whole_words = true) {
  std::vector<size_t> at;
  size_t pos = 0;
  for (size_t k = 0; k < segs.size(); ++k) {
    const std::string& s = segs[k];
    SCOPED_TRACE("segment " + std::to_string(k) + ": [" + s + "]");
    EXPECT_FALSE(Tokenizer::is_blank(s));
    if (s.empty()) continue;
    EXPECT_LE(tokens(s), max_tokens);
    EXPECT_FALSE(Tokenizer::is_blank(first_char(s))) << "starts with whitespace";
    EXPECT_FALSE(Tokenizer::is_blank(last_char(s))) << "ends with whitespace";
    // In order, with only whitespace in between: nothing lost, nothing duplicated.
    size_t p = text.find(s, pos);
    if (p == std::string::npos) {
      ADD_FAILURE() << "not found in the text after byte " << pos;
      return at;
    }
    std::string gap = text.substr(pos, p - pos);
    EXPECT_TRUE(gap.empty() || Tokenizer::is_blank(gap)) << "skipped [" << gap << "]";
    if (whole_words && k > 0 && gap.empty()) {
      EXPECT_FALSE(ascii_alnum(text[p - 1]) && ascii_alnum(text[p]))
          << "cut inside the word at byte " << p << ": ..." << text.substr(p >= 20 ? p - 20 : 0, 40) << "...";
    }
    at.push_back(p);
    pos = p + s.size();
  }
  std::string tail = text.substr(pos);
  EXPECT_TRUE(tail.empty() || Tokenizer::is_blank(tail)) << "lost tail [" << tail << "]";
  std::string joined;
  for (const auto& s : segs) joined += s;
  EXPECT_EQ(non_space(joined), non_space(text));
  return at;
}

// Greedy packing: no two neighbouring segments (with what lay between them) would have fit together.
void expect_greedy(const std::string& text, const Segments& segs, const std::vector<size_t>& at, size_t max_tokens) {
  ASSERT_EQ(at.size(), segs.size());
  for (size_t k = 0; k + 1 < segs.size(); ++k)
    EXPECT_GT(tokens(text.substr(at[k], at[k + 1] + segs[k + 1].size() - at[k])), max_tokens)
        << "[" << segs[k] << "] and [" << segs[k + 1] << "] fit together";
}

// Sets the budget to the largest sentence, checking that no two neighbours fit together: each
// sentence then must come back as one segment.
size_t budget_one_per_segment(const Segments& sentences) {
  size_t m = 0;
  for (const auto& s : sentences) m = std::max(m, tokens(s));
  for (size_t k = 0; k + 1 < sentences.size(); ++k)
    EXPECT_GT(tokens(sentences[k] + " " + sentences[k + 1]), m) << "test setup: pick longer sentences";
  return m;
}

std::string join(const Segments& parts, const std::string& sep) {
  std::string out;
  for (size_t k = 0; k < parts.size(); ++k) out += (k ? sep : "") + parts[k];
  return out;
}

bool ends_with_any(const std::string& s, std::initializer_list<const char*> ends) {
  for (const char* e : ends) {
    std::string t(e);
    if (s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0) return true;
  }
  return false;
}

// Deterministic pseudo-random numbers (a 64-bit LCG), so the long test input never changes.
struct Lcg {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  size_t operator()(size_t n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<size_t>((x >> 33) % n);
  }
};

size_t count_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Mixed English/Chinese paragraphs of >= n_chars characters: sentences with commas, quotes, numbers,
// abbreviations and URLs; some English sentences with no comma and some Chinese ones with no
// punctuation at all, longer than the budget, so every level of the splitter is exercised.
std::string mixed_text(size_t n_chars) {
  static const char* words[] = {"the",    "quick",   "brown",  "fox",      "jumps", "over",    "lazy",
                                "dog",    "speech",  "model",  "voice",    "sound", "streams", "quietly",
                                "across", "network", "signal", "beautiful", "river", "morning", "tokens",
                                "3.14",   "e.g.",    "Dr.",    "U.S.",     "2025",  "don't",   "well-known"};
  static const char* hanzi[] = {"今", "天", "我", "们", "去", "公", "园", "散", "步", "语", "音", "合",
                                "成", "模", "型", "非", "常", "好", "听", "的", "声", "音", "在", "河",
                                "边", "早", "上", "阳", "光", "明", "媚", "人", "工", "智", "能"};
  static const char* en_end[] = {".", "!", "?", "...", ";", "?\"", ".)"};
  static const char* zh_end[] = {"。", "！", "？", "……", "；", "。」"};
  Lcg rng;
  std::string out;
  auto english = [&](size_t n_words, bool commas) {
    std::string s = rng(5) == 0 ? "\"" : "";
    for (size_t w = 0; w < n_words; ++w) {
      std::string word = words[rng(sizeof words / sizeof *words)];
      if (w == 0) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
      s += (w ? " " : "") + word;
      if (commas && w + 1 < n_words && rng(6) == 0) s += rng(4) ? "," : ":";
    }
    if (rng(8) == 0) s += " https://example.com/a/b?c=" + std::to_string(rng(1000));
    return s + (s[0] == '"' ? ".\"" : en_end[rng(sizeof en_end / sizeof *en_end)]);
  };
  auto chinese = [&](size_t n, bool punct) {
    std::string s = rng(6) == 0 ? "「" : "";
    for (size_t i = 0; i < n; ++i) {
      s += hanzi[rng(sizeof hanzi / sizeof *hanzi)];
      if (punct && i + 1 < n && rng(7) == 0) s += rng(3) ? "，" : "、";
    }
    if (s.rfind("「", 0) == 0) return s + "。」";
    return s + zh_end[rng(sizeof zh_end / sizeof *zh_end)];
  };
  while (count_chars(out) < n_chars) {
    size_t sentences = 2 + rng(6);
    for (size_t k = 0; k < sentences; ++k) {
      switch (rng(10)) {
        case 0: out += english(60 + rng(20), false); break;   // over the budget, no clause mark
        case 1: out += chinese(90 + rng(30), false); break;   // over the budget, no punctuation
        case 2: case 3: case 4: out += chinese(8 + rng(40), true); break;
        case 5: out += "我用iPhone" + std::to_string(rng(20)) + "拍照，很好看。"; break;
        default: out += english(4 + rng(25), true); break;
      }
      out += rng(3) ? " " : "";  // Chinese sentences often follow each other without a space
    }
    out += rng(4) ? "\n" : "\n\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

TEST(SplitText, ShortTextIsReturnedWhole) {
  const std::string s = "Hello, this is the first test sentence.";
  EXPECT_EQ(split(s, 100), Segments{s});
  EXPECT_EQ(split(s, tokens(s)), Segments{s}) << "exactly at the budget still fits";
  const std::string padded = "  你好，世界！ Hi.\n";
  EXPECT_EQ(split(padded, 50), Segments{padded}) << "a text that fits is byte-identical, whitespace included";
  EXPECT_EQ(split("", 10), Segments{});
  EXPECT_EQ(split(" \n\t\u3000 ", 10), Segments{}) << "blank text gives no segment";
}

TEST(SplitText, EnglishSplitsAtSentenceEnds) {
  const Segments sentences = {
      "The quick brown fox jumps over the lazy dog near the river bank.",
      "Then the old man turned to the children and said \"Hi.\"",
      "Dr. Smith measured 3.14 meters, e.g. the length of the table!",
      "Was the model trained on public data, or on something else entirely?",
      "We stream each segment back to back; nobody hears the seams.",
  };
  const std::string text = join(sentences, "  ");
  const size_t m = budget_one_per_segment(sentences);
  Segments segs = split(text, m);
  EXPECT_EQ(segs, sentences) << "closing quotes stay with their sentence; 3.14, e.g. and Dr. do not end one";
  check_segments(text, segs, m);

  // With a larger budget consecutive sentences are packed greedily.
  std::string paragraph;
  for (int k = 0; k < 6; ++k) paragraph += join(sentences, " ") + (k % 2 ? "\n" : " ");
  for (size_t budget : {30, 45, 80}) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    segs = split(paragraph, budget);
    EXPECT_GT(segs.size(), 2u);
    auto at = check_segments(paragraph, segs, budget);
    expect_greedy(paragraph, segs, at, budget);
    for (const auto& s : segs) EXPECT_TRUE(ends_with_any(s, {".", "!", "?", ";", ".\""})) << s;
  }
}

TEST(SplitText, ChineseSplitsAtSentenceEndsThenCommas) {
  const Segments sentences = {"今天天气非常好，阳光明媚。", "我们一起去公园散步吧！", "你觉得这个周末的计划怎么样？",
                              "「你好，很高兴认识你。」", "语音合成模型的声音非常好听；"};
  const std::string text = join(sentences, "");
  const size_t m = budget_one_per_segment(sentences);
  EXPECT_EQ(split(text, m), sentences) << "the closing bracket 」 stays with its sentence";

  // A sentence over the budget is cut at ， and 、 (the cut mark stays at the end of its piece).
  const std::string long_sentence =
      "虽然今天的天气不太好，风也很大，路上的行人都很少，但是我们还是按照原来的计划去了公园、博物馆和图书馆，"
      "所以大家都非常开心。";
  const std::string text2 = "你好。" + long_sentence + "再见！";
  const size_t budget = tokens(long_sentence) / 2;
  ASSERT_GT(budget, tokens("虽然今天的天气不太好，风也很大，"));
  Segments segs = split(text2, budget);
  check_segments(text2, segs, budget);
  ASSERT_GE(segs.size(), 3u);
  EXPECT_EQ(segs.front(), "你好。") << "a long sentence is not packed with its neighbours";
  EXPECT_EQ(segs.back(), "再见！");
  for (size_t k = 1; k + 2 < segs.size(); ++k) EXPECT_TRUE(ends_with_any(segs[k], {"，", "、"})) << segs[k];
  EXPECT_TRUE(ends_with_any(segs[segs.size() - 2], {"。"}));
}

TEST(SplitText, ChineseWithoutPunctuationIsCutBetweenCharacters) {
  std::string text;
  for (int k = 0; k < 20; ++k) text += "语音合成模型我用iPhone拍照";
  const size_t budget = 25;
  Segments segs = split(text, budget);
  EXPECT_GT(segs.size(), 3u);
  check_segments(text, segs, budget);  // never inside "iPhone"
}

TEST(SplitText, MixedChineseAndEnglish) {
  const Segments sentences = {"Hello world, this is a mixed test.", "你好，世界！这是一个测试。",
                              "The model says 你好 in Chinese!", "然后它说 goodbye 了。", "OK?"};
  const std::string text = sentences[0] + sentences[1] + " " + sentences[2] + sentences[3] + "\n" + sentences[4];
  for (size_t budget : {8, 12, 20, 30}) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    Segments segs = split(text, budget);
    auto at = check_segments(text, segs, budget);
    EXPECT_GT(segs.size(), 1u);
    // "test.你好" has no space: the '.' still ends the sentence before a CJK character.
    if (budget >= 20) {
      expect_greedy(text, segs, at, budget);
      for (const auto& s : segs) EXPECT_TRUE(ends_with_any(s, {".", "。", "！", "!", "?"})) << s;
    }
  }
  const size_t m = budget_one_per_segment({"Hello world, this is a mixed test.", "你好，世界！"});
  EXPECT_EQ(split("Hello world, this is a mixed test.你好，世界！", m),
            (Segments{"Hello world, this is a mixed test.", "你好，世界！"}));
}

TEST(SplitText, NewlinesSeparateLines) {
  const Segments lines = {"First line without a full stop", "Second line, still going",
                          "第三行没有句号", "Fourth line that is the last one"};
  const std::string text = "\n" + lines[0] + "\r\n" + lines[1] + "\n\n\n" + lines[2] + " \n  " + lines[3] + "\n";
  const size_t m = budget_one_per_segment(lines);
  Segments segs = split(text, m);
  EXPECT_EQ(segs, lines);
  check_segments(text, segs, m);
}

TEST(SplitText, OnlyPunctuation) {
  EXPECT_EQ(split("...!?", 20), Segments{"...!?"});
  std::string text;
  static const char* marks[] = {".", ",", "!", "?", "。", "，", "！", "？", "…", "—", "、", "\"", "」", " "};
  Lcg rng;
  for (int k = 0; k < 2000; ++k) text += marks[rng(sizeof marks / sizeof *marks)];
  const size_t budget = 16;
  Segments segs = split(text, budget);
  EXPECT_GT(segs.size(), 10u);
  check_segments(text, segs, budget, false);
}

TEST(SplitText, EnormousWordIsCutAtCharacterBoundaries) {
  // A 5,000-character URL: cut after its punctuation, pieces back to back.
  std::string url = "https://example.com/";
  for (int k = 0; url.size() < 5000; ++k) url += "segment" + std::to_string(k) + (k % 3 ? "/" : "-x_y?q=");
  url.resize(5000);
  const std::string text = "See " + url + " for details.";
  Segments segs = split(text, 40);
  ASSERT_GT(segs.size(), 10u);
  check_segments(text, segs, 40, false);
  EXPECT_EQ(segs[0], "See") << "the word is cut from its neighbours at whitespace first";
  std::string rebuilt;
  for (size_t k = 1; k + 1 < segs.size(); ++k) rebuilt += segs[k];
  EXPECT_EQ(rebuilt, url);
  for (size_t k = 1; k + 2 < segs.size(); ++k)
    EXPECT_TRUE(ends_with_any(segs[k], {"/", "-", "_", "?", "=", ".", ":"})) << "cut inside a URL part: " << segs[k];

  // Multi-byte characters with no punctuation: cut between code points, never inside one, and never
  // between a letter and its combining accent.
  std::string accents, emoji;
  for (int k = 0; k < 1500; ++k) accents += (k % 2 ? "e\xCC\x81" : "\xC3\xA9");  // e + U+0301, é
  for (int k = 0; k < 400; ++k) emoji += "\xF0\x9F\x98\x80";                        // U+1F600
  for (const std::string& word : {accents, emoji}) {
    Segments parts = split(word, 12);
    ASSERT_GT(parts.size(), 5u);
    check_segments(word, parts, 12, false);
    EXPECT_EQ(join(parts, ""), word);
    for (const auto& p : parts) EXPECT_NE(p.rfind("\xCC\x81", 0), 0u) << "starts with a combining accent";
  }
}

TEST(SplitText, TwentyThousandMixedCharacters) {
  const std::string text = mixed_text(20000);
  ASSERT_GE(count_chars(text), 20000u);
  for (size_t budget : {40, 150}) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    Counter counter;
    auto t0 = std::chrono::steady_clock::now();
    Segments segs = split_text(text, budget, counter.fn());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ time ] %zu chars (%zu bytes), budget %zu: %zu segments in %.3f s; %zu counts over %zu bytes\n",
                count_chars(text), text.size(), budget, segs.size(), s, counter.calls, counter.chars);
    EXPECT_LT(s, 1.0) << "should take well under 1 s";
    // The characters counted grow like n log n, not n^2 (a quadratic splitter counts ~1e8 bytes here).
    EXPECT_LT(counter.chars, 12 * text.size());
    auto at = check_segments(text, segs, budget);
    size_t at_sentence_end = 0;
    for (const auto& seg : segs)
      at_sentence_end += ends_with_any(seg, {".", "!", "?", ";", "\"", ")", "。", "！", "？", "；", "」", "…"});
    EXPECT_GT(at_sentence_end * 2, segs.size()) << "most cuts should fall at sentence ends";
  }
}

TEST(SplitText, Errors) {
  auto count = [](const std::string& s) { return tokens(s); };
  for (const auto& [bad, offset] : std::vector<std::pair<std::string, size_t>>{
           {"abc\xFF", 3}, {"ab\xE4\xBD", 2}, {"\xED\xA0\x80", 0}, {"x\xC0\xAF", 1}, {"ok \xF4\x90\x80\x80", 3}}) {
    try {
      split_text(bad, 100, count);
      ADD_FAILURE() << "no voxcpm::Error for invalid UTF-8";
    } catch (const voxcpm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("invalid UTF-8"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(offset)), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(split_text("Hello.", 0, count), voxcpm::Error);
  EXPECT_THROW(split_text("Hello.", 10, nullptr), voxcpm::Error);
  // A single character that alone is over the budget cannot be segmented.
  try {
    split_text("ab 😀 cd", 1, [](const std::string& s) { return s.size(); });
    ADD_FAILURE() << "no voxcpm::Error for an oversized character";
  } catch (const voxcpm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("U+1F600 at byte offset 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_tokens 1"), std::string::npos) << e.what();
  }
}

}  // namespace
