// voxcpm-bench: latency/throughput report of the engine (and of a GStreamer pipeline when the
// plugin is available) in the form of the seed's reports: time to first audio for short,
// medium and long texts, streaming vs non-streaming, N runs with statistics, per-stage times
// read against the machine's measured peaks (roofline), load time and peak RSS.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <exception>
#include <sstream>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "bench/cost.h"
#include "bench/pipeline.h"
#include "bench/probe.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "cli.h"
#include "voxcpm/error.h"
#include "voxcpm/model.h"
#include "voxcpm/threads.h"
#include "voxcpm/model_cache.h"
#include "voxcpm/stream.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace voxcpm;
using namespace voxcpm::bench;

const char* kUsage =
    "usage: voxcpm-bench --model DIR [options]\n"
    "\n"
    "  --model DIR        model directory (default $VOXCPM_MODEL)\n"
    "  --out DIR          report folder: bench.json, bench.md, latency.png, stages.png (default bench-report)\n"
    "  --runs N           measured runs per text and mode (default 5)\n"
    "  --warmup N         unmeasured warm-up runs before the first measurement (default 1)\n"
    "  --steps N          force exactly N generated patches per run (0: the stop head decides; default 0)\n"
    "  --timesteps N      flow-matching steps (default 10)\n"
    "  --cfg F            classifier-free guidance value (default 2.0)\n"
    "  --dtype D          auto (default), float32, bfloat16\n"
    "  --device D         cpu (default), cuda, cuda:N\n"
    "  --threads N        CPU threads (default 0: every CPU the process may use)\n"
    "  --seed N           seed of run 0; run k uses seed+k (default 1)\n"
    "  --texts LIST       comma-separated subset of zh14,zh51,zh126,en60 (default all four)\n"
    "  --text T           benchmark this text instead (id 'custom')\n"
    "  --modes LIST       streaming,non-streaming (default both)\n"
    "  --no-probe         skip the machine probe (no roofline figures)\n"
    "  --quick-probe      a small, fast probe (tests)\n"
    "  --no-plots         do not run gnuplot\n"
    "  --no-pipeline      skip the GStreamer pipeline measurement\n"
    "  --plugin-dir DIR   folder of libgstvoxcpm.so if GST_PLUGIN_PATH does not name it\n"
    "                     (default: ../gst next to this program, i.e. the build tree)\n";

struct BenchText {
  std::string id, text;
};

// Natural sentences of 14, 51 and 126 Chinese characters (punctuation included) and a 60
// character English one, as in the seed's latency tables.
const BenchText kTexts[] = {
    {"zh14", "今天天气很好，我去公园散步。"},
    {"zh51", "人工智能正在改变我们的生活方式，从语音助手到自动驾驶，新技术让很多过去只存在于想象中的事情变成了现实。"},
    {"zh126",
     "清晨的阳光透过窗帘洒进房间，小鸟在窗外的树枝上欢快地歌唱。我慢慢起床，泡了一杯热茶，坐在书桌前翻开昨天没读完的小"
     "说。故事讲的是一位年轻画家离开家乡，去遥远的城市追寻梦想。他经历了许多困难和挫折，却始终没有放弃对艺术的热爱。读到"
     "这里，我想起年少时的理想。"},
    {"en60", "Good morning! The weather today is sunny, with a light wind."},
};

constexpr Stage kStepStages[] = {Stage::LocDiT, Stage::StopHead, Stage::LocEnc, Stage::BaseLM, Stage::ResidualLM,
                                 Stage::VaeDecode};
constexpr Stage kPrefillStages[] = {Stage::PromptEncode, Stage::PrefillLocEnc, Stage::PrefillBaseLM,
                                    Stage::PrefillResidualLM};

int64_t utf8_chars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

// VmRSS / VmHWM (peak since start or since the last reset_peak_rss) of /proc/self/status, in MB.
double status_mb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.rfind(k, 0) == 0) return std::strtod(line.c_str() + k.size(), nullptr) / 1024.0;  // kB
  return 0;
}
double current_rss_mb() { return status_mb("VmRSS"); }
double hwm_rss_mb() { return status_mb("VmHWM"); }

// Restarts VmHWM at the current RSS (Linux >= 4.0), so that a phase's own peak can be read.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  return static_cast<bool>(f << "5" << std::flush);
}

// Runs f on a thread of its own with `threads` intra-op threads (the OpenMP count is per calling
// thread) and waits for it, rethrowing what it threw. Whatever computes runs so: libgomp keeps a
// thread team per thread that ran a parallel region until that thread exits, and once it manages
// more threads than there are CPUs it stops spin-waiting (short spins, then sleeping), so a team
// left on the main thread would slow the pipeline's streaming thread by 13% (VoxCPM1.5, two CPUs:
// 8.43 s for 25 steps on a thread alone, 9.46-9.61 s on a second thread once another has a team)
// where an application's main thread does not compute.
template <class F>
void on_own_thread(int threads, F&& f) {
  std::exception_ptr failure;
  std::thread t([&] {
    try {
      use_cpu_threads(threads);
      f();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  t.join();
  if (failure) std::rethrow_exception(failure);
}

json summary_json(const std::vector<double>& v) {
  const Summary s = summarize(v);
  return {{"n", s.n}, {"mean", s.mean}, {"stdev", s.stdev}, {"min", s.min}, {"max", s.max}, {"median", s.median}};
}

std::string iso_time() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string program_dir(const char* argv0) {
  char buf[4096] = {};
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string p = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string(argv0);
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

struct RunResult {
  double ttfa_s = 0, total_s = 0, audio_s = 0, step_s = 0;
  int64_t steps = 0;
  size_t state_bytes = 0;
  StageTimes stages;
};

// One measured request through the engine API.
RunResult run_once(const std::shared_ptr<const Model>& model, const std::string& text, const GenerateOptions& opts,
                   bool streaming) {
  RunResult r;
  const auto t0 = Clock::now();
  Synthesis syn(model, text, opts, streaming ? Synthesis::Mode::Streaming : Synthesis::Mode::Whole);
  const at::Device& dev = model->options().device;
  // On a GPU each stage waits for its own kernels, so that the breakdown is per stage.
  if (dev.is_cuda()) r.stages.sync_cuda_device = dev.has_index() ? dev.index() : 0;
  syn.set_stage_times(&r.stages);
  std::vector<double> chunk_at;
  int64_t samples = 0;
  bool first = true;
  while (auto c = syn.next_chunk()) {
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!c->samples.empty()) {
      if (first) r.ttfa_s = t;
      first = false;
      chunk_at.push_back(t);
    }
    samples += static_cast<int64_t>(c->samples.size());
    r.state_bytes = std::max(r.state_bytes, syn.state_bytes());
  }
  r.total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  r.audio_s = static_cast<double>(samples) / static_cast<double>(model->sample_rate());
  r.steps = syn.model_steps();
  if (streaming && chunk_at.size() > 2) {
    std::vector<double> gaps;
    for (size_t i = 1; i < chunk_at.size(); ++i) gaps.push_back(chunk_at[i] - chunk_at[i - 1]);
    r.step_s = summarize(gaps).median;
  } else if (r.steps > 0) {
    double prefill = 0;
    for (Stage s : kPrefillStages) prefill += r.stages[s];
    r.step_s = (r.total_s - prefill) / static_cast<double>(r.steps);
  }
  return r;
}

json stages_json(const StageTimes& st) {
  json j = json::object();
  for (int i = 0; i < kStageCount; ++i) {
    const Stage s = static_cast<Stage>(i);
    j[stage_name(s)] = {{"seconds", st[s]}, {"calls", st.count(s)}};
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  cli::Args args(argc, argv, kUsage,
                 {"--model", "--out", "--runs", "--warmup", "--steps", "--timesteps", "--cfg", "--dtype", "--device",
                  "--threads", "--seed", "--texts", "--text", "--modes", "--plugin-dir"},
                 {"--no-probe", "--quick-probe", "--no-plots", "--no-pipeline"});
  if (!args.positional().empty()) args.fail("unexpected argument '" + args.positional()[0] + "'");
  const char* env_model = std::getenv("VOXCPM_MODEL");
  const std::string model_dir = args.value_or("--model", env_model ? env_model : "");
  if (model_dir.empty()) args.fail("no model: pass --model DIR or set VOXCPM_MODEL");
  const std::string out_dir = args.value_or("--out", "bench-report");
  const int runs = static_cast<int>(args.integer("--runs", 5, 1, 1000));
  const int warmup = static_cast<int>(args.integer("--warmup", 1, 0, 100));
  const int64_t steps = args.integer("--steps", 0, 0, 100000);
  const int64_t timesteps = args.integer("--timesteps", 10, 1, 1000);
  const double cfg = args.number("--cfg", 2.0, 0.0, 100.0);
  const int threads = static_cast<int>(args.integer("--threads", 0, 0, 1024));
  const uint64_t seed = static_cast<uint64_t>(args.integer("--seed", 1, 0, 0xffffffffLL));
  // The spellings the GStreamer element uses, so that its pipeline shares our cached model.
  std::string dtype = args.value_or("--dtype", "auto");
  if (dtype == "bf16") dtype = "bfloat16";
  if (dtype == "f32" || dtype == "fp32") dtype = "float32";
  const std::string device = args.value_or("--device", "cpu");

  std::vector<BenchText> texts;
  if (auto t = args.value("--text")) {
    if (args.value("--texts")) args.fail("--text and --texts exclude each other");
    texts.push_back({"custom", *t});
  } else {
    for (const std::string& id : split_list(args.value_or("--texts", "zh14,zh51,zh126,en60"))) {
      bool found = false;
      for (const BenchText& b : kTexts)
        if (b.id == id) {
          texts.push_back(b);
          found = true;
        }
      if (!found) args.fail("unknown text id '" + id + "' (zh14, zh51, zh126, en60)");
    }
  }
  if (texts.empty()) args.fail("no text to benchmark");
  std::vector<bool> modes;  // true: streaming
  for (const std::string& m : split_list(args.value_or("--modes", "streaming,non-streaming"))) {
    if (m == "streaming" || m == "stream") modes.push_back(true);
    else if (m == "non-streaming" || m == "whole") modes.push_back(false);
    else args.fail("unknown mode '" + m + "' (streaming, non-streaming)");
  }
  if (modes.empty()) args.fail("no mode to benchmark");

  try {
    use_cpu_threads(threads);
    if (mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) throw Error(out_dir + ": cannot create directory");
    json result;
    result["schema"] = "voxcpm-bench/1";
    result["date"] = iso_time();
    result["host"] = hostname();
    std::string command;
    for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
    result["command"] = command;
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::fprintf(stderr, "voxcpm-bench: OPENBLAS_CORETYPE=%s, %d torch threads\n", coretype ? coretype : "(unset)",
                 at::get_num_threads());

    // Load (timed), then the probe (so that its buffers do not inflate the model's peak RSS).
    LoadOptions lo;
    lo.device = device;
    lo.dtype = dtype;
    const double rss_before = current_rss_mb();
    const auto l0 = Clock::now();
    // Through the process-wide cache: the pipeline's voxcpmtts then uses this very instance.
    std::shared_ptr<const Model> model;
    on_own_thread(threads, [&] { model = ModelCache::global().get(model_dir, lo); });
    const double load_s = std::chrono::duration<double>(Clock::now() - l0).count();
    const double rss_after_load = current_rss_mb(), peak_after_load = hwm_rss_mb();
    const at::ScalarType compute = model->options().dtype;
    CostModel costs{model->config(), compute, timesteps};
    const Linear& probe_linear = model->enc_to_lm_proj;  // how the LM matrices are stored
    costs.weight_elem_bytes = static_cast<double>(
        probe_linear.packed.defined() ? probe_linear.packed.element_size() : probe_linear.weight.element_size());
    result["model"] = {{"dir", model_dir},
                       {"version", model->version_name()},
                       {"dtype", std::string(c10::toString(compute))},
                       {"weight_bytes_per_param", costs.weight_elem_bytes},
                       {"device", model->options().device.str()},
                       {"parameters", model->parameter_count()},
                       {"weight_bytes_estimate", costs.weight_bytes()},
                       {"sample_rate", model->sample_rate()},
                       {"samples_per_patch", model->samples_per_patch()},
                       {"load_s", load_s}};
    std::fprintf(stderr, "voxcpm-bench: loaded %s (%s, %s) in %.2f s, RSS %.0f MB\n", model->version_name().c_str(),
                 std::string(c10::toString(compute)).c_str(), model->options().device.str().c_str(), load_s,
                 rss_after_load);

    // The measurements run on a thread of their own, which exits before the pipeline runs (see
    // on_own_thread).
    double peak_generation = -1.0;
    size_t max_state = 0;
    on_own_thread(threads, [&] {
      MachineProbe probe;
      const bool have_probe = !args.flag("--no-probe");
      if (have_probe) {
        probe = probe_machine(model->options().device, args.flag("--quick-probe"));
        result["machine"] = probe.to_json();
        std::fprintf(stderr,
                     "voxcpm-bench: probe: read %.1f GB/s, GEMM f32 %.0f / bf16 %.0f GFLOP/s, GEMV f32 %.1f / bf16 "
                     "%.1f GB/s, linear(1 row) f32 %.1f / bf16 %.1f GB/s (OpenBLAS core %s)\n",
                     probe.mem_read_gbs, probe.gemm_f32_gflops, probe.gemm_bf16_gflops, probe.gemv_f32_gbs,
                     probe.gemv_bf16_gbs, probe.linear1_f32_gbs, probe.linear1_bf16_gbs,
                     probe.openblas_core.empty() ? "-" : probe.openblas_core.c_str());
      } else {
        result["machine"] = {{"torch_threads", at::get_num_threads()},
                             {"openblas_coretype_env", coretype ? coretype : "(unset)"}};
      }

      // From here on, the peak of the model plus running requests (the probe's buffers are freed).
      const bool hwm_reset = reset_peak_rss();

      GenerateOptions base;
      base.inference_timesteps = timesteps;
      base.cfg_value = cfg;
      if (steps > 0) {
        // The stop head may end a request only after min_len+1 patches, and max_len caps it.
        base.min_len = steps - 1;
        base.max_len = steps;
        base.retry_badcase = false;
      }
      result["settings"] = {{"runs", runs},           {"warmup", warmup}, {"steps", steps},
                            {"timesteps", timesteps}, {"cfg", cfg},       {"threads", at::get_num_threads()},
                            {"seed", seed},           {"locdit_calls_per_step", costs.locdit_calls()},
                            {"openblas_coretype", coretype ? coretype : "(unset)"}};

      json text_list = json::array();
      for (const BenchText& t : texts)
        text_list.push_back({{"id", t.id},
                             {"text", t.text},
                             {"chars", utf8_chars(t.text)},
                             {"tokens", static_cast<int64_t>(model->tokenizer().encode(t.text).size())}});
      result["texts"] = text_list;

      for (int w = 0; w < warmup; ++w) {
        GenerateOptions o = base;
        o.seed = seed;
        o.min_len = 1;
        o.max_len = 2;
        o.retry_badcase = false;
        run_once(model, texts.front().text, o, true);
      }

      // Engine API runs. The modes alternate run by run (streaming, non-streaming, streaming, ...)
      // so that a slow minute of a shared host lands on both, and each run of one mode has a partner
      // of the other with the same seed: their ratio is the streaming overhead.
      json results = json::array();
      json paired = json::array();
      // Per-step stages, streaming runs only (the roofline table): every run's time per call, and
      // all runs pooled.
      std::array<std::vector<double>, kStageCount> step_samples;
      StageTimes all_steps;
      double ctx_sum = 0;
      int64_t ctx_n = 0;
      struct ModeRuns {
        json runs = json::array();
        std::vector<double> ttfa, total, audio, rtf, step, nsteps;
        StageTimes sum;
      };
      // The machine's peaks, measured again before every pair of runs: a shared host's memory rate
      // moves by the minute (30-64 GB/s seen here) and its arithmetic rate with what its neighbours
      // run, so the stages are read against the peaks of the minutes they ran in (the medians of
      // these), with the start probe's figures beside them. The peak RSS leaves the probe's buffers
      // out: it is read before each probe and reset after it.
      std::vector<double> mem_in_run, gemm_f32_in_run, gemm_compute_in_run;
      double peak_between_probes = -1.0;
      const bool quick_probe = args.flag("--quick-probe");
      auto probe_between_runs = [&] {
        if (!have_probe) return;
        if (hwm_reset) peak_between_probes = std::max(peak_between_probes, hwm_rss_mb());
        const c10::Device d = model->options().device;
        mem_in_run.push_back(measure_read_gbs(d, (quick_probe ? 32 : 256) * (int64_t{1} << 20), 3, 0));
        gemm_f32_in_run.push_back(measure_gemm_gflops(d, at::kFloat, quick_probe ? 256 : 2048, 3, 0));
        gemm_compute_in_run.push_back(compute == at::kFloat ? gemm_f32_in_run.back()
                                                            : measure_gemm_gflops(d, compute, quick_probe ? 128 : 1024, 3, 0));
        if (hwm_reset) reset_peak_rss();
      };
      for (size_t ti = 0; ti < texts.size(); ++ti) {
        const BenchText& t = texts[ti];
        const int64_t tokens = text_list[ti]["tokens"].get<int64_t>();
        std::vector<ModeRuns> acc(modes.size());
        for (int r = 0; r < runs; ++r) {
          probe_between_runs();
          for (size_t mi = 0; mi < modes.size(); ++mi) {
            const bool streaming = modes[mi];
            ModeRuns& m = acc[mi];
            GenerateOptions o = base;
            o.seed = seed + static_cast<uint64_t>(r);
            RunResult rr = run_once(model, t.text, o, streaming);
            if (steps > 0 && rr.steps != steps)
              std::fprintf(stderr,
                           "voxcpm-bench: warning: %s made %lld patches, not %lld (the length cap of this text is "
                           "min(6*tokens+10, max_len))\n",
                           t.id.c_str(), static_cast<long long>(rr.steps), static_cast<long long>(steps));
            max_state = std::max(max_state, rr.state_bytes);
            const double r_rtf = rr.audio_s > 0 ? rr.total_s / rr.audio_s : 0;
            m.ttfa.push_back(rr.ttfa_s);
            m.total.push_back(rr.total_s);
            m.audio.push_back(rr.audio_s);
            m.rtf.push_back(r_rtf);
            m.step.push_back(rr.step_s);
            m.nsteps.push_back(static_cast<double>(rr.steps));
            for (int i = 0; i < kStageCount; ++i) {
              m.sum.seconds[i] += rr.stages.seconds[i];
              m.sum.calls[i] += rr.stages.calls[i];
            }
            if (streaming) {
              for (Stage s : kStepStages) {
                const size_t i = static_cast<size_t>(s);
                if (rr.stages.count(s) == 0) continue;
                all_steps.seconds[i] += rr.stages[s];
                all_steps.calls[i] += rr.stages.count(s);
                step_samples[i].push_back(rr.stages[s] / static_cast<double>(rr.stages.count(s)));
              }
              ctx_sum += static_cast<double>(tokens + 1) + static_cast<double>(rr.steps) / 2;
              ++ctx_n;
            }
            m.runs.push_back({{"ttfa_s", rr.ttfa_s},
                              {"total_s", rr.total_s},
                              {"audio_s", rr.audio_s},
                              {"rtf", r_rtf},
                              {"steps", rr.steps},
                              {"step_s", rr.step_s},
                              {"stages", stages_json(rr.stages)}});
            std::fprintf(stderr, "voxcpm-bench: %-6s %-13s run %d: first audio %.3f s, total %.3f s, %lld steps, %.2f s audio, RTF %.2f\n",
                         t.id.c_str(), streaming ? "streaming" : "non-streaming", r, rr.ttfa_s, rr.total_s,
                         static_cast<long long>(rr.steps), rr.audio_s, r_rtf);
          }
        }
        for (size_t mi = 0; mi < modes.size(); ++mi) {
          const ModeRuns& m = acc[mi];
          json entry = {{"text", t.id}, {"chars", utf8_chars(t.text)}, {"mode", modes[mi] ? "streaming" : "non-streaming"}};
          entry["runs"] = m.runs;
          entry["summary"] = {{"ttfa_s", summary_json(m.ttfa)},   {"total_s", summary_json(m.total)},
                              {"audio_s", summary_json(m.audio)}, {"rtf", summary_json(m.rtf)},
                              {"step_s", summary_json(m.step)},   {"steps", summary_json(m.nsteps)}};
          // Mean time per call of each stage over the runs.
          json st = json::object();
          for (int i = 0; i < kStageCount; ++i) {
            const Stage s = static_cast<Stage>(i);
            if (m.sum.count(s) == 0) continue;
            st[stage_name(s)] = {{"mean_s_per_call", m.sum[s] / static_cast<double>(m.sum.count(s))},
                                 {"calls_per_run", static_cast<double>(m.sum.count(s)) / runs},
                                 {"mean_s_per_run", m.sum[s] / runs}};
          }
          entry["stages"] = st;
          results.push_back(entry);
        }
        // Streaming total / non-streaming total of the runs made back to back with the same seed.
        const auto s_it = std::find(modes.begin(), modes.end(), true), w_it = std::find(modes.begin(), modes.end(), false);
        if (s_it != modes.end() && w_it != modes.end()) {
          const ModeRuns& s = acc[static_cast<size_t>(s_it - modes.begin())];
          const ModeRuns& w = acc[static_cast<size_t>(w_it - modes.begin())];
          std::vector<double> ratio;
          for (size_t r = 0; r < s.total.size() && r < w.total.size(); ++r)
            if (w.total[r] > 0) ratio.push_back(s.total[r] / w.total[r]);
          paired.push_back({{"text", t.id}, {"total_ratio", summary_json(ratio)}, {"ratios", ratio}});
        }
      }
      result["results"] = results;
      result["streaming_vs_non_streaming"] = paired;

      // Per-step stages against the probe: achieved rates and roofline, from the median over the
      // streaming runs of each run's time per call (a slow minute moves a mean, not a median).
      json roof = json::array();
      const double ctx = ctx_n ? ctx_sum / static_cast<double>(ctx_n) : 64;
      const double gemm_peak_start = compute == at::kFloat ? probe.gemm_f32_gflops : probe.gemm_bf16_gflops;
      const bool between = !mem_in_run.empty();
      const double mem_gbs = between ? summarize(mem_in_run).median : probe.mem_read_gbs;
      const double gemm_peak = between ? summarize(gemm_compute_in_run).median : gemm_peak_start;
      const double gemm_f32 = between ? summarize(gemm_f32_in_run).median : probe.gemm_f32_gflops;
      double step_total = 0, step_mean = 0;
      for (Stage s : kStepStages) {
        const size_t i = static_cast<size_t>(s);
        if (!all_steps.count(s)) continue;
        step_total += summarize(step_samples[i]).median;
        step_mean += all_steps[s] / static_cast<double>(all_steps.count(s));
      }
      for (Stage s : kStepStages) {
        const size_t i = static_cast<size_t>(s);
        if (!all_steps.count(s)) continue;
        const Summary per_run = summarize(step_samples[i]);
        const double per_call = per_run.median;
        const std::vector<Cost> parts = costs.stage_parts(s, static_cast<int64_t>(ctx));
        const Cost c = total_of(parts);
        const bool vae = s == Stage::VaeDecode;  // the AudioVAE is float32
        const double peak = vae ? gemm_f32 : gemm_peak, peak_start = vae ? probe.gemm_f32_gflops : gemm_peak_start;
        json row = {{"stage", stage_name(s)},
                    {"median_s", per_call},
                    {"mean_s", all_steps[s] / static_cast<double>(all_steps.count(s))},
                    {"min_s", per_run.min},
                    {"max_s", per_run.max},
                    {"share", step_total > 0 ? per_call / step_total : 0},
                    {"parts", parts.size()},
                    {"bytes", c.bytes},
                    {"flops", c.flops},
                    {"achieved_gbs", per_call > 0 ? c.bytes / per_call / 1e9 : 0},
                    {"achieved_gflops", per_call > 0 ? c.flops / per_call / 1e9 : 0}};
        if (have_probe) {
          const double rl = roofline_seconds(parts, mem_gbs, peak);
          row["roofline_s"] = rl;
          row["vs_roofline"] = rl > 0 ? per_call / rl : 0;
          const double rl_start = roofline_seconds(parts, probe.mem_read_gbs, peak_start);
          row["vs_roofline_start_probe"] = rl_start > 0 ? per_call / rl_start : 0;
          // The bound of the stage's whole work at once, as if its parts could overlap.
          const double whole = roofline_seconds(c, mem_gbs, peak);
          row["roofline_whole_s"] = whole;
          row["vs_roofline_whole"] = whole > 0 ? per_call / whole : 0;
        }
        roof.push_back(row);
      }
      json roof_total = {{"median_s", step_total}, {"mean_s", step_mean}, {"context", ctx}};
      if (have_probe) {
        double rl = 0;
        for (const auto& row : roof) rl += row["roofline_s"].get<double>();
        roof_total["roofline_s"] = rl;
        roof_total["vs_roofline"] = rl > 0 ? step_total / rl : 0;
        roof_total["roofline_rtf"] =
            rl / (static_cast<double>(model->samples_per_patch()) / static_cast<double>(model->sample_rate()));
      }
      result["roofline"] = {{"stages", roof},
                            {"step", roof_total},
                            {"gemm_peak_gflops", gemm_peak},
                            {"mem_gbs", mem_gbs},
                            {"mem_gbs_start_probe", probe.mem_read_gbs},
                            {"gemm_f32_gflops", gemm_f32},
                            {"gemm_peak_gflops_start_probe", gemm_peak_start},
                            {"gemm_f32_gflops_start_probe", probe.gemm_f32_gflops},
                            {"mem_gbs_between_runs", summary_json(mem_in_run)},
                            {"mem_gbs_between_runs_all", mem_in_run},
                            {"gemm_peak_gflops_between_runs", summary_json(gemm_compute_in_run)},
                            {"gemm_f32_gflops_between_runs", summary_json(gemm_f32_in_run)}};

      // Before the pipeline adds its buffers.
      peak_generation = hwm_reset ? std::max(peak_between_probes, hwm_rss_mb()) : -1.0;
    });

    // GStreamer pipeline: time to first audio through appsrc ! voxcpmtts ! appsink.
    json pj = {{"available", false}};
    if (args.flag("--no-pipeline")) {
      pj["note"] = "skipped (--no-pipeline)";
    } else {
      PipelineSettings ps;
      ps.model_dir = model_dir;
      ps.device = device;
      ps.dtype = dtype;
      ps.threads = threads;
      ps.timesteps = static_cast<int>(timesteps);
      ps.cfg = cfg;
      ps.seed = static_cast<unsigned>(seed);
      if (steps > 0) {
        ps.min_len = static_cast<int>(steps - 1);
        ps.max_len = static_cast<int>(steps);
      }
      ps.plugin_dir = args.value_or("--plugin-dir", program_dir(argv[0]) + "/../gst");
      Pipeline pipe(ps);
      pj["available"] = pipe.available();
      pj["note"] = pipe.available() ? "appsrc ! voxcpmtts ! appsink, text pushed as one buffer" : pipe.note();
      if (pipe.available()) {
        json pres = json::array();
        for (const BenchText& t : texts) {
          std::vector<double> ttfa, total;
          json run_list = json::array();
          for (int r = 0; r < runs; ++r) {
            PipelineRun pr = pipe.run(t.text);
            ttfa.push_back(pr.ttfa_s);
            total.push_back(pr.total_s);
            const double audio_s = pr.rate > 0 ? static_cast<double>(pr.samples) / pr.rate : 0;
            run_list.push_back({{"ttfa_s", pr.ttfa_s}, {"total_s", pr.total_s}, {"audio_s", audio_s}});
            std::fprintf(stderr, "voxcpm-bench: %-6s pipeline      run %d: first audio %.3f s, total %.3f s\n",
                         t.id.c_str(), r, pr.ttfa_s, pr.total_s);
          }
          pres.push_back({{"text", t.id},
                          {"runs", run_list},
                          {"summary", {{"ttfa_s", summary_json(ttfa)}, {"total_s", summary_json(total)}}}});
        }
        pj["results"] = pres;
        // The shared model: a second element on the same model should cost only its own state.
        const double second = pipe.second_element_mb(texts.front().text, current_rss_mb);
        pj["second_element_mb"] = second;
        std::fprintf(stderr, "voxcpm-bench: a second voxcpmtts on the same model adds %.1f MB RSS\n", second);
      }
    }
    result["pipeline"] = pj;

    result["memory"] = {{"rss_before_load_mb", rss_before},
                        {"rss_after_load_mb", rss_after_load},
                        {"peak_rss_after_load_mb", peak_after_load},
                        {"peak_rss_generation_mb", peak_generation},
                        {"peak_rss_mb", peak_rss_mb()},
                        {"weights_mb_estimate", costs.weight_bytes() / (1024.0 * 1024.0)},
                        {"request_state_mb", static_cast<double>(max_state) / (1024.0 * 1024.0)}};

    std::string why;
    std::vector<std::string> plots;
    if (args.flag("--no-plots")) {
      why = "skipped (--no-plots)";
    } else {
      plots = write_plots(result, out_dir, &why);
    }
    result["plots"] = plots;
    if (plots.empty()) result["plots_note"] = why;

    const std::string json_path = out_dir + "/bench.json", md_path = out_dir + "/bench.md";
    {
      std::ofstream f(json_path, std::ios::trunc);
      if (!f || !(f << result.dump(2) << "\n")) throw Error(json_path + ": cannot write");
    }
    {
      std::ofstream f(md_path, std::ios::trunc);
      if (!f || !(f << markdown_report(result))) throw Error(md_path + ": cannot write");
    }
    std::fprintf(stderr, "voxcpm-bench: wrote %s, %s%s%s\n", json_path.c_str(), md_path.c_str(),
                 plots.empty() ? " (no plots: " : "", plots.empty() ? (why + ")").c_str() : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "voxcpm-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
