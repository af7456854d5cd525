#include "bench/report.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace voxcpm::bench {
namespace {

using nlohmann::json;

std::string fmt(double v, int decimals = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

double num(const json& j, const char* key, double def = 0) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : def;
}

std::string str(const json& j, const char* key, const std::string& def = "") {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : def;
}

// "median (mean ± stdev, min–max)" of a summary object.
std::string stat_cell(const json& s, double scale = 1, int decimals = 3) {
  if (!s.is_object()) return "-";
  return fmt(num(s, "median") * scale, decimals) + " (" + fmt(num(s, "mean") * scale, decimals) + " ± " +
         fmt(num(s, "stdev") * scale, decimals) + ", " + fmt(num(s, "min") * scale, decimals) + "–" +
         fmt(num(s, "max") * scale, decimals) + ")";
}

const char* kStepStageNames[] = {"locdit_cfm", "stop_head", "locenc", "base_lm", "residual_lm", "vae_decode"};
const char* kPrefillStageNames[] = {"prompt_encode", "prefill_locenc", "prefill_base_lm", "prefill_residual_lm"};

}  // namespace

std::string markdown_report(const json& r) {
  std::ostringstream md;
  const json results = r.value("results", json::array());  // a copy: rows below point into it
  const json& model = r.value("model", json::object());
  const json& settings = r.value("settings", json::object());
  const json& machine = r.value("machine", json::object());
  md << "# voxcpm-bench report\n\n";
  md << "- date: " << str(r, "date") << ", host: " << str(r, "host") << "\n";
  md << "- model: " << str(model, "version") << " (" << str(model, "dir") << "), " << fmt(num(model, "parameters") / 1e6, 1)
     << " M parameters, compute dtype " << str(model, "dtype") << ", device " << str(model, "device") << "\n";
  md << "- settings: " << num(settings, "runs") << " runs per text and mode, "
     << (num(settings, "steps") > 0 ? fmt(num(settings, "steps"), 0) + " forced patches" : std::string("stop head decides"))
     << ", " << num(settings, "timesteps") << " timesteps (" << num(settings, "locdit_calls_per_step")
     << " LocDiT calls per patch), cfg " << fmt(num(settings, "cfg"), 2) << ", " << num(settings, "threads")
     << " threads, seed " << num(settings, "seed") << "\n";
  md << "- OPENBLAS_CORETYPE: " << str(settings, "openblas_coretype", "(unset)") << "\n";
  md << "- command: `" << str(r, "command") << "`\n\n";

  md << "## Machine probe\n\n";
  if (machine.contains("mem_read_gbs")) {
    md << "| CPU | SIMD | threads | OpenBLAS core | memory read | GEMM f32 | GEMM bf16 | GEMM 18×1024×4096 f32 | "
          "GEMV 4096² f32 / bf16 | linear, 1 row, f32 / bf16 |\n";
    md << "|---|---|---|---|---|---|---|---|---|---|\n";
    md << "| " << str(machine, "cpu_model") << " (" << num(machine, "logical_cpus") << " CPUs) | "
       << str(machine, "cpu_flags") << " | " << num(machine, "torch_threads") << " | " << str(machine, "openblas_core")
       << " | " << fmt(num(machine, "mem_read_gbs"), 1) << " GB/s | " << fmt(num(machine, "gemm_f32_gflops"), 0)
       << " GFLOP/s | " << fmt(num(machine, "gemm_bf16_gflops"), 0) << " GFLOP/s | "
       << fmt(num(machine, "gemm_skinny_f32_gflops"), 0) << " GFLOP/s | " << fmt(num(machine, "gemv_f32_gbs"), 1)
       << " / " << fmt(num(machine, "gemv_bf16_gbs"), 1) << " GB/s | " << fmt(num(machine, "linear1_f32_gbs"), 1)
       << " / " << fmt(num(machine, "linear1_bf16_gbs"), 1) << " GB/s |\n\n";
  } else {
    md << "Not measured (--no-probe).\n\n";
  }

  const json& mem = r.value("memory", json::object());
  md << "## Load and memory\n\n";
  md << "| load time | RSS after load | peak RSS while loading | peak RSS while generating | peak RSS (process, "
        "probe included) | weights (estimate) | per-request state |\n|---|---|---|---|---|---|---|\n";
  md << "| " << fmt(num(model, "load_s"), 2) << " s | " << fmt(num(mem, "rss_after_load_mb"), 0) << " MB | "
     << fmt(num(mem, "peak_rss_after_load_mb"), 0) << " MB | "
     << (num(mem, "peak_rss_generation_mb", -1) >= 0 ? fmt(num(mem, "peak_rss_generation_mb"), 0) + " MB"
                                                      : std::string("-"))
     << " | " << fmt(num(mem, "peak_rss_mb"), 0) << " MB | "
     << fmt(num(mem, "weights_mb_estimate"), 0) << " MB | " << fmt(num(mem, "request_state_mb"), 1) << " MB |\n\n";

  md << "## Latency through the engine API\n\n";
  md << "Seconds; each cell is median (mean ± stdev, min–max) over the runs. Time to first audio: from the request "
        "to its first non-empty chunk (non-streaming: the whole waveform). Per step: median interval between "
        "chunks (streaming) or generation time per patch (non-streaming). RTF = total time / audio duration.\n\n";
  md << "| text | chars | mode | first audio (s) | per step (s) | total (s) | audio (s) | RTF |\n";
  md << "|---|---|---|---|---|---|---|---|\n";
  for (const json& e : results) {
    const json& s = e.value("summary", json::object());
    md << "| " << str(e, "text") << " | " << num(e, "chars") << " | " << str(e, "mode") << " | "
       << stat_cell(s.value("ttfa_s", json())) << " | " << stat_cell(s.value("step_s", json())) << " | "
       << stat_cell(s.value("total_s", json()), 1, 2) << " | " << fmt(num(s.value("audio_s", json::object()), "median"), 2)
       << " | " << stat_cell(s.value("rtf", json()), 1, 2) << " |\n";
  }
  md << "\n";

  md << "## Per-stage time (streaming, mean ms per call)\n\n";
  md << "Step stages run once per generated patch (LocDiT/CFM: all sampler calls of the patch); prefill stages once "
        "per request.\n\n| stage |";
  std::vector<const json*> streaming;
  for (const json& e : results)
    if (str(e, "mode") == "streaming") streaming.push_back(&e);
  for (const json* e : streaming) md << " " << str(*e, "text") << " |";
  md << "\n|---|";
  for (size_t i = 0; i < streaming.size(); ++i) md << "---|";
  md << "\n";
  auto stage_rows = [&](const char* const* names, size_t n) {
    for (size_t k = 0; k < n; ++k) {
      bool any = false;
      for (const json* e : streaming) any |= e->value("stages", json::object()).contains(names[k]);
      if (!any) continue;
      md << "| " << names[k] << " |";
      for (const json* e : streaming) {
        const json& st = e->value("stages", json::object());
        md << " " << (st.contains(names[k]) ? fmt(num(st[names[k]], "mean_s_per_call") * 1e3, 1) : std::string("-"))
           << " |";
      }
      md << "\n";
    }
  };
  stage_rows(kStepStageNames, std::size(kStepStageNames));
  stage_rows(kPrefillStageNames, std::size(kPrefillStageNames));
  md << "\n";

  const json& paired = r.value("streaming_vs_non_streaming", json::array());
  if (!paired.empty()) {
    md << "## Streaming against non-streaming\n\n";
    md << "Total time of a streaming run / total time of the non-streaming run made right after it with the same "
          "seed (the modes alternate run by run), median (mean ± stdev, min–max) over the pairs.\n\n";
    md << "| text | streaming / non-streaming total |\n|---|---|\n";
    for (const json& p : paired)
      md << "| " << str(p, "text") << " | " << stat_cell(p.value("total_ratio", json())) << " |\n";
    md << "\n";
  }

  const json& roof = r.value("roofline", json::object());
  md << "## Per-step stages against the machine (roofline)\n\n";
  md << "Bytes and FLOPs per call from the model config (weights read once per call; KV cache and AudioVAE "
        "activations counted). Roofline = max(bytes / memory read rate, FLOPs / GEMM peak of the compute dtype), "
        "summed over the parts of a stage that must run one after the other (the "
        "AudioVAE decoder's layers: one layer's weight traffic cannot hide behind another's arithmetic); "
        "\"whole\" is the same bound over the stage's total bytes and FLOPs at once. Time per call: median over "
        "the streaming runs of each run's mean (a slow minute of a shared host moves a mean, not a median), "
        "with the pooled mean beside it. Average LM context: "
     << fmt(num(roof.value("step", json::object()), "context"), 0) << " positions.\n\n";
  const json& between = roof.value("mem_gbs_between_runs", json::object());
  const json& gemm_between = roof.value("gemm_peak_gflops_between_runs", json::object());
  if (num(between, "n") > 0)
    md << "Peaks: the medians of probes taken before each pair of runs (" << fmt(num(between, "n"), 0)
       << " probes; a shared host's rates move by the minute, and the stages are read against the minutes they "
          "ran in): memory read "
       << fmt(num(roof, "mem_gbs"), 1) << " GB/s (" << fmt(num(between, "min"), 1) << "–"
       << fmt(num(between, "max"), 1) << "), GEMM " << fmt(num(roof, "gemm_peak_gflops"), 0) << " GFLOP/s ("
       << fmt(num(gemm_between, "min"), 0) << "–" << fmt(num(gemm_between, "max"), 0) << "; float32 "
       << fmt(num(roof, "gemm_f32_gflops"), 0)
       << " for the AudioVAE). \"× start\" uses the start probe's instead (read "
       << fmt(num(roof, "mem_gbs_start_probe"), 1) << " GB/s, GEMM "
       << fmt(num(roof, "gemm_peak_gflops_start_probe"), 0) << " GFLOP/s).\n\n";
  md << "| stage | median (ms) | mean (ms) | share | MB per call | GFLOP per call | achieved GB/s | achieved GFLOP/s | "
        "roofline (ms) | × roofline | × whole | × start |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  auto opt = [](const json& row, const char* key, double scale, int decimals) {
    return row.contains(key) ? fmt(num(row, key) * scale, decimals) : std::string("-");
  };
  for (const json& row : roof.value("stages", json::array())) {
    md << "| " << str(row, "stage") << " | " << fmt(num(row, "median_s") * 1e3, 1) << " | "
       << fmt(num(row, "mean_s") * 1e3, 1) << " | " << fmt(num(row, "share") * 100, 0) << "% | "
       << fmt(num(row, "bytes") / 1e6, 1) << " | " << fmt(num(row, "flops") / 1e9, 2) << " | "
       << fmt(num(row, "achieved_gbs"), 1) << " | " << fmt(num(row, "achieved_gflops"), 1) << " | "
       << opt(row, "roofline_s", 1e3, 1) << " | " << opt(row, "vs_roofline", 1, 2) << " | "
       << opt(row, "vs_roofline_whole", 1, 2) << " | " << opt(row, "vs_roofline_start_probe", 1, 2) << " |\n";
  }
  const json& step = roof.value("step", json::object());
  md << "| **step** | " << fmt(num(step, "median_s") * 1e3, 1) << " | " << fmt(num(step, "mean_s") * 1e3, 1)
     << " | 100% | | | | | " << opt(step, "roofline_s", 1e3, 1) << " | " << opt(step, "vs_roofline", 1, 2)
     << " | | |\n\n";
  if (step.contains("roofline_rtf"))
    md << "Roofline real-time factor of a step (roofline step time / audio per patch): "
       << fmt(num(step, "roofline_rtf"), 2) << ".\n\n";

  const json& pipe = r.value("pipeline", json::object());
  md << "## Through a GStreamer pipeline\n\n";
  if (pipe.value("available", false) && pipe.contains("results")) {
    md << str(pipe, "note") << ". Seconds, median (mean ± stdev, min–max).\n\n";
    md << "| text | first audio (s) | total (s) |\n|---|---|---|\n";
    for (const json& e : pipe["results"]) {
      const json& s = e.value("summary", json::object());
      md << "| " << str(e, "text") << " | " << stat_cell(s.value("ttfa_s", json())) << " | "
         << stat_cell(s.value("total_s", json()), 1, 2) << " |\n";
    }
    md << "\n";
    if (pipe.contains("second_element_mb"))
      md << "A second voxcpmtts on the same model (two pipelines playing, each after one utterance) adds "
         << fmt(num(pipe, "second_element_mb"), 1) << " MB of RSS.\n\n";
  } else {
    md << "Not measured: " << str(pipe, "note", "unavailable") << ".\n\n";
  }

  md << "## Plots\n\n";
  const json& plots = r.value("plots", json::array());
  if (plots.empty()) {
    md << "No plots: " << str(r, "plots_note", "not made") << ".\n";
  } else {
    for (const json& p : plots) md << "![" << p.get<std::string>() << "](" << p.get<std::string>() << ")\n\n";
  }
  return md.str();
}

std::vector<std::string> write_plots(const json& r, const std::string& dir, std::string* why) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    *why = "gnuplot not found (apt-get install gnuplot-nox)";
    return {};
  }
  // latency.dat: text, chars, first audio streaming / non-streaming (median, min, max).
  {
    std::ofstream f(dir + "/latency.dat", std::ios::trunc);
    f << "# text chars stream_med stream_min stream_max whole_med whole_min whole_max\n";
    for (const json& t : r.value("texts", json::array())) {
      const std::string id = str(t, "id");
      double v[6] = {0, 0, 0, 0, 0, 0};
      for (const json& e : r.value("results", json::array())) {
        if (str(e, "text") != id) continue;
        const int o = str(e, "mode") == "streaming" ? 0 : 3;
        const json& s = e["summary"]["ttfa_s"];
        v[o] = num(s, "median");
        v[o + 1] = num(s, "min");
        v[o + 2] = num(s, "max");
      }
      f << id << " " << num(t, "chars") << " " << v[0] << " " << v[1] << " " << v[2] << " " << v[3] << " " << v[4]
        << " " << v[5] << "\n";
    }
  }
  // stages.dat: per text (streaming), ms per generated patch of each step stage.
  {
    std::ofstream f(dir + "/stages.dat", std::ios::trunc);
    f << "text";  // a header row: the plot titles come from it (columnhead)
    for (const char* n : kStepStageNames) f << " " << n;
    f << "\n";
    for (const json& e : r.value("results", json::array())) {
      if (str(e, "mode") != "streaming") continue;
      f << str(e, "text");
      const json& st = e.value("stages", json::object());
      for (const char* n : kStepStageNames) f << " " << (st.contains(n) ? num(st[n], "mean_s_per_call") * 1e3 : 0.0);
      f << "\n";
    }
  }
  const std::string title = str(r.value("model", json::object()), "version") + " " +
                            str(r.value("model", json::object()), "dtype");
  std::ofstream gp(dir + "/plots.gp", std::ios::trunc);
  gp << "set terminal pngcairo size 900,540 noenhanced\n"
        "set datafile separator ' '\n"
        "set output '"
     << dir << "/latency.png'\n"
     << "set title 'Time to first audio, " << title << "'\n"
     << "set xlabel 'text (characters)'\nset ylabel 'seconds'\nset grid ytics\nset key top left\n"
        "set style data histogram\nset style histogram errorbars gap 2 lw 1\nset style fill solid 0.6 border -1\n"
        "set yrange [0:*]\n"
        "plot '"
     << dir << "/latency.dat' using 3:4:5:xtic(sprintf('%s (%d)', stringcolumn(1), column(2))) title 'streaming', '' "
               "using 6:7:8 title 'non-streaming'\n"
        "set output '"
     << dir << "/stages.png'\n"
     << "set title 'Time per generated patch by stage (streaming), " << title << "'\n"
     << "set xlabel 'text'\nset ylabel 'ms per patch'\nset key outside right\n"
        "set style histogram rowstacked\nset boxwidth 0.6\n"
        "plot for [i=2:"
     << 1 + std::size(kStepStageNames) << "] '" << dir
     << "/stages.dat' using i:xtic(1) title columnhead(i)\n";
  gp.close();
  const std::string cmd = "gnuplot '" + dir + "/plots.gp' > '" + dir + "/gnuplot.log' 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    *why = "gnuplot failed (see " + dir + "/gnuplot.log)";
    return {};
  }
  return {"latency.png", "stages.png"};
}

}  // namespace voxcpm::bench
