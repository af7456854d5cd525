// Hostile model directories in the plugin (issue 8): a missing, truncated or inconsistent model
// file fails NULL→READY with a RESOURCE element error (NOT_FOUND: missing; SETTINGS: broken)
// whose debug text names the file and the key or tensor, posts a PROGRESS error, allocates
// nothing big, and leaves the element usable with a good model afterwards.
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "gst_support.h"
#include "support/bad_model.h"
#include "support/golden.h"

namespace voxcpm::gsttest {
namespace {

using json = nlohmann::json;

// Sets `factory` with model-path `dir` to READY; expects a failure with a RESOURCE error `code`
// whose text holds `needle`, and a PROGRESS error message. Returns the wall time of the attempt.
double expect_ready_fails(const char* factory, const std::string& dir, GstResourceError code,
                          const std::string& needle) {
  GstElement* el = gst_element_factory_make(factory, nullptr);
  EXPECT_NE(el, nullptr);
  if (!el) return 0;
  g_object_set(el, "model-path", dir.c_str(), "device", "cpu", NULL);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(el, bus);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(gst_element_set_state(el, GST_STATE_READY), GST_STATE_CHANGE_FAILURE) << factory << " " << needle;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bool progress_error = false, error = false;
  while (GstMessage* m = gst_bus_pop(bus)) {
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_PROGRESS) {
      GstProgressType type;
      gst_message_parse_progress(m, &type, nullptr, nullptr);
      progress_error |= type == GST_PROGRESS_TYPE_ERROR;
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR && !error) {
      error = true;
      GError* err = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_error(m, &err, &debug);
      EXPECT_TRUE(g_error_matches(err, GST_RESOURCE_ERROR, code))
          << needle << ": " << g_quark_to_string(err->domain) << " " << err->code << " " << err->message;
      const std::string all = std::string(err->message) + " | " + (debug ? debug : "");
      EXPECT_NE(all.find(needle), std::string::npos) << all;
      g_error_free(err);
      g_free(debug);
    }
    gst_message_unref(m);
  }
  EXPECT_TRUE(error) << "no element error: " << needle;
  EXPECT_TRUE(progress_error) << "no PROGRESS error: " << needle;
  gst_element_set_state(el, GST_STATE_NULL);
  gst_element_set_bus(el, nullptr);
  gst_object_unref(el);
  gst_object_unref(bus);
  return seconds;
}

// A broken copy of tiny-v1.5 (or v1): `damage` edits the copy and returns what the error must name.
struct Case {
  const char* what;
  const char* version;
  GstResourceError code;
  std::function<std::string(const std::string& dir)> damage;
};

std::vector<Case> cases() {
  auto remove = [](const char* f) {
    return [f](const std::string& dir) {
      std::remove((dir + "/" + f).c_str());
      return std::string(f);
    };
  };
  auto cut = [](const char* f, double fraction) {
    return [f, fraction](const std::string& dir) {
      const uint64_t size = test::file_size(dir + "/" + f);
      test::truncate_file(dir + "/" + f, static_cast<uint64_t>(static_cast<double>(size) * fraction));
      return std::string(f);
    };
  };
  auto config = [](const char* pointer, json value, const char* key) {
    return [=](const std::string& dir) {
      test::edit_config(dir, [&](json& j) { j[json::json_pointer(pointer)] = value; });
      return std::string("config.json: key '") + key + "'";
    };
  };
  const std::string up = "base_lm.layers.0.mlp.up_proj.weight";
  std::mt19937 rng(8);  // where the truncations cut
  auto frac = [&rng] { return std::uniform_real_distribution<double>(0.05, 0.95)(rng); };
  return {
      {"config.json missing", "v1.5", GST_RESOURCE_ERROR_NOT_FOUND, remove("config.json")},
      {"model.safetensors missing", "v1.5", GST_RESOURCE_ERROR_NOT_FOUND, remove("model.safetensors")},
      {"pytorch_model.bin missing", "v1", GST_RESOURCE_ERROR_NOT_FOUND, remove("pytorch_model.bin")},
      {"audiovae.pth missing", "v1.5", GST_RESOURCE_ERROR_NOT_FOUND, remove("audiovae.pth")},
      {"tokenizer.json missing", "v1.5", GST_RESOURCE_ERROR_NOT_FOUND, remove("tokenizer.json")},
      {"config.json truncated", "v1.5", GST_RESOURCE_ERROR_SETTINGS, cut("config.json", frac())},
      {"tokenizer.json truncated", "v1.5", GST_RESOURCE_ERROR_SETTINGS, cut("tokenizer.json", frac())},
      {"tokenizer_config.json truncated", "v1.5", GST_RESOURCE_ERROR_SETTINGS, cut("tokenizer_config.json", frac())},
      {"model.safetensors truncated", "v1.5", GST_RESOURCE_ERROR_SETTINGS, cut("model.safetensors", frac())},
      {"pytorch_model.bin truncated", "v1", GST_RESOURCE_ERROR_SETTINGS, cut("pytorch_model.bin", frac())},
      {"audiovae.pth truncated", "v1.5", GST_RESOURCE_ERROR_SETTINGS, cut("audiovae.pth", frac())},
      {"tensor of the wrong shape", "v1.5", GST_RESOURCE_ERROR_SETTINGS,
       [up](const std::string& dir) {
         test::edit_tensors(dir + "/model.safetensors", [&](TensorMap& t) { t[up] = t[up].t().contiguous(); });
         return "tensor '" + up + "' has shape [64, 128], expected [128, 64]";
       }},
      {"tensor of dtype bool", "v1.5", GST_RESOURCE_ERROR_SETTINGS,
       [up](const std::string& dir) {
         test::edit_tensors(dir + "/model.safetensors", [&](TensorMap& t) { t[up] = t[up].to(at::kBool); });
         return "tensor '" + up + "' has dtype Bool";
       }},
      {"tensor of dtype int64", "v1", GST_RESOURCE_ERROR_SETTINGS,
       [up](const std::string& dir) {
         test::edit_tensors(dir + "/pytorch_model.bin", [&](TensorMap& t) { t[up] = t[up].to(at::kLong); });
         return "tensor '" + up + "' has dtype Long";
       }},
      {"hidden_size 1e9", "v1.5", GST_RESOURCE_ERROR_SETTINGS, config("/lm_config/hidden_size", 1000000000, "lm_config.hidden_size")},
      {"num_hidden_layers 1e6", "v1.5", GST_RESOURCE_ERROR_SETTINGS,
       config("/lm_config/num_hidden_layers", 1000000, "lm_config.num_hidden_layers")},
      {"vocab_size 1e12", "v1.5", GST_RESOURCE_ERROR_SETTINGS,
       config("/lm_config/vocab_size", int64_t{1000000000000}, "lm_config.vocab_size")},
      {"max_position_embeddings 1e12", "v1.5", GST_RESOURCE_ERROR_SETTINGS,
       config("/lm_config/max_position_embeddings", int64_t{1000000000000}, "lm_config.max_position_embeddings")},
      {"patch_size 0", "v1.5", GST_RESOURCE_ERROR_SETTINGS, config("/patch_size", 0, "patch_size")},
      {"patch_size -4", "v1.5", GST_RESOURCE_ERROR_SETTINGS, config("/patch_size", -4, "patch_size")},
      {"hidden_size \"NaN\"", "v1.5", GST_RESOURCE_ERROR_SETTINGS, config("/lm_config/hidden_size", "NaN", "lm_config.hidden_size")},
      {"RoPE 2^18 x 64 before a wrong tensor", "v1.5", GST_RESOURCE_ERROR_SETTINGS,
       [](const std::string& dir) {
         test::edit_config(dir, [](json& j) {
           j["lm_config"]["max_position_embeddings"] = 1 << 18;
           j["lm_config"]["kv_channels"] = 64;
           j["lm_config"]["rope_scaling"]["long_factor"] = std::vector<double>(32, 1.0);
           j["lm_config"]["rope_scaling"]["short_factor"] = std::vector<double>(32, 1.0);
         });
         return std::string("q_proj.weight' has shape [64, 64], expected [256, 64]");
       }},
  };
}

TEST(BadModelElements, EveryBrokenModelFailsReadyWithAResourceError) {
  init_gst();
  const bool peak_resets = test::reset_peak_rss();
  const uint64_t rss0 = test::rss_bytes();
  double slowest = 0, total = 0;
  int n = 0;
  for (const Case& c : cases()) {
    const std::string dir = test::copy_tiny_model(c.version);
    const std::string needle = c.damage(dir);
    for (const char* factory : {"voxcpmtts", "voxcpmsrc"}) {
      SCOPED_TRACE(std::string(factory) + ": " + c.what);
      const double s = expect_ready_fails(factory, dir, c.code, needle);
      slowest = std::max(slowest, s);
      total += s;
      ++n;
    }
    test::remove_tree(dir);
  }
  const uint64_t peak = test::peak_rss_bytes();
  std::printf("[ measured ] %d failed NULL->READY: %.3f s total, slowest %.3f s; RSS %.1f MB, peak %.1f MB\n", n,
              total, slowest, rss0 / 1e6, peak / 1e6);
  EXPECT_LT(slowest, 10.0) << "a broken model must fail fast";
  if (peak_resets && test::kRssIsMeaningful) {
    EXPECT_LT(peak, rss0 + (128u << 20)) << "a failed load allocated from the config";
  }
}

// After a failed load the same element loads a good model and speaks.
TEST(BadModelElements, ElementRecoversWithAGoodModel) {
  init_gst();
  const std::string dir = test::copy_tiny_model("v1.5");
  test::truncate_file(dir + "/model.safetensors", 1000);
  GstElement* tts = gst_element_factory_make("voxcpmtts", nullptr);
  ASSERT_NE(tts, nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(tts, bus);
  g_object_set(tts, "model-path", dir.c_str(), "device", "cpu", "seed", (gint64)3, "min-len", 2, "max-len", 2, NULL);
  EXPECT_EQ(gst_element_set_state(tts, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  EXPECT_NE(m, nullptr);
  if (m) gst_message_unref(m);
  gst_element_set_state(tts, GST_STATE_NULL);
  gst_element_set_bus(tts, nullptr);
  gst_object_unref(bus);
  g_object_set(tts, "model-path", tiny_v15().c_str(), NULL);
  GstHarness* h = gst_harness_new_with_element(tts, "sink", "src");  // plays it: the model loads now
  gst_harness_set_src_caps_str(h, "text/x-raw,format=utf8");
  ASSERT_EQ(gst_harness_push(h, text_buffer("Recovered.")), GST_FLOW_OK);
  size_t samples = 0;
  while (samples < 2u * kChunkV15) {
    GstBuffer* b = gst_harness_pull(h);  // waits up to 60 s
    if (!b) break;
    samples += gst_buffer_get_size(b) / 4;
    gst_buffer_unref(b);
  }
  EXPECT_EQ(samples, 2u * kChunkV15);
  gst_harness_teardown(h);
  gst_object_unref(tts);
  test::remove_tree(dir);
}

}  // namespace
}  // namespace voxcpm::gsttest
