// Time to first audio through a real GStreamer pipeline: `appsrc ! voxcpmtts ! appsink`, the
// text pushed as one buffer, timed until the first audio buffer leaves voxcpmtts. Built only
// when GStreamer is found (pipeline_gst.cpp); otherwise pipeline_none.cpp says why not.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace voxcpm::bench {

struct PipelineSettings {
  std::string model_dir, dtype = "auto", device = "cpu";
  int threads = 0;
  int timesteps = 10;
  double cfg = 2.0;
  int min_len = 2, max_len = 4096;
  unsigned seed = 1;
  std::string plugin_dir;  // searched for the voxcpm plugin if the registry lacks it
};

struct PipelineRun {
  double ttfa_s = 0;   // text pushed → first audio buffer at the appsink
  double total_s = 0;  // text pushed → EOS at the appsink
  long long samples = 0;
  int rate = 0;
};

class Pipeline {
 public:
  // Initialises GStreamer and checks for voxcpmtts; available() false with a reason otherwise.
  explicit Pipeline(const PipelineSettings& s);
  bool available() const { return available_; }
  const std::string& note() const { return note_; }
  // One utterance in a fresh pipeline (the model stays in the process-wide cache). Throws
  // std::runtime_error on a pipeline error.
  PipelineRun run(const std::string& text);
  // Memory a second voxcpmtts on the same model costs: RSS (from `rss_mb`) with two running
  // pipelines that have each spoken `text`, minus RSS with the first alone, in MB.
  double second_element_mb(const std::string& text, const std::function<double()>& rss_mb);

 private:
  struct Running;
  std::unique_ptr<Running> start();
  PipelineRun speak(Running& p, const std::string& text, bool eos);

  PipelineSettings s_;
  bool available_ = false;
  std::string note_;
};

}  // namespace voxcpm::bench
