// ModelCache: one loaded model per (canonical dir, device, dtype), per-key loading, no cached failures.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/error.h"
#include "voxcpm/model_cache.h"

namespace voxcpm {
namespace {

using namespace std::chrono_literals;

TEST(ModelCache, SameKeySharesOneModel) {
  ModelCache cache;
  const std::string dir = test::tiny_model_dir("v1.5");
  auto a = cache.get(dir, {});
  auto b = cache.get(dir + "/", {});  // another spelling of the same directory
  ASSERT_TRUE(a);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(cache.stats().loads, 1u);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(a->sample_rate(), 44100);

  // Another dtype is another model.
  auto c = cache.get(dir, LoadOptions{"cpu", "float32"});
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(cache.stats().loads, 2u);
}

TEST(ModelCache, ReloadsOnceEveryHolderReleased) {
  ModelCache cache;
  const std::string dir = test::tiny_model_dir("v1");
  std::weak_ptr<const Model> weak;
  {
    auto a = cache.get(dir);
    weak = a;
  }
  EXPECT_TRUE(weak.expired()) << "the cache must not keep models alive";
  auto b = cache.get(dir);
  EXPECT_EQ(cache.stats().loads, 2u);
  EXPECT_EQ(b->sample_rate(), 16000);
}

TEST(ModelCache, FailuresNameTheFileAndAreNotCached) {
  const std::string tmp = test::make_temp_dir();
  ModelCache cache;
  try {
    cache.get(tmp + "/nowhere");
    FAIL() << "missing directory loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(tmp + "/nowhere"), std::string::npos) << e.what();
  }
  // Garbage files: the error names the file that is broken.
  { std::ofstream(tmp + "/config.json") << "{ not json"; }
  { std::ofstream(tmp + "/model.safetensors") << "garbage"; }
  { std::ofstream(tmp + "/audiovae.pth") << "garbage"; }
  try {
    cache.get(tmp);
    FAIL() << "corrupt model loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.stats().loads, 0u);
  // A fixed directory loads on the next request (nothing negative was cached).
  const std::string good = test::tiny_model_dir("v1");
  for (const char* f : {"config.json", "pytorch_model.bin", "audiovae.pth", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json"}) {
    unlink((tmp + "/" + f).c_str());
    ASSERT_EQ(symlink((good + "/" + f).c_str(), (tmp + "/" + f).c_str()), 0) << f;
  }
  unlink((tmp + "/model.safetensors").c_str());
  EXPECT_NO_THROW(cache.get(tmp));
  EXPECT_EQ(cache.stats().loads, 1u);
}

// Loads of two different keys run at the same time: the loader of A waits (bounded) until the
// loader of B has started, which cannot happen if the cache loaded under one global lock.
TEST(ModelCache, DifferentModelsLoadConcurrently) {
  auto v1 = Model::load(test::tiny_model_dir("v1"));
  auto v15 = Model::load(test::tiny_model_dir("v1.5"));
  std::mutex m;
  std::condition_variable cv;
  int started = 0;
  std::atomic<int> calls{0};
  ModelCache cache([&](const std::string& dir, const LoadOptions&) {
    ++calls;
    std::unique_lock<std::mutex> lock(m);
    ++started;
    cv.notify_all();
    const bool both = cv.wait_for(lock, 10s, [&] { return started >= 2; });
    if (!both) throw Error("loads were serialized");
    return dir.find("tiny-v1.5") != std::string::npos ? v15 : v1;
  });
  auto fa = std::async(std::launch::async, [&] { return cache.get(test::tiny_model_dir("v1")); });
  auto fb = std::async(std::launch::async, [&] { return cache.get(test::tiny_model_dir("v1.5")); });
  EXPECT_EQ(fa.get().get(), v1.get());
  EXPECT_EQ(fb.get().get(), v15.get());
  EXPECT_EQ(calls.load(), 2);
}

// Concurrent requests for one key share a single load.
TEST(ModelCache, ConcurrentSameKeyLoadsOnce) {
  auto v1 = Model::load(test::tiny_model_dir("v1"));
  std::atomic<int> calls{0};
  ModelCache cache([&](const std::string&, const LoadOptions&) {
    ++calls;
    std::this_thread::sleep_for(200ms);  // long enough that the other requests arrive meanwhile
    return v1;
  });
  std::vector<std::future<std::shared_ptr<const Model>>> fs;
  for (int i = 0; i < 4; ++i)
    fs.push_back(std::async(std::launch::async, [&] { return cache.get(test::tiny_model_dir("v1")); }));
  for (auto& f : fs) EXPECT_EQ(f.get().get(), v1.get());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(cache.stats().hits, 3u);
}

}  // namespace
}  // namespace voxcpm
