// Process-wide sharing of loaded models: every user that asks for the same (directory, device,
// dtype) gets the same read-only Model for as long as anyone holds it. Different models load
// concurrently; concurrent requests for one model wait for a single load.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "voxcpm/model.h"

namespace voxcpm {

class ModelCache {
 public:
  using Loader = std::function<std::shared_ptr<const Model>(const std::string& dir, const LoadOptions& opts)>;

  // The cache the GStreamer elements (and any other in-process user) share.
  static ModelCache& global();

  // `loader` replaces Model::load (tests count and time loads with it).
  explicit ModelCache(Loader loader = {});
  ModelCache(const ModelCache&) = delete;
  ModelCache& operator=(const ModelCache&) = delete;

  // The model in `dir` (compared by canonical path) for these options: the cached instance while
  // any holder keeps it alive, else a fresh load. Throws what the loader throws (voxcpm::Error
  // naming the file); failures are not cached. Thread safe.
  std::shared_ptr<const Model> get(const std::string& dir, const LoadOptions& opts = {});

  struct Stats {
    uint64_t loads = 0;  // loader calls that returned a model
    uint64_t hits = 0;   // requests served from a live cached model
  };
  Stats stats() const;

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // canonical dir, device, dtype
  struct Entry {
    std::mutex load_mutex;  // held while this key loads, so one load serves all waiters
    std::weak_ptr<const Model> model;
  };

  Loader loader_;
  mutable std::mutex mutex_;  // guards entries_ and stats_, never held while loading
  std::map<Key, std::shared_ptr<Entry>> entries_;
  Stats stats_;
};

}  // namespace voxcpm
