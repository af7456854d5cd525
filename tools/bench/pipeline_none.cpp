#include <stdexcept>

#include "bench/pipeline.h"

namespace voxcpm::bench {

Pipeline::Pipeline(const PipelineSettings& s) : s_(s), note_("voxcpm-bench was built without GStreamer") {}

PipelineRun Pipeline::run(const std::string&) { throw std::runtime_error(note_); }

double Pipeline::second_element_mb(const std::string&, const std::function<double()>&) {
  throw std::runtime_error(note_);
}

}  // namespace voxcpm::bench
