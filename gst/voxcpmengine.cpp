#include "voxcpmengine.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <sys/stat.h>

#include <sstream>

#include "voxcpm/error.h"
#include "voxcpm/generator.h"
#include "voxcpm/model.h"
#include "voxcpm/model_cache.h"
#include "voxcpm/stream.h"
#include "voxcpm/threads.h"
#include "voxcpm/wav.h"

namespace gstvoxcpm {
namespace {

voxcpm::GenerateOptions to_generate_options(const UtteranceOptions& o) {
  voxcpm::GenerateOptions g;
  g.inference_timesteps = o.inference_timesteps;
  g.cfg_value = o.cfg_value;
  if (o.seed >= 0) g.seed = static_cast<uint64_t>(o.seed);
  g.min_len = o.min_len;
  g.max_len = o.max_len;
  g.retry_badcase = false;  // streaming never retries
  g.normalize_whitespace = o.normalize;
  g.prompt_wav_path = o.prompt_wav_path;
  g.prompt_text = o.prompt_text;
  g.reference_wav_path = o.reference_wav_path;
  return g;
}

std::string resolve_device(const std::string& device) {
  if (device.empty() || device == "auto") return at::hasCUDA() ? "cuda" : "cpu";
  return device;
}

}  // namespace

std::string ModelInfo::describe() const {
  std::ostringstream s;
  s << version << ", " << sample_rate << " Hz, " << samples_per_chunk << " samples per chunk, " << parameters
    << " parameters, " << device << ", " << dtype;
  return s.str();
}

std::shared_ptr<const voxcpm::Model> load_model(const ModelRequest& request, ModelInfo* info) {
  if (request.path.empty())
    throw LoadError(true, "no model directory: set the model-path property or the VOXCPM_MODEL environment variable");
  try {
    voxcpm::ModelFiles::locate(request.path);  // cheap: tells "missing" from "broken"
  } catch (const std::exception& e) {
    throw LoadError(true, e.what());
  }
  const std::string tokenizer = request.path + "/tokenizer.json";  // read later, by the tokenizer
  struct stat st {};
  if (stat(tokenizer.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw LoadError(true, tokenizer + ": tokenizer not found");
  std::shared_ptr<const voxcpm::Model> model;
  try {
    voxcpm::LoadOptions lo;
    lo.device = resolve_device(request.device);
    lo.dtype = request.dtype.empty() ? "auto" : request.dtype;
    model = voxcpm::ModelCache::global().get(request.path, lo);
  } catch (const std::exception& e) {
    throw LoadError(false, e.what());
  }
  if (info) {
    info->sample_rate = model->sample_rate();
    info->samples_per_chunk = model->samples_per_patch();
    info->parameters = model->parameter_count();
    info->version = model->version_name();
    info->device = model->options().device.str();
    info->dtype = c10::toString(model->options().dtype);
    info->is_v2 = model->config().is_v2();
  }
  return model;
}

std::string check_options(const UtteranceOptions& opts, const ModelInfo& info) {
  try {
    to_generate_options(opts).validate();
    if (!opts.reference_wav_path.empty() && !info.is_v2)
      return "reference-wav-path needs a VoxCPM2 model (this is " + info.version + ")";
    // Prompt audio is encoded with each utterance; read it now so a bad file fails the start.
    if (!opts.prompt_wav_path.empty()) voxcpm::read_wav(opts.prompt_wav_path);
    if (!opts.reference_wav_path.empty()) voxcpm::read_wav(opts.reference_wav_path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

Utterance::Utterance(std::shared_ptr<const voxcpm::Model> model, const std::string& text,
                     const UtteranceOptions& opts)
    : syn_(std::make_unique<voxcpm::Synthesis>(std::move(model), text, to_generate_options(opts),
                                               voxcpm::Synthesis::Mode::Streaming)),
      n_threads_(opts.n_threads) {}

Utterance::~Utterance() = default;

bool Utterance::next(std::vector<float>* samples) {
  bool more = false;
  compute_.run([&] {
    // libtorch's intra-op thread count is per calling thread with OpenMP: set it where we compute.
    voxcpm::use_cpu_threads(n_threads_);
    std::optional<voxcpm::AudioChunk> chunk = syn_->next_chunk();
    if (!chunk) return;
    *samples = std::move(chunk->samples);
    more = true;
  });
  return more;
}

void Utterance::cancel() { syn_->cancel(); }

uint64_t Utterance::seed() const { return syn_->seed(); }

}  // namespace gstvoxcpm
