// The plugin's only door to libtorch: loading a model through the process-wide cache and running
// one streaming synthesis. Plain C++ (no GStreamer, no ATen in this header) so the GObject files
// compile fast and plugin_init/class_init cannot touch torch by accident.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "voxcpm/threads.h"

namespace voxcpm {
class Model;
class Synthesis;
}  // namespace voxcpm

namespace gstvoxcpm {

// What selects a loaded model; "auto" device means CUDA when available, else the CPU.
struct ModelRequest {
  std::string path, device = "auto", dtype = "auto";
  bool operator==(const ModelRequest& o) const { return path == o.path && device == o.device && dtype == o.dtype; }
};

struct ModelInfo {
  int64_t sample_rate = 0;        // output rate
  int64_t samples_per_chunk = 0;  // one generated patch
  int64_t parameters = 0;
  std::string version, device, dtype;
  bool is_v2 = false;
  std::string describe() const;  // one line for the model-info property
};

class LoadError : public std::runtime_error {
 public:
  LoadError(bool not_found, const std::string& what) : std::runtime_error(what), not_found(not_found) {}
  bool not_found;  // the directory or one of its files is missing (else: unreadable/invalid)
};

// Resolves the request and returns the shared model. Throws LoadError naming the file.
std::shared_ptr<const voxcpm::Model> load_model(const ModelRequest& request, ModelInfo* info);

// Per-utterance synthesis settings (the GObject properties that may change while PLAYING).
struct UtteranceOptions {
  int64_t inference_timesteps = 10;
  double cfg_value = 2.0;
  int64_t seed = -1;  // -1: a random seed per utterance
  int64_t min_len = 2, max_len = 4096;
  bool normalize = true;
  std::string prompt_wav_path, prompt_text, reference_wav_path;
  int n_threads = 0;  // 0: available CPUs shared among running utterances
};

// Empty if the options suit the model, else a message naming the bad option or file.
std::string check_options(const UtteranceOptions& opts, const ModelInfo& info);

// One text → a stream of audio chunks (one per generated patch) at the model's rate.
class Utterance {
 public:
  // Cheap (no model step runs yet). Throws std::exception on empty text or bad options.
  Utterance(std::shared_ptr<const voxcpm::Model> model, const std::string& text, const UtteranceOptions& opts);
  ~Utterance();
  Utterance(const Utterance&) = delete;
  Utterance& operator=(const Utterance&) = delete;

  // Computes the next chunk into `samples` (on this utterance's own thread, waiting for it); false
  // once the utterance is complete. Throws voxcpm::Cancelled after cancel(), other std::exception
  // on failure.
  bool next(std::vector<float>* samples);
  void cancel();  // from any thread; next() stops within one model step
  uint64_t seed() const;

 private:
  std::unique_ptr<voxcpm::Synthesis> syn_;
  voxcpm::CpuShare cpu_share_;  // n-threads 0 divides the CPUs among running utterances
  int n_threads_ = 0;
  // The steps run here, not on the caller's (pooled) streaming thread: see ComputeThread.
  voxcpm::ComputeThread compute_;
};

}  // namespace gstvoxcpm
