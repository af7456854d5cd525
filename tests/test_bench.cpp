// voxcpm-bench on the tiny VoxCPM1.5 fixture: the reports it writes are well formed (JSON with
// every section and consistent counts, Markdown tables with matching columns), --steps forces
// the patch count, and misuse is an error. Timing values are not checked.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/golden.h"

using nlohmann::json;

namespace {

struct ToolRun {
  int code;
  std::string output;
};

ToolRun run(const std::string& cmd) {
  ToolRun r{-1, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string bench() { return voxcpm::test::build_root() + "/tools/voxcpm-bench"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

void expect_summary(const json& s, const std::string& what) {
  ASSERT_TRUE(s.is_object()) << what;
  for (const char* k : {"n", "mean", "stdev", "min", "max", "median"}) {
    ASSERT_TRUE(s.contains(k) && s[k].is_number()) << what << " lacks " << k;
    EXPECT_TRUE(std::isfinite(s[k].get<double>())) << what << "." << k;
  }
  EXPECT_LE(s["min"].get<double>(), s["median"].get<double>()) << what;
  EXPECT_LE(s["median"].get<double>(), s["max"].get<double>()) << what;
  EXPECT_GE(s["stdev"].get<double>(), 0.0) << what;
}

// Every Markdown table: the separator row and each body row have the header's column count.
void expect_tables_well_formed(const std::string& md) {
  std::istringstream in(md);
  std::string line;
  int header_cols = -1, tables = 0;
  bool after_separator = false;
  auto cols = [](const std::string& l) { return static_cast<int>(std::count(l.begin(), l.end(), '|')); };
  std::string prev;
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) == 0) {
      if (header_cols < 0) {
        header_cols = cols(line);
        after_separator = false;
      } else if (!after_separator) {
        EXPECT_EQ(line.find("|---"), 0u) << "table without a separator row after: " << prev;
        EXPECT_EQ(cols(line), header_cols) << line;
        after_separator = true;
        ++tables;
      } else {
        EXPECT_EQ(cols(line), header_cols) << "row with another column count: " << line;
      }
    } else {
      header_cols = -1;
    }
    prev = line;
  }
  EXPECT_GE(tables, 5) << md;
}

}  // namespace

TEST(Bench, TinyModelWritesWellFormedReports) {
  const std::string dir = voxcpm::test::make_temp_dir() + "/report";
  ToolRun r = run(bench() + " --model " + voxcpm::test::tiny_model_dir("v1.5") +
                  " --runs 1 --steps 3 --warmup 0 --quick-probe --no-pipeline --threads 1 --out " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("OPENBLAS_CORETYPE="), std::string::npos) << r.output;

  json j;
  ASSERT_NO_THROW(j = json::parse(read_file(dir + "/bench.json"))) << read_file(dir + "/bench.json");
  EXPECT_EQ(j.value("schema", ""), "voxcpm-bench/1");
  EXPECT_EQ(j["model"].value("version", ""), "VoxCPM1.5");
  EXPECT_EQ(j["model"].value("dtype", ""), "Float");
  EXPECT_GT(j["model"]["parameters"].get<double>(), 0);
  EXPECT_EQ(j["settings"]["steps"].get<int>(), 3);
  EXPECT_EQ(j["settings"]["threads"].get<int>(), 1);
  EXPECT_EQ(j["settings"]["locdit_calls_per_step"].get<int>(), 9);  // 10 timesteps, CFG-zero* skips 1
  for (const char* k : {"mem_read_gbs", "gemm_f32_gflops", "gemm_bf16_gflops", "gemv_f32_gbs", "gemv_bf16_gbs"}) {
    ASSERT_TRUE(j["machine"].contains(k)) << k;
    EXPECT_GT(j["machine"][k].get<double>(), 0) << k;
  }
  EXPECT_TRUE(j["machine"]["openblas_coretype_env"].is_string());

  ASSERT_EQ(j["texts"].size(), 4u);
  std::vector<std::string> ids;
  for (const json& t : j["texts"]) ids.push_back(t["id"].get<std::string>());
  EXPECT_EQ(ids, (std::vector<std::string>{"zh14", "zh51", "zh126", "en60"}));
  EXPECT_EQ(j["texts"][0]["chars"].get<int>(), 14);
  EXPECT_EQ(j["texts"][1]["chars"].get<int>(), 51);
  EXPECT_EQ(j["texts"][2]["chars"].get<int>(), 126);
  EXPECT_EQ(j["texts"][3]["chars"].get<int>(), 60);

  ASSERT_EQ(j["results"].size(), 8u) << "4 texts x streaming/non-streaming";
  for (const json& e : j["results"]) {
    const std::string what = e["text"].get<std::string>() + "/" + e["mode"].get<std::string>();
    ASSERT_EQ(e["runs"].size(), 1u) << what;
    const json& run = e["runs"][0];
    EXPECT_EQ(run["steps"].get<int>(), 3) << what << ": --steps 3 forces three patches";
    EXPECT_NEAR(run["audio_s"].get<double>(), 3 * 7056 / 44100.0, 1e-9) << what;
    EXPECT_GT(run["ttfa_s"].get<double>(), 0) << what;
    EXPECT_LE(run["ttfa_s"].get<double>(), run["total_s"].get<double>()) << what;
    for (const char* k : {"ttfa_s", "total_s", "audio_s", "rtf", "step_s", "steps"})
      expect_summary(e["summary"][k], what + " summary." + k);
    const json& st = e["stages"];
    for (const char* k : {"locdit_cfm", "stop_head", "locenc", "base_lm", "residual_lm", "vae_decode",
                          "prefill_base_lm", "prefill_residual_lm"})
      ASSERT_TRUE(st.contains(k)) << what << " lacks stage " << k;
    EXPECT_EQ(st["locdit_cfm"]["calls_per_run"].get<double>(), 3) << what;
    EXPECT_EQ(st["base_lm"]["calls_per_run"].get<double>(), 2) << what << ": no LM step after the last patch";
    EXPECT_FALSE(st.contains("prefill_locenc")) << what << ": zero-shot prefill needs no LocEnc";
    if (e["mode"] == "streaming") {
      EXPECT_EQ(st["vae_decode"]["calls_per_run"].get<double>(), 3) << what;
    }
  }
  // Streaming and non-streaming runs alternate; each pair's total-time ratio is summarised per text.
  ASSERT_EQ(j["streaming_vs_non_streaming"].size(), 4u);
  for (const json& p : j["streaming_vs_non_streaming"]) {
    expect_summary(p["total_ratio"], p.value("text", "?") + " streaming/non-streaming");
    EXPECT_GT(p["total_ratio"]["median"].get<double>(), 0);
  }
  // The peaks are probed again before each pair of runs (one run per text here: 4 probes), and
  // the rooflines use their medians; the start probe's figures stay beside them.
  const json& roof = j["roofline"];
  ASSERT_EQ(roof["mem_gbs_between_runs_all"].size(), 4u) << roof.dump();
  expect_summary(roof["mem_gbs_between_runs"], "memory reads between runs");
  EXPECT_DOUBLE_EQ(roof["mem_gbs"].get<double>(), roof["mem_gbs_between_runs"]["median"].get<double>());
  EXPECT_DOUBLE_EQ(roof["mem_gbs_start_probe"].get<double>(), j["machine"]["mem_read_gbs"].get<double>());
  expect_summary(roof["gemm_peak_gflops_between_runs"], "GEMM between runs");
  EXPECT_EQ(roof["gemm_peak_gflops_between_runs"]["n"].get<int>(), 4);
  EXPECT_DOUBLE_EQ(roof["gemm_peak_gflops"].get<double>(), roof["gemm_peak_gflops_between_runs"]["median"].get<double>());
  EXPECT_DOUBLE_EQ(roof["gemm_peak_gflops_start_probe"].get<double>(), j["machine"]["gemm_f32_gflops"].get<double>());
  ASSERT_EQ(j["roofline"]["stages"].size(), 6u);
  for (const json& row : j["roofline"]["stages"]) {
    for (const char* k : {"median_s", "mean_s", "min_s", "max_s", "share", "parts", "bytes", "flops", "achieved_gbs",
                          "achieved_gflops", "roofline_s", "vs_roofline", "roofline_whole_s", "vs_roofline_whole",
                          "vs_roofline_start_probe"})
      ASSERT_TRUE(row.contains(k) && row[k].is_number()) << row.dump();
    EXPECT_GT(row["bytes"].get<double>(), 0) << row.dump();
    EXPECT_LE(row["min_s"].get<double>(), row["median_s"].get<double>()) << row.dump();
    EXPECT_LE(row["median_s"].get<double>(), row["max_s"].get<double>()) << row.dump();
    // Parts run one after the other: the sum of their bounds is at least the bound of their sum.
    EXPECT_GE(row["roofline_s"].get<double>(), row["roofline_whole_s"].get<double>() * (1 - 1e-12)) << row.dump();
    if (row["stage"] == "vae_decode") {
      // Input conv, 5 x (transposed conv + 3 residual units), output conv (VoxCPM1.5).
      EXPECT_EQ(row["parts"].get<int>(), 1 + 5 * 4 + 1) << row.dump();
    } else {
      EXPECT_EQ(row["parts"].get<int>(), 1) << row.dump();
      EXPECT_DOUBLE_EQ(row["roofline_s"].get<double>(), row["roofline_whole_s"].get<double>()) << row.dump();
    }
  }
  EXPECT_FALSE(j["pipeline"]["available"].get<bool>());
  EXPECT_NE(j["pipeline"]["note"].get<std::string>().find("--no-pipeline"), std::string::npos);
  EXPECT_GT(j["memory"]["peak_rss_mb"].get<double>(), 0);
  EXPECT_GT(j["memory"]["request_state_mb"].get<double>(), 0);
  if (j["plots"].empty()) {
    EXPECT_FALSE(j.value("plots_note", "").empty()) << "no plots and no reason";
  } else {
    for (const json& p : j["plots"]) EXPECT_TRUE(exists(dir + "/" + p.get<std::string>())) << p;
  }

  const std::string md = read_file(dir + "/bench.md");
  EXPECT_EQ(md.rfind("# voxcpm-bench report\n", 0), 0u) << md;
  for (const char* h : {"## Machine probe", "## Load and memory", "## Latency through the engine API",
                        "## Per-stage time", "## Streaming against non-streaming",
                        "## Per-step stages against the machine", "## Through a GStreamer pipeline",
                        "## Plots"})
    EXPECT_NE(md.find(h), std::string::npos) << "missing section " << h;
  for (const std::string& id : ids) EXPECT_NE(md.find("| " + id + " |"), std::string::npos) << id;
  expect_tables_well_formed(md);
}

TEST(Bench, MisuseIsAnError) {
  const std::string model = voxcpm::test::tiny_model_dir("v1.5");
  for (const std::string& args : {std::string(""), "--model " + model + " --runs 0", "--model " + model + " --texts zh99",
                                  "--model " + model + " --modes sideways", "--model " + model + " --bogus"}) {
    ToolRun r = run("env -u VOXCPM_MODEL " + bench() + " " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("usage:"), std::string::npos) << r.output;
  }
  const std::string dir = voxcpm::test::make_temp_dir();
  ToolRun r = run(bench() + " --model " + dir + "/none --no-probe --out " + dir + "/out");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("not found"), std::string::npos) << r.output;
}
