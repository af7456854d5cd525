#include "voxcpm/model_cache.h"

#include <limits.h>
#include <stdlib.h>

namespace voxcpm {
namespace {

// The same directory reached through different spellings (relative, symlinks, trailing '/')
// must share one model; a path that does not resolve is kept as given (the load reports it).
std::string canonical_dir(const std::string& dir) {
  char buf[PATH_MAX];
  if (realpath(dir.c_str(), buf)) return buf;
  return dir;
}

}  // namespace

ModelCache& ModelCache::global() {
  static ModelCache* cache = new ModelCache();  // never destroyed: elements may outlive static teardown
  return *cache;
}

ModelCache::ModelCache(Loader loader) : loader_(std::move(loader)) {
  if (!loader_) loader_ = [](const std::string& dir, const LoadOptions& opts) { return Model::load(dir, opts); };
}

std::shared_ptr<const Model> ModelCache::get(const std::string& dir, const LoadOptions& opts) {
  const Key key{canonical_dir(dir), opts.device, opts.dtype};
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Drop entries nobody uses any more: an expired model and no thread holding the entry
    // (entries are only copied under mutex_, so use_count()==1 cannot change under us).
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->first != key && it->second.use_count() == 1 && it->second->model.expired())
        it = entries_.erase(it);
      else
        ++it;
    }
    auto& slot = entries_[key];
    if (!slot) slot = std::make_shared<Entry>();
    entry = slot;
  }
  // Per-key lock: a second request for this key waits for the first load; other keys proceed.
  std::lock_guard<std::mutex> load_lock(entry->load_mutex);
  if (auto model = entry->model.lock()) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.hits;
    return model;
  }
  std::shared_ptr<const Model> model = loader_(std::get<0>(key), opts);
  entry->model = model;
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.loads;
  return model;
}

ModelCache::Stats ModelCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace voxcpm
