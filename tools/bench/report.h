// Renders a voxcpm-bench result (its JSON) as a Markdown report and PNG plots (gnuplot).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace voxcpm::bench {

std::string markdown_report(const nlohmann::json& result);

// Writes latency.png and stages.png into `dir` through gnuplot. Returns the PNG file names
// written, or an empty list with `why` set (gnuplot missing or failing).
std::vector<std::string> write_plots(const nlohmann::json& result, const std::string& dir, std::string* why);

}  // namespace voxcpm::bench
