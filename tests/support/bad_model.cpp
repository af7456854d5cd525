#include "support/bad_model.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <ATen/ATen.h>

#include "support/files.h"
#include "support/golden.h"

namespace voxcpm::test {

std::string copy_tiny_model(const std::string& version) {
  const std::string src = tiny_model_dir(version), dst = make_temp_dir();
  for (const std::string& name : list_dir(src)) copy_file(src + "/" + name, dst + "/" + name);
  return dst;
}

void truncate_file(const std::string& path, uint64_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) throw std::runtime_error("cannot truncate " + path);
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str());
  edit(j);
  std::ofstream(path) << j.dump(2);
}

void edit_tensors(const std::string& path, const std::function<void(TensorMap&)>& edit) {
  const bool safetensors = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
  TensorMap t;
  for (auto& [name, tensor] : read_tensor_file(path)) t[name] = tensor.clone();  // not aliasing the file
  edit(t);
  if (safetensors) {
    write_safetensors(path, t);
  } else {
    write_torch_zip(path, t);
  }
}

namespace {

uint64_t status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1));
  return 0;
}

}  // namespace

uint64_t rss_bytes() { return status_kb("VmRSS") * 1024; }
uint64_t peak_rss_bytes() { return status_kb("VmHWM") * 1024; }

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return out.good() && peak_rss_bytes() <= rss_bytes() + (4u << 20);
}

}  // namespace voxcpm::test
