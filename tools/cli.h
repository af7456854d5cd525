// Minimal command-line parsing shared by the voxcpm-* tools: `--name value` / `--flag`,
// numbers checked, and exit code 2 with the usage text on any misuse.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace voxcpm::cli {

class Args {
 public:
  // `valued`: options that take a value; `flags`: options that do not.
  Args(int argc, char** argv, const char* usage, std::set<std::string> valued, std::set<std::string> flags)
      : usage_(usage) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::fputs(usage_, stdout);
        std::exit(0);
      }
      if (flags.count(a)) {
        flags_.insert(a);
      } else if (valued.count(a)) {
        if (i + 1 >= argc) fail("option " + a + " needs a value");
        values_[a] = argv[++i];
      } else if (!a.empty() && a[0] == '-' && a != "-") {
        fail("unknown option " + a);
      } else {
        positional_.push_back(a);
      }
    }
  }

  [[noreturn]] void fail(const std::string& msg) const {
    std::fprintf(stderr, "error: %s\n\n%s", msg.c_str(), usage_);
    std::exit(2);
  }
  bool flag(const std::string& name) const { return flags_.count(name) != 0; }
  std::optional<std::string> value(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::string value_or(const std::string& name, const std::string& def) const { return value(name).value_or(def); }
  long long integer(const std::string& name, long long def, long long lo, long long hi) const {
    auto v = value(name);
    if (!v) return def;
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v->c_str(), &end, 10);
    if (v->empty() || *end || errno || x < lo || x > hi)
      fail(name + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got '" + *v + "'");
    return x;
  }
  double number(const std::string& name, double def, double lo, double hi) const {
    auto v = value(name);
    if (!v) return def;
    char* end = nullptr;
    double x = std::strtod(v->c_str(), &end);
    if (v->empty() || *end || !(x >= lo && x <= hi))
      fail(name + " must be a number in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got '" + *v + "'");
    return x;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  const char* usage_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

}  // namespace voxcpm::cli
