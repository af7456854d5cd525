// voxcpm-tokenize --model DIR: reads one JSON string per stdin line and prints, per line, the JSON
// array of the token ids VoxCPM feeds its model for it (spec §5.2; the §5.1 whitespace rules are not
// applied). Exit status: 0 ok, 1 unreadable model or bad input line, 2 bad arguments.
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "voxcpm/error.h"
#include "voxcpm/tokenizer.h"

namespace {

void usage(std::FILE* to) {
  std::fputs(
      "usage: voxcpm-tokenize --model DIR\n"
      "  DIR holds tokenizer.json (and optionally tokenizer_config.json).\n"
      "  Reads one JSON string per line from stdin, writes one JSON array of token ids per line.\n",
      to);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model;
  bool have_model = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    }
    if (a == "--model" && i + 1 < argc && !have_model) {
      model = argv[++i];
      have_model = true;
    } else if (a.rfind("--model=", 0) == 0 && !have_model) {
      model = a.substr(8);
      have_model = true;
    } else {
      std::fprintf(stderr, "voxcpm-tokenize: unexpected argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (!have_model || model.empty()) {
    std::fputs("voxcpm-tokenize: --model DIR is required\n", stderr);
    usage(stderr);
    return 2;
  }

  std::ios::sync_with_stdio(false);
  try {
    voxcpm::Tokenizer tok = voxcpm::Tokenizer::load(model);
    std::string line, out;
    for (size_t n = 1; std::getline(std::cin, line); ++n) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        std::fprintf(stderr, "voxcpm-tokenize: stdin line %zu: not a JSON string: %s\n", n, e.what());
        return 1;
      }
      if (!j.is_string()) {
        std::fprintf(stderr, "voxcpm-tokenize: stdin line %zu: expected a JSON string, got %s\n", n, j.type_name());
        return 1;
      }
      std::vector<int64_t> ids;
      try {
        ids = tok.encode(j.get_ref<const std::string&>());
      } catch (const voxcpm::Error& e) {
        std::fprintf(stderr, "voxcpm-tokenize: stdin line %zu: %s\n", n, e.what());
        return 1;
      }
      out = "[";
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
      }
      out += "]\n";
      std::cout << out;
    }
    std::cout.flush();
    if (!std::cout) {
      std::fputs("voxcpm-tokenize: cannot write to stdout\n", stderr);
      return 1;
    }
    if (std::cin.bad()) {
      std::fputs("voxcpm-tokenize: cannot read stdin\n", stderr);
      return 1;
    }
  } catch (const voxcpm::Error& e) {
    std::fprintf(stderr, "voxcpm-tokenize: %s\n", e.what());
    return 1;
  }
  return 0;
}
