// Tokenizer parity: real VoxCPM1.5/VoxCPM2 tokenizers against ids made by Hugging Face's tokenizers,
// tiny tokenizers against the official code's tokenization.json, plus edge cases and errors.
#include "voxcpm/tokenizer.h"

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/golden.h"
#include "voxcpm/error.h"

using voxcpm::Tokenizer;
using json = nlohmann::json;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<int64_t> ids_of(const json& j) { return j.get<std::vector<int64_t>>(); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Expects `f` to throw voxcpm::Error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no voxcpm::Error thrown";
  } catch (const voxcpm::Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// ---------------------------------------------------------------------------------------------
// Real tokenizers (shared/models) vs tokenizer/<model>.jsonl

class RealTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(RealTokenizer, MatchesHuggingFaceIds) {
  const std::string model = GetParam();
  auto t0 = std::chrono::steady_clock::now();
  Tokenizer tok = Tokenizer::load(voxcpm::test::reference_models_dir() + "/" + model);
  double load_s = seconds_since(t0);
  std::printf("[ load ] %s tokenizer loaded in %.3f s\n", model.c_str(), load_s);
  EXPECT_LT(load_s, 5.0) << "loading should take well under 1 s (generous bound for a shared machine)";

  std::istringstream lines(read_text(voxcpm::test::fixtures_dir() + "/tokenizer/" + model + ".jsonl"));
  std::string line;
  int n = 0, split_differs = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json c = json::parse(line);
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: " + text);
    EXPECT_EQ(tok.raw_ids(text), ids_of(c.at("hf_ids")));
    EXPECT_EQ(tok.encode(text), ids_of(c.at("ids")));
    EXPECT_EQ(tok.tokenize(text).size(), c.at("hf_ids").size());
    if (c.at("ids") != c.at("hf_ids")) ++split_differs;
    ++n;
  }
  EXPECT_EQ(n, 156);
  EXPECT_GT(split_differs, 0) << "the corpus should exercise the multi-char CJK split";
}

TEST_P(RealTokenizer, VocabularyFacts) {
  const std::string model = GetParam();
  Tokenizer tok = Tokenizer::load(voxcpm::test::reference_models_dir() + "/" + model);
  EXPECT_EQ(tok.multichar_cjk_tokens().size(), 19400u);  // spec §5.2
  EXPECT_EQ(tok.token_to_id("▁"), 59320);
  EXPECT_EQ(tok.token_to_id("<0x0A>") >= 0, true);
  EXPECT_EQ(tok.id_to_token(73441), "<|im_start|>");
  EXPECT_EQ(tok.id_to_token(101), "<|audio_start|>");
  if (model == "VoxCPM2") {
    // tokenizer.json names 103/104 <|ref_audio_*|>, tokenizer_config.json <|audio_prompt_*|>: like
    // transformers, the config names are added by content and get new ids past the vocab.
    EXPECT_EQ(tok.id_to_token(103), "<|ref_audio_start|>");
    EXPECT_EQ(tok.token_to_id("<|audio_prompt_start|>"), 73448);
    EXPECT_EQ(tok.encode("<|audio_prompt_end|>"), (std::vector<int64_t>{73449}));
    EXPECT_EQ(tok.vocab_size(), 73450);
  } else {
    EXPECT_EQ(tok.id_to_token(103), "<|audio_prompt_start|>");
    EXPECT_EQ(tok.encode("<|audio_prompt_start|>"), (std::vector<int64_t>{103}));
    EXPECT_EQ(tok.vocab_size(), 73448);
  }
  // Spec §5.2 examples.
  EXPECT_EQ(tok.encode("你好世界 ok"), (std::vector<int64_t>{59320, 59496, 59495, 59792, 59868, 10037}));
  EXPECT_EQ(tok.encode("Hello, world."), (std::vector<int64_t>{21045, 59342, 2809, 72}));
  EXPECT_EQ(tok.tokenize("中国人民 2025年"),
            (std::vector<std::string>{"▁中国", "人民", "▁", "2", "0", "2", "5", "年"}));
  std::vector<std::string> split;
  for (int64_t id : tok.encode("中国人民 2025年")) split.push_back(tok.id_to_token(id));
  EXPECT_EQ(split, (std::vector<std::string>{"中", "国", "人", "民", "▁", "2", "0", "2", "5", "年"}));
}

TEST_P(RealTokenizer, ConfigSpecialTokensAreAddedTokens) {
  const std::string dir = voxcpm::test::reference_models_dir() + "/" + GetParam();
  Tokenizer tok = Tokenizer::load(dir);
  // Only tokenizer_config.json declares <|audio_start|>/<|audio_end|> as added tokens; they split the
  // text and every other segment is normalized (gets its own "▁") on its own.
  auto a = tok.encode("hello"), b = tok.encode("world");
  std::vector<int64_t> expected = a;
  expected.push_back(101);
  expected.insert(expected.end(), b.begin(), b.end());
  expected.push_back(102);
  EXPECT_EQ(tok.encode("hello<|audio_start|>world<|audio_end|>"), expected);
  EXPECT_EQ(tok.encode("<|im_end|>"), (std::vector<int64_t>{73440}));

  // Without tokenizer_config.json the same string is ordinary text.
  std::string tmp = voxcpm::test::make_temp_dir();
  write_text(tmp + "/tokenizer.json", read_text(dir + "/tokenizer.json"));
  Tokenizer bare = Tokenizer::load(tmp);
  EXPECT_NE(bare.encode("<|audio_start|>"), (std::vector<int64_t>{101}));
  EXPECT_EQ(bare.encode("<|im_end|>"), (std::vector<int64_t>{73440}));
}

TEST_P(RealTokenizer, LongTextIsFast) {
  Tokenizer tok = Tokenizer::load(voxcpm::test::reference_models_dir() + "/" + GetParam());
  // 20,000 characters, no added tokens: a single BPE word (no pre-tokenizer), the worst case.
  const std::string unit = "VoxCPM 流式语音合成，streaming TTS at 48 kHz! ";  // 40 characters
  std::string text;
  for (int i = 0; i < 500; ++i) text += unit;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int64_t> ids = tok.encode(text);
  double enc_s = seconds_since(t0);
  std::printf("[ perf ] encode(20000 chars) -> %zu ids in %.4f s\n", ids.size(), enc_s);
  EXPECT_LT(enc_s, 1.0);
  // Away from the ends the repeated unit encodes identically every time.
  std::vector<int64_t> one = tok.encode(unit + unit + unit);
  EXPECT_GT(ids.size(), 500 * (one.size() / 3) - 20);
  EXPECT_LT(ids.size(), 500 * (one.size() / 3) + 20);

  std::string same(20000, 'a');  // one long run: many equal-rank candidates
  t0 = std::chrono::steady_clock::now();
  ids = tok.encode(same);
  std::printf("[ perf ] encode(20000 x 'a') -> %zu ids in %.4f s\n", ids.size(), seconds_since(t0));
  EXPECT_LT(seconds_since(t0), 1.0);
}

INSTANTIATE_TEST_SUITE_P(Models, RealTokenizer, ::testing::Values("VoxCPM1.5", "VoxCPM2"));

// ---------------------------------------------------------------------------------------------
// Tiny tokenizers vs the official code (golden-<v>/tokenization.json)

class TinyTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyTokenizer, MatchesOfficialGolden) {
  const std::string v = GetParam();
  Tokenizer tok = Tokenizer::load(voxcpm::test::tiny_model_dir(v));
  json g = json::parse(read_text(voxcpm::test::fixtures_dir() + "/golden-" + v + "/tokenization.json"));
  ASSERT_EQ(g.at("cases").size(), 9u);
  for (const auto& c : g.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: " + text);
    EXPECT_EQ(tok.tokenize(text), c.at("raw_tokens").get<std::vector<std::string>>());
    EXPECT_EQ(tok.raw_ids(text), ids_of(c.at("raw_ids")));
    EXPECT_EQ(tok.encode(text), ids_of(c.at("ids")));
    std::vector<std::string> tokens;
    for (int64_t id : tok.encode(text)) tokens.push_back(tok.id_to_token(id));
    EXPECT_EQ(tokens, c.at("tokens").get<std::vector<std::string>>());
  }
  auto m = g.at("multichar_chinese_tokens").get<std::vector<std::string>>();
  std::sort(m.begin(), m.end());
  EXPECT_EQ(tok.multichar_cjk_tokens(), m);
  // Config-only special tokens of the tiny files.
  EXPECT_EQ(tok.encode("<|audio_start|>"), (std::vector<int64_t>{101}));
  EXPECT_EQ(tok.encode("<|im_start|>"), (std::vector<int64_t>{505}));
}

INSTANTIATE_TEST_SUITE_P(Versions, TinyTokenizer, ::testing::Values("v1", "v1.5", "v2"),
                         [](const auto& info) { return info.param == "v1.5" ? std::string("v1_5") : info.param; });

// ---------------------------------------------------------------------------------------------
// A hand-made tokenizer.json for the BPE rules the real files never hit

json synthetic_json(bool fuse_unk, bool byte_fallback) {
  return json::parse(R"({
    "added_tokens": [
      {"id": 11, "content": "[A]", "normalized": false, "special": true},
      {"id": 12, "content": "[A][B]", "normalized": false, "special": true},
      {"id": 13, "content": "xy", "normalized": false, "special": true},
      {"id": 14, "content": "yzz", "normalized": false, "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": )" +
                     std::string(fuse_unk ? "true" : "false") + R"(, "byte_fallback": )" +
                     std::string(byte_fallback ? "true" : "false") + R"(,
      "vocab": {"<unk>": 0, "▁": 1, "a": 2, "b": 3, "c": 4, "z": 5, "▁a": 6, "ab": 7, "abc": 8, "zz": 9,
                "<0x71>": 10},
      "merges": ["▁ a", "a b", "ab c", "z z"]}})");
}

Tokenizer load_json(const json& j) {
  std::string dir = voxcpm::test::make_temp_dir();
  write_text(dir + "/tokenizer.json", j.dump());
  return Tokenizer::load(dir);
}

TEST(SyntheticTokenizer, MergeRanksAddedTokensAndUnk) {
  Tokenizer tok = load_json(synthetic_json(true, false));
  // "▁ a" outranks "a b": ▁abc → ▁a b c, not ▁ abc.
  EXPECT_EQ(tok.tokenize("abc"), (std::vector<std::string>{"▁a", "b", "c"}));
  EXPECT_EQ(tok.raw_ids("bab"), (std::vector<int64_t>{1, 3, 7}));
  EXPECT_EQ(tok.raw_ids("babc"), (std::vector<int64_t>{1, 3, 8}));
  // Added tokens: leftmost-longest; each text segment is normalized separately.
  EXPECT_EQ(tok.raw_ids("zz[A][B]zz[A]"), (std::vector<int64_t>{1, 9, 12, 1, 9, 11}));
  EXPECT_EQ(tok.raw_ids("xyzz"), (std::vector<int64_t>{13, 1, 9}));  // leftmost "xy" beats longer "yzz"
  EXPECT_EQ(tok.raw_ids("[A]"), (std::vector<int64_t>{11}));
  EXPECT_EQ(tok.raw_ids(""), (std::vector<int64_t>{}));
  EXPECT_EQ(tok.raw_ids(" "), (std::vector<int64_t>{1, 1}));
  // Unknown characters fuse into one <unk> (no byte fallback here).
  EXPECT_EQ(tok.tokenize("qé€a"), (std::vector<std::string>{"▁", "<unk>", "a"}));
  EXPECT_EQ(tok.encode("qé€a"), (std::vector<int64_t>{1, 0, 2}));

  Tokenizer unfused = load_json(synthetic_json(false, false));
  EXPECT_EQ(unfused.raw_ids("qé€a"), (std::vector<int64_t>{1, 0, 0, 0, 2}));

  // Byte fallback when every byte token exists ('q' = <0x71>), else unk; like tokenizers, a
  // pending unk is only flushed by the next vocab character or the end of the word.
  Tokenizer bytes = load_json(synthetic_json(true, true));
  EXPECT_EQ(bytes.raw_ids("qa"), (std::vector<int64_t>{1, 10, 2}));
  EXPECT_EQ(bytes.raw_ids("éqa"), (std::vector<int64_t>{1, 10, 0, 2}));
  EXPECT_EQ(bytes.raw_ids("éq"), (std::vector<int64_t>{1, 10, 0}));
}

// ---------------------------------------------------------------------------------------------
// §5.1 whitespace rules

TEST(Whitespace, NormalizeLikePythonReS) {
  EXPECT_EQ(Tokenizer::normalize_whitespace("a\n\nb"), "a b");
  EXPECT_EQ(Tokenizer::normalize_whitespace("  a \t\u3000 b\r\n"), " a b ");  // no strip
  EXPECT_EQ(Tokenizer::normalize_whitespace("x\u00a0y\u0085z\u2028w\x1cv"), "x y z w v");
  EXPECT_EQ(Tokenizer::normalize_whitespace("\u200bzero\u200bwidth\u180e"), "\u200bzero\u200bwidth\u180e");
  EXPECT_EQ(Tokenizer::normalize_whitespace("tab\there"), "tab here");
  EXPECT_EQ(Tokenizer::normalize_whitespace("你好，\n世界"), "你好， 世界");
  EXPECT_EQ(Tokenizer::normalize_whitespace(""), "");
  EXPECT_EQ(Tokenizer::normalize_whitespace("\n"), " ");
}

TEST(Whitespace, IsBlankLikePythonStrip) {
  EXPECT_TRUE(Tokenizer::is_blank(""));
  EXPECT_TRUE(Tokenizer::is_blank(" \n\t\r\u3000\u00a0\u2009"));
  EXPECT_FALSE(Tokenizer::is_blank("\u200b"));  // zero width space is not whitespace in Python
  EXPECT_FALSE(Tokenizer::is_blank("  a  "));
  EXPECT_FALSE(Tokenizer::is_blank("。"));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(TokenizerErrors, InvalidUtf8NamesTheByteOffset) {
  Tokenizer tok = Tokenizer::load(voxcpm::test::tiny_model_dir("v2"));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"abc\xff", "byte offset 3"},          // not a lead byte
      {"ab\xc0\xaf", "byte offset 2"},       // overlong '/'
      {"\xed\xa0\x80x", "byte offset 0"},    // UTF-16 surrogate
      {"hi \xe4\xbd", "byte offset 3"},      // truncated
      {"\xf4\x90\x80\x80", "byte offset 0"}, // above U+10FFFF
      {"ok\x80", "byte offset 2"}};          // stray continuation byte
  for (const auto& [text, where] : bad) {
    expect_error([&] { tok.encode(text); }, {"UTF-8", where});
    expect_error([&] { tok.tokenize(text); }, {"UTF-8", where});
    expect_error([&] { tok.raw_ids(text); }, {"UTF-8", where});
    expect_error([&] { Tokenizer::normalize_whitespace(text); }, {"UTF-8", where});
    expect_error([&] { Tokenizer::is_blank(text); }, {"UTF-8", where});
  }
  expect_error([&] { tok.id_to_token(100000); }, {"100000"});
  EXPECT_EQ(tok.token_to_id("no such token"), -1);
}

TEST(TokenizerErrors, BadFilesNameFileAndField) {
  std::string dir = voxcpm::test::make_temp_dir();
  expect_error([&] { Tokenizer::load(dir); }, {dir + "/tokenizer.json"});
  expect_error([&] { Tokenizer::load(dir + "/missing"); }, {"tokenizer.json"});

  write_text(dir + "/tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  expect_error([&] { Tokenizer::load(dir); }, {"tokenizer.json", "invalid JSON"});
  write_text(dir + "/tokenizer.json", "\x89PNG garbage");
  expect_error([&] { Tokenizer::load(dir); }, {"tokenizer.json", "invalid JSON"});

  auto with = [&](const std::function<void(json&)>& edit, std::initializer_list<std::string> parts) {
    json j = synthetic_json(true, true);
    edit(j);
    write_text(dir + "/tokenizer.json", j.dump());
    expect_error([&] { Tokenizer::load(dir); }, parts);
  };
  with([](json& j) { j.erase("model"); }, {"tokenizer.json", "'model'", "missing"});
  with([](json& j) { j["model"]["type"] = "WordPiece"; }, {"tokenizer.json", "model.type", "WordPiece"});
  with([](json& j) { j["model"].erase("vocab"); }, {"tokenizer.json", "model.vocab", "missing"});
  with([](json& j) { j["model"]["vocab"] = json::array(); }, {"model.vocab"});
  with([](json& j) { j["model"]["vocab"]["a"] = "x"; }, {"model.vocab[\"a\"]"});
  with([](json& j) { j["model"]["vocab"]["a"] = -3; }, {"model.vocab[\"a\"]"});
  with([](json& j) { j["model"].erase("merges"); }, {"model.merges", "missing"});
  with([](json& j) { j["model"]["merges"].push_back("a b c"); }, {"model.merges[4]"});
  with([](json& j) { j["model"]["merges"].push_back("a q"); }, {"model.merges[4]", "'q'"});
  with([](json& j) { j["model"]["merges"].push_back(7); }, {"model.merges[4]"});
  with([](json& j) { j["model"]["dropout"] = 0.1; }, {"model.dropout"});
  with([](json& j) { j["normalizer"]["normalizers"][1]["type"] = "NFKC"; },
       {"tokenizer.json", "normalizer.normalizers[1].type", "NFKC"});
  with([](json& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", "\\s+"}}; },
       {"normalizer.normalizers[1].pattern"});
  with([](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }, {"pre_tokenizer", "Metaspace"});
  with([](json& j) { j["added_tokens"][0]["lstrip"] = true; }, {"added_tokens[0].lstrip"});
  with([](json& j) { j["added_tokens"][1].erase("content"); }, {"added_tokens[1].content"});

  // tokenizer_config.json is optional but must be valid when present.
  write_text(dir + "/tokenizer.json", synthetic_json(true, true).dump());
  write_text(dir + "/tokenizer_config.json", "{\"added_tokens_decoder\": {");
  expect_error([&] { Tokenizer::load(dir); }, {"tokenizer_config.json", "invalid JSON"});
  write_text(dir + "/tokenizer_config.json", R"({"added_tokens_decoder": {"x1": {"content": "<q>"}}})");
  expect_error([&] { Tokenizer::load(dir); }, {"tokenizer_config.json", "added_tokens_decoder[\"x1\"]"});
  write_text(dir + "/tokenizer_config.json", R"({"added_tokens_decoder": {"20": {"special": true}}})");
  expect_error([&] { Tokenizer::load(dir); }, {"tokenizer_config.json", "added_tokens_decoder[\"20\"].content"});
  write_text(dir + "/tokenizer_config.json",
             R"({"added_tokens_decoder": {"20": {"content": "<q>", "special": true, "normalized": false}}})");
  Tokenizer ok = Tokenizer::load(dir);
  EXPECT_EQ(ok.raw_ids("a<q>"), (std::vector<int64_t>{6, 15}));  // not in the vocab: next free id
}

// ---------------------------------------------------------------------------------------------
// tools/voxcpm-tokenize

struct RunResult {
  int status;
  std::string out, err;
};

RunResult run_tool(const std::string& args, const std::string& input) {
  std::string dir = voxcpm::test::make_temp_dir();
  write_text(dir + "/in", input);
  std::string cmd = "'" + voxcpm::test::build_root() + "/tools/voxcpm-tokenize' " + args + " < '" + dir +
                    "/in' > '" + dir + "/out' 2> '" + dir + "/err'";
  int rc = std::system(cmd.c_str());
  RunResult r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_text(dir + "/out"), read_text(dir + "/err")};
  return r;
}

TEST(TokenizeTool, PrintsIdsPerLine) {
  std::string model = voxcpm::test::reference_models_dir() + "/VoxCPM1.5";
  RunResult r = run_tool("--model '" + model + "'", "\"Hello world.\"\n\"你好，这是测试。\"\n\"\"\n\"a\\nb\"\n");
  EXPECT_EQ(r.status, 0) << r.err;
  Tokenizer tok = Tokenizer::load(model);
  std::string expected = "[21045,2809,72]\n[59320,59496,59495,65,59431,59390,59972,59865,66]\n[]\n";
  json ab = tok.encode("a\nb");
  expected += ab.dump() + "\n";
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(run_tool("--model=" + model, "\"Hello world.\"\n").out, "[21045,2809,72]\n");
}

TEST(TokenizeTool, ExitCodes) {
  std::string model = voxcpm::test::reference_models_dir() + "/VoxCPM2";
  RunResult r = run_tool("", "\"x\"\n");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("usage"), std::string::npos) << r.err;
  EXPECT_EQ(run_tool("--model", "").status, 2);
  EXPECT_EQ(run_tool("--model '" + model + "' --bogus", "").status, 2);
  EXPECT_EQ(run_tool("'" + model + "'", "").status, 2);

  r = run_tool("--model /nonexistent/dir", "\"x\"\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;

  r = run_tool("--model '" + model + "'", "\"ok\"\n42\n\"never\"\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, json(Tokenizer::load(model).encode("ok")).dump() + "\n");

  r = run_tool("--model '" + model + "'", "\"ok\"\nnot json\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;

  r = run_tool("--model '" + model + "'", "\"\\udc00\"\n");  // lone surrogate: not valid text
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;

  r = run_tool("--model '" + model + "'", "\"\xff\"\n");  // raw invalid UTF-8 byte
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
}

}  // namespace
