// voxcpm-soak: concurrency soak of the voxcpmtts element (issue 8). P pipelines
// `appsrc ! voxcpmtts ! appsink`, one per thread, share one model and each speak U short varied
// texts, every utterance with its own seed (set before its text is pushed; the element reads it
// when the utterance starts). Every utterance's samples are kept; then the same utterances run one
// after the other in a single pipeline and must be bit-identical. Prints counts, wall times,
// peak RSS (VmHWM) and the RSS trend between the first and the last 100 utterances; exits non-zero
// on any mismatch, error, utterance that does not finish in time, or (with GST_TRACERS=leaks)
// leaked GStreamer object.
//
//   voxcpm-soak --model DIR [--pipelines 8] [--utterances 200] [--n-threads 1] [--timesteps 10]
//               [--max-len 8] [--no-reference] [--timeout 600]
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "voxcpm/model_cache.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model;
  int pipelines = 8, utterances = 200, n_threads = 1, timesteps = 10, max_len = 8;
  bool reference = true;
  int timeout_s = 600;  // per utterance: a loaded 2-core machine with 8 pipelines is slow
};

// kB of a /proc/self/status field (VmRSS, VmHWM).
long status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return atol(line.c_str() + n + 1);
  return -1;
}

// The j-th utterance of pipeline i: 2..7 words and a mark, and its seed.
struct Job {
  std::string text;
  int64_t seed;
};
Job make_job(int i, int j) {
  static const char* words[] = {"hello", "world", "speech", "model", "stream", "buffer", "quiet", "river", "seven",
                                "blue",  "north", "paper",  "cloud", "gentle", "signal", "Zürich", "café", "ten"};
  static const char* marks[] = {".", "!", "?", ",", ";", "..."};
  std::mt19937_64 rng(static_cast<uint64_t>(i) * 1000003u + static_cast<uint64_t>(j));
  Job job;
  const int n = 2 + static_cast<int>(rng() % 6);
  for (int k = 0; k < n; ++k) {
    if (k) job.text += ' ';
    job.text += words[rng() % (sizeof words / sizeof *words)];
  }
  job.text[0] = static_cast<char>(toupper(job.text[0]));
  job.text += marks[rng() % (sizeof marks / sizeof *marks)];
  job.seed = 1000 + static_cast<int64_t>(i) * 100000 + j;
  return job;
}

// One `appsrc ! voxcpmtts ! appsink` pipeline speaking one utterance at a time.
class Speaker {
 public:
  Speaker(const Options& o, std::string* error) {
    const std::string desc =
        "appsrc name=in format=time caps=text/x-raw,format=utf8 ! voxcpmtts name=v model-path=\"" + o.model +
        "\" device=cpu n-threads=" + std::to_string(o.n_threads) + " min-len=2 max-len=" + std::to_string(o.max_len) +
        " inference-timesteps=" + std::to_string(o.timesteps) +
        " ! appsink name=out sync=false caps=audio/x-raw,format=F32LE";
    GError* err = nullptr;
    pipe_ = gst_parse_launch(desc.c_str(), &err);
    if (!pipe_) {
      *error = err ? err->message : "gst_parse_launch failed";
      g_clear_error(&err);
      return;
    }
    in_ = gst_bin_get_by_name(GST_BIN(pipe_), "in");
    tts_ = gst_bin_get_by_name(GST_BIN(pipe_), "v");
    out_ = gst_bin_get_by_name(GST_BIN(pipe_), "out");
    bus_ = gst_element_get_bus(pipe_);
    if (gst_element_set_state(pipe_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) *error = take_error();
  }
  ~Speaker() {
    if (!pipe_) return;
    gst_app_src_end_of_stream(GST_APP_SRC(in_));
    gst_element_set_state(pipe_, GST_STATE_NULL);
    gst_bus_set_flushing(bus_, TRUE);
    gst_object_unref(bus_);
    gst_object_unref(out_);
    gst_object_unref(tts_);
    gst_object_unref(in_);
    gst_object_unref(pipe_);
  }

  // Speaks `job` and returns its samples; false with `error` set on failure or timeout.
  bool speak(const Job& job, int timeout_s, std::vector<float>* samples, std::string* error) {
    g_object_set(tts_, "seed", static_cast<gint64>(job.seed), NULL);
    GstBuffer* buf = gst_buffer_new_memdup(job.text.data(), job.text.size());
    if (gst_app_src_push_buffer(GST_APP_SRC(in_), buf) != GST_FLOW_OK) {
      *error = "appsrc refused the text";
      return false;
    }
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        *error = "utterance not finished after " + std::to_string(timeout_s) + " s: '" + job.text + "'";
        return false;
      }
      GstMessage* msg = gst_bus_timed_pop_filtered(
          bus_, static_cast<GstClockTime>(left),
          static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING));
      if (!msg) continue;
      if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ELEMENT) {
        *error = describe(msg);
        gst_message_unref(msg);
        return false;
      }
      const GstStructure* s = gst_message_get_structure(msg);
      if (!gst_structure_has_name(s, "voxcpm/synthesized-audio")) {
        gst_message_unref(msg);
        continue;
      }
      guint64 seed = 0;
      gst_structure_get_uint64(s, "seed", &seed);
      const std::string text = gst_structure_get_string(s, "text");
      gst_message_unref(msg);
      if (static_cast<int64_t>(seed) != job.seed || text != job.text) {
        *error = "message for another utterance: '" + text + "' seed " + std::to_string(seed);
        return false;
      }
      break;
    }
    // Every chunk was queued in the appsink before the message was posted.
    samples->clear();
    while (GstSample* smp = gst_app_sink_try_pull_sample(GST_APP_SINK(out_), 0)) {
      const GstStructure* caps = gst_caps_get_structure(gst_sample_get_caps(smp), 0);
      gst_structure_get_int(caps, "rate", &rate_);
      GstMapInfo map;
      GstBuffer* b = gst_sample_get_buffer(smp);
      if (gst_buffer_map(b, &map, GST_MAP_READ)) {
        const auto* f = reinterpret_cast<const float*>(map.data);
        samples->insert(samples->end(), f, f + map.size / sizeof(float));
        gst_buffer_unmap(b, &map);
      }
      gst_sample_unref(smp);
    }
    return true;
  }
  int rate() const { return rate_; }

 private:
  std::string take_error() {
    GstMessage* msg = gst_bus_pop_filtered(bus_, GST_MESSAGE_ERROR);
    std::string e = msg ? describe(msg) : "state change failed";
    if (msg) gst_message_unref(msg);
    return e;
  }
  static std::string describe(GstMessage* msg) {
    GError* err = nullptr;
    gchar* debug = nullptr;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
      gst_message_parse_error(msg, &err, &debug);
    else
      gst_message_parse_warning(msg, &err, &debug);
    std::string e = std::string(GST_MESSAGE_TYPE_NAME(msg)) + ": " + err->message + " (" + (debug ? debug : "") + ")";
    g_error_free(err);
    g_free(debug);
    return e;
  }
  GstElement *pipe_ = nullptr, *in_ = nullptr, *tts_ = nullptr, *out_ = nullptr;
  GstBus* bus_ = nullptr;
  int rate_ = 0;
};

// RSS after each completed utterance (in completion order), less the samples kept for the
// comparison (`kept_kb`), for the leak trend.
struct RssTrace {
  std::mutex m;
  std::vector<long> kb;
  void add(long kept_kb = 0) {
    const long v = status_kb("VmRSS") - kept_kb;
    std::lock_guard<std::mutex> lk(m);
    kb.push_back(v);
  }
  // Mean RSS over the first and last `n` utterances.
  std::pair<double, double> ends(size_t n) {
    std::lock_guard<std::mutex> lk(m);
    n = std::min(n, kb.size());
    double a = 0, b = 0;
    for (size_t i = 0; i < n; ++i) {
      a += kb[i];
      b += kb[kb.size() - 1 - i];
    }
    return {n ? a / n : 0, n ? b / n : 0};
  }
};

struct Totals {
  std::atomic<uint64_t> utterances{0}, samples{0};
};

void print_phase(const char* name, double seconds, const Totals& t, RssTrace& rss, int rate) {
  const auto [first, last] = rss.ends(100);
  const double audio_s = rate > 0 ? static_cast<double>(t.samples) / rate : 0;
  printf("%s: %llu utterances, %.1f s of audio in %.1f s wall (%.2fx real time); RSS (less the samples kept) "
         "mean over the first 100 utterances %.1f MB, last 100 %.1f MB (growth %+.1f MB); peak RSS (VmHWM) so far "
         "%.1f MB\n",
         name, static_cast<unsigned long long>(t.utterances.load()), audio_s, seconds,
         seconds > 0 ? audio_s / seconds : 0, first / 1024, last / 1024, (last - first) / 1024,
         status_kb("VmHWM") / 1024.0);
  fflush(stdout);
}

std::atomic<bool> leaks_reported{false};
void watch_log(const gchar* domain, GLogLevelFlags level, const gchar* message, gpointer) {
  if (message && strstr(message, "Leaks detected")) leaks_reported = true;
  g_log_default_handler(domain, level, message, nullptr);
}

int usage(const char* argv0) {
  fprintf(stderr,
          "usage: %s --model DIR [--pipelines 8] [--utterances 200] [--n-threads 1] [--timesteps 10] "
          "[--max-len 8] [--no-reference] [--timeout 600]\n",
          argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--no-reference") o.reference = false;
    else if (a == "--model" && (v = next())) o.model = v;
    else if (a == "--pipelines" && (v = next())) o.pipelines = atoi(v);
    else if (a == "--utterances" && (v = next())) o.utterances = atoi(v);
    else if (a == "--n-threads" && (v = next())) o.n_threads = atoi(v);
    else if (a == "--timesteps" && (v = next())) o.timesteps = atoi(v);
    else if (a == "--max-len" && (v = next())) o.max_len = atoi(v);
    else if (a == "--timeout" && (v = next())) o.timeout_s = atoi(v);
    else return usage(argv[0]);
  }
  if (o.model.empty() || o.pipelines < 1 || o.utterances < 1) return usage(argv[0]);
  printf("soak: %d pipelines x %d utterances, model %s, n-threads %d, %d timesteps, max-len %d\n", o.pipelines,
         o.utterances, o.model.c_str(), o.n_threads, o.timesteps, o.max_len);
  fflush(stdout);
  const uint64_t loads_before = voxcpm::ModelCache::global().stats().loads;
  std::atomic<int> rate{0};
  std::vector<std::string> failures;
  std::mutex failures_m;
  auto fail = [&](const std::string& f) {
    std::lock_guard<std::mutex> lk(failures_m);
    if (failures.size() < 20) failures.push_back(f);
  };

  // Phase 1: every pipeline in its own thread, all at once.
  std::vector<std::vector<std::vector<float>>> got(o.pipelines, std::vector<std::vector<float>>(o.utterances));
  Totals t1;
  RssTrace rss1;
  std::atomic<uint64_t> kept_bytes{0};
  const auto t0 = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < o.pipelines; ++i) {
      threads.emplace_back([&, i] {
        std::string error;
        Speaker sp(o, &error);
        if (!error.empty()) return fail("pipeline " + std::to_string(i) + ": " + error);
        for (int j = 0; j < o.utterances; ++j) {
          if (!sp.speak(make_job(i, j), o.timeout_s, &got[i][j], &error))
            return fail("pipeline " + std::to_string(i) + " utterance " + std::to_string(j) + ": " + error);
          got[i][j].shrink_to_fit();
          t1.utterances++;
          t1.samples += got[i][j].size();
          rate = sp.rate();
          kept_bytes += got[i][j].size() * sizeof(float);
          rss1.add(static_cast<long>(kept_bytes / 1024));
        }
      });
    }
    for (std::thread& th : threads) th.join();
  }
  const double wall1 = std::chrono::duration<double>(Clock::now() - t0).count();
  const uint64_t loads_concurrent = voxcpm::ModelCache::global().stats().loads - loads_before;
  print_phase("concurrent", wall1, t1, rss1, rate);

  // Phase 2: the same utterances, one after the other in one pipeline, compared bit for bit.
  uint64_t identical = 0, compared = 0;
  double worst = 0;
  if (o.reference && failures.empty()) {
    Totals t2;
    RssTrace rss2;
    const auto t2s = Clock::now();
    std::string error;
    Speaker sp(o, &error);
    if (!error.empty()) fail("reference pipeline: " + error);
    std::vector<float> ref;
    for (int i = 0; i < o.pipelines && error.empty(); ++i) {
      for (int j = 0; j < o.utterances; ++j) {
        if (!sp.speak(make_job(i, j), o.timeout_s, &ref, &error)) {
          fail("reference utterance " + std::to_string(i) + "/" + std::to_string(j) + ": " + error);
          break;
        }
        t2.utterances++;
        t2.samples += ref.size();
        rss2.add(static_cast<long>(kept_bytes / 1024));
        compared++;
        const std::vector<float>& c = got[i][j];
        if (c.size() == ref.size() && (ref.empty() || !memcmp(c.data(), ref.data(), ref.size() * sizeof(float)))) {
          identical++;
          continue;
        }
        double d = c.size() == ref.size() ? 0 : INFINITY;
        for (size_t k = 0; k < std::min(c.size(), ref.size()); ++k) d = std::max(d, double(std::fabs(c[k] - ref[k])));
        worst = std::max(worst, d);
        fail("pipeline " + std::to_string(i) + " utterance " + std::to_string(j) + " ('" + make_job(i, j).text +
             "'): " + std::to_string(c.size()) + " samples concurrent vs " + std::to_string(ref.size()) +
             " single-threaded, max |diff| " + std::to_string(d));
      }
    }
    print_phase("single-threaded", std::chrono::duration<double>(Clock::now() - t2s).count(), t2, rss2, rate);
    printf("identical: %llu of %llu utterances bit-identical to the single-threaded run (worst max |diff| %g)\n",
           static_cast<unsigned long long>(identical), static_cast<unsigned long long>(compared), worst);
  }
  printf("model loads during the concurrent phase: %llu (%d pipelines sharing it)\n",
         static_cast<unsigned long long>(loads_concurrent), o.pipelines);
  if (loads_concurrent > 1) fail("the model was loaded " + std::to_string(loads_concurrent) + " times");
  if (t1.utterances != static_cast<uint64_t>(o.pipelines) * o.utterances)
    fail("only " + std::to_string(t1.utterances.load()) + " concurrent utterances finished");

  // With GST_TRACERS=leaks, objects still alive at gst_deinit() are leaks.
  g_log_set_default_handler(watch_log, nullptr);
  g_log_set_handler("GStreamer", G_LOG_LEVEL_WARNING, watch_log, nullptr);
  gst_deinit();
  if (leaks_reported) fail("GStreamer objects leaked (GST_DEBUG=GST_TRACER:7 lists them)");
  for (const std::string& f : failures) printf("FAIL: %s\n", f.c_str());
  printf("%s\n", failures.empty() ? "soak passed" : "soak FAILED");
  return failures.empty() ? 0 : 1;
}
