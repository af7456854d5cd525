#include "voxcpm/generator.h"

#include <cmath>
#include <mutex>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include "voxcpm/error.h"
#include "voxcpm/resample.h"
#include "voxcpm/wav.h"

namespace voxcpm {
namespace {

constexpr int64_t kAudioStart = 101, kRefAudioStart = 103, kRefAudioEnd = 104;

at::Generator make_generator(const at::Device& device, uint64_t seed) {
  if (!device.is_cuda()) return at::detail::createCPUGenerator(seed);
  // Same Philox stream as torch.manual_seed(seed) on that GPU, but private to this request.
  auto& def = const_cast<at::Generator&>(at::globalContext().defaultGenerator(device));
  at::Generator g;
  {
    std::lock_guard<std::mutex> lock(def.mutex());
    g = def.clone();
  }
  g.set_current_seed(seed);
  return g;
}

at::Tensor to_cpu_f32(const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat).clone(); }

int64_t default_prefix_len(const Model& m) { return m.config().is_v2() ? 4 : 3; }

}  // namespace

void GenerateOptions::validate() const {
  auto bad = [](const std::string& what) { throw Error("invalid generation option: " + what); };
  if (inference_timesteps < 1 || inference_timesteps > 1000) bad("inference_timesteps must be in 1..1000");
  if (!std::isfinite(cfg_value) || cfg_value < 0 || cfg_value > 100) bad("cfg_value must be in 0..100");
  if (min_len < 0) bad("min_len must be >= 0");
  if (max_len < 1) bad("max_len must be >= 1");
  if (retry_badcase_max_times < 1 || retry_badcase_max_times > 100) bad("retry_badcase_max_times must be in 1..100");
  if (!std::isfinite(retry_badcase_ratio_threshold) || retry_badcase_ratio_threshold <= 0)
    bad("retry_badcase_ratio_threshold must be positive");
  if (prompt_wav_path.empty() != prompt_text.empty())
    bad("prompt_wav_path and prompt_text must be given together");
  if (streaming_prefix_len < 0 || streaming_prefix_len > 64) bad("streaming_prefix_len must be in 0..64");
  if (max_segment_tokens < 0) bad("max_segment_tokens must be >= 0");
}

at::Tensor encode_audio_patches(const Model& model, std::vector<float> samples, int64_t rate, bool pad_left) {
  const AudioVAE& vae = model.audio_vae;
  if (samples.empty()) throw Error("prompt/reference audio is empty");
  samples = resample(samples, rate, vae.sample_rate());
  const int64_t P = model.config().patch_size;
  const int64_t patch_len = P * vae.encode_hop();
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t pad = (patch_len - n % patch_len) % patch_len;
  at::Tensor wav = at::from_blob(samples.data(), {1, 1, n}, at::kFloat);
  wav = at::constant_pad_nd(wav, pad_left ? std::vector<int64_t>{pad, 0} : std::vector<int64_t>{0, pad});
  at::Tensor lat = vae.encode(wav.to(vae.device())).to(at::kCPU);  // [1, D, F]
  const int64_t D = lat.size(1), F = lat.size(2);
  return lat.view({D, F / P, P}).permute({1, 2, 0}).contiguous();  // [F/P, P, D]
}

PromptCache build_prompt_cache(const Model& model, const GenerateOptions& opts, StageTimes* times) {
  PromptCache c;
  StageScope timed(opts.reference_wav_path.empty() && opts.prompt_wav_path.empty() ? nullptr : times,
                   Stage::PromptEncode);
  if (!opts.reference_wav_path.empty()) {
    if (!model.config().is_v2())
      throw Error("reference audio (isolated voice reference) needs a VoxCPM2 model; " + model.version_name() +
                  " supports only prompt_wav_path + prompt_text");
    Audio a = read_wav(opts.reference_wav_path);
    c.ref_audio_feat = encode_audio_patches(model, std::move(a.samples), a.sample_rate, /*pad_left=*/false);
  }
  if (!opts.prompt_wav_path.empty()) {
    Audio a = read_wav(opts.prompt_wav_path);
    c.audio_feat = encode_audio_patches(model, std::move(a.samples), a.sample_rate, /*pad_left=*/true);
    c.prompt_text = opts.prompt_text;
  }
  return c;
}

SequenceInputs build_inputs(const Model& model, const std::string& target_text, const PromptCache& cache,
                            const GenerateOptions& opts) {
  const ModelConfig& cfg = model.config();
  const Tokenizer& tok = model.tokenizer();
  if (Tokenizer::is_blank(target_text)) throw Error("target text is empty");
  const std::string target = opts.normalize_whitespace ? Tokenizer::normalize_whitespace(target_text) : target_text;
  const bool has_prompt = cache.audio_feat.defined() && cache.audio_feat.size(0) > 0;
  const bool has_ref = cache.ref_audio_feat.defined() && cache.ref_audio_feat.size(0) > 0;
  if (has_ref && !cfg.is_v2()) throw Error("reference audio needs a VoxCPM2 model");

  std::vector<int64_t> ids = tok.encode(has_prompt ? cache.prompt_text + target : target);
  for (int64_t id : ids)
    if (id < 0 || id >= cfg.lm.vocab_size)
      throw Error("text contains the token '" + tok.id_to_token(id) + "' (id " + std::to_string(id) +
                  "), outside the model's vocabulary of " + std::to_string(cfg.lm.vocab_size));
  ids.push_back(kAudioStart);
  const int64_t P = cfg.patch_size, D = cfg.feat_dim;
  const int64_t R = has_ref ? cache.ref_audio_feat.size(0) : 0;
  const int64_t A = has_prompt ? cache.audio_feat.size(0) : 0;
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t ref_len = has_ref ? R + 2 : 0;
  const int64_t T = ref_len + n + A;

  std::vector<int64_t> tokens;
  std::vector<int32_t> text_mask, audio_mask;
  tokens.reserve(T);
  auto push = [&](int64_t id, int32_t is_text, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      tokens.push_back(id);
      text_mask.push_back(is_text);
      audio_mask.push_back(1 - is_text);
    }
  };
  if (has_ref) {
    push(kRefAudioStart, 1, 1);
    push(0, 0, R);
    push(kRefAudioEnd, 1, 1);
  }
  for (int64_t id : ids) push(id, 1, 1);
  push(0, 0, A);

  at::Tensor feats = at::zeros({T, P, D}, at::kFloat);
  if (has_ref) feats.slice(0, 1, 1 + R).copy_(cache.ref_audio_feat.to(at::kFloat));
  if (has_prompt) feats.slice(0, T - A, T).copy_(cache.audio_feat.to(at::kFloat));

  const ModuleOptions& mo = model.options();
  SequenceInputs in;
  in.tokens = at::tensor(tokens, at::kLong).unsqueeze(0).to(mo.device);
  in.text_mask = at::tensor(text_mask, at::kInt).unsqueeze(0).to(mo.device);
  in.audio_mask = at::tensor(audio_mask, at::kInt).unsqueeze(0).to(mo.device);
  in.feats = feats.unsqueeze(0).to(mo.device).to(mo.dtype);  // prompt latents rounded to the model dtype
  in.target_ids = tok.encode(target);
  const int64_t prefix = opts.streaming_prefix_len > 0 ? opts.streaming_prefix_len : default_prefix_len(model);
  const int64_t audio_positions = R + A;
  if (cfg.is_v2()) {
    in.context_patches = has_prompt ? std::min(prefix - 1, audio_positions) : 0;  // only if the last position is audio
  } else {
    in.context_patches = audio_positions > 0 ? std::min(prefix - 1, audio_positions) : 0;
  }
  in.max_steps = std::min<int64_t>(
      static_cast<int64_t>(static_cast<double>(in.target_ids.size()) * opts.retry_badcase_ratio_threshold + 10),
      opts.max_len);
  if (T + in.max_steps - 1 > cfg.max_length)
    throw Error("text and prompt need " + std::to_string(T) + " positions plus " + std::to_string(in.max_steps) +
                " generated patches, more than the model's context of " + std::to_string(cfg.max_length) +
                " (split long text into sentences)");
  return in;
}

Generation::Generation(std::shared_ptr<const Model> model, const SequenceInputs& inputs, const GenerateOptions& opts,
                       uint64_t seed, GenerationTrace* trace, const std::atomic<bool>* cancel_flag)
    : model_(std::move(model)), inputs_(inputs), opts_(opts), gen_(make_generator(model_->options().device, seed)),
      trace_(trace), cancel_flag_(cancel_flag) {
  opts_.validate();
}

size_t Generation::state_bytes() const {
  size_t n = 0;
  for (const KVCache* c : {&base_cache_, &residual_cache_})
    if (c->key.defined()) n += c->key.nbytes() + c->value.nbytes();
  return n;
}

at::Tensor Generation::fuse(const at::Tensor& lm, const at::Tensor& feat_embed) const {
  // Residual-LM input: VoxCPM adds the audio embedding, VoxCPM2 concatenates and projects.
  if (model_->fusion_concat_proj) return (*model_->fusion_concat_proj)(at::cat({lm, feat_embed}, -1));
  return lm + feat_embed;
}

at::Tensor Generation::dit_condition() const {
  at::Tensor a = model_->lm_to_dit_proj(lm_hidden_), b = model_->res_to_dit_proj(residual_hidden_);
  return model_->config().is_v2() ? at::cat({a, b}, -1) : a + b;
}

void Generation::prefill() {
  const Model& m = *model_;
  const at::ScalarType dt = m.options().dtype;
  const at::Tensor& feats = inputs_.feats;
  at::Tensor text_mask = inputs_.text_mask.unsqueeze(-1).to(dt), audio_mask = inputs_.audio_mask.unsqueeze(-1).to(dt);
  // LocEnc only where the result is used: the official code also encodes a zero patch at every
  // text position and then multiplies that by the zero audio mask; zeros there are the same sum.
  at::Tensor feat_embed = at::zeros({1, feats.size(1), m.config().lm.hidden_size}, m.options().tensor());  // [1,T,H]
  const at::Tensor audio_pos = inputs_.audio_mask[0].nonzero().view({-1});
  if (audio_pos.numel() > 0) {
    StageScope timed(times_, Stage::PrefillLocEnc);
    feat_embed.index_copy_(1, audio_pos, m.enc_to_lm_proj(m.feat_encoder(feats.index_select(1, audio_pos))));
  }
  at::Tensor combined = text_mask * m.base_lm.embed(inputs_.tokens) + audio_mask * feat_embed;

  // Caches hold what this request can reach (prompt + text + max_steps), not the model's whole
  // context: attention reads only the filled slots, so the result is the same and idle memory small.
  const int64_t capacity = inputs_.tokens.size(1) + inputs_.max_steps;
  at::Tensor base_out, enc, res;
  {
    StageScope timed(times_, Stage::PrefillBaseLM);
    base_cache_ = m.base_lm.new_cache(1, capacity);
    base_out = m.base_lm.forward(combined, /*causal=*/true, &base_cache_);
    enc = m.fsq(base_out) * audio_mask + base_out * text_mask;  // FSQ at audio positions only
    lm_hidden_ = enc.select(1, -1);
  }
  {
    StageScope timed(times_, Stage::PrefillResidualLM);
    residual_cache_ = m.residual_lm.new_cache(1, capacity);
    res = m.residual_lm.forward(fuse(enc, audio_mask * feat_embed), /*causal=*/true, &residual_cache_);
    residual_hidden_ = res.select(1, -1);
  }
  cond_ = feats.select(1, -1);  // [1,P,D]: last prompt patch, or zeros
  prefilled_ = true;
  if (trace_) {
    trace_->prefill_base_lm_hidden = to_cpu_f32(base_out);
    trace_->prefill_residual_lm_hidden = to_cpu_f32(res);
    trace_->prefill_feat_encoder_out = to_cpu_f32(m.feat_encoder(feats));  // every position, as the reference
  }
}

// Feeds the last patch (cond_) back: LocEnc, then one base-LM and one residual-LM step.
void Generation::advance() {
  const Model& m = *model_;
  advance_pending_ = false;
  at::Tensor curr, base_out, res_in;
  {
    StageScope timed(times_, Stage::LocEnc);
    curr = m.enc_to_lm_proj(m.feat_encoder(cond_.contiguous().unsqueeze(1))).select(1, 0);  // [1,H]
  }
  {
    StageScope timed(times_, Stage::BaseLM);
    base_out = m.base_lm.forward_step(curr, base_cache_);
    lm_hidden_ = m.fsq(base_out);
  }
  {
    StageScope timed(times_, Stage::ResidualLM);
    res_in = fuse(lm_hidden_, curr);
    residual_hidden_ = m.residual_lm.forward_step(res_in, residual_cache_);
  }
  if (trace_) {
    trace_->base_lm_step_in.push_back(to_cpu_f32(curr));
    trace_->base_lm_step_out.push_back(to_cpu_f32(base_out));
    trace_->residual_lm_step_in.push_back(to_cpu_f32(res_in));
    trace_->residual_lm_step_out.push_back(to_cpu_f32(residual_hidden_));
  }
}

std::optional<at::Tensor> Generation::next_patch() {
  if (finished_) return std::nullopt;
  if (cancel_requested()) throw Cancelled();
  if (!prefilled_) prefill();
  if (advance_pending_) advance();
  if (step_ >= inputs_.max_steps) {
    finished_ = true;
    return std::nullopt;
  }
  const Model& m = *model_;
  at::Tensor mu, patch;
  {
    StageScope timed(times_, Stage::LocDiT);
    mu = dit_condition();
    patch = m.feat_decoder(mu, opts_.inference_timesteps, cond_.transpose(1, 2).contiguous(), opts_.cfg_value, gen_)
                .transpose(1, 2);  // [1,P,D]
  }
  if (cancel_requested()) throw Cancelled();
  at::Tensor stop_logits;
  int flag = 0;
  {
    StageScope timed(times_, Stage::StopHead);
    flag = m.stop.stops(lm_hidden_, trace_ ? &stop_logits : nullptr) ? 1 : 0;
  }
  if (trace_) {
    trace_->cond.push_back(to_cpu_f32(cond_));
    trace_->dit_mu.push_back(to_cpu_f32(mu));
    trace_->lm_hidden.push_back(to_cpu_f32(lm_hidden_));
    trace_->pred_patch.push_back(to_cpu_f32(patch));
    trace_->stop_logits.push_back(to_cpu_f32(stop_logits));
    trace_->stop_flags.push_back(flag);
  }
  cond_ = patch;
  const int64_t i = step_++;
  if (i > opts_.min_len && flag == 1) {
    finished_ = stopped_by_head_ = true;
  } else if (step_ >= inputs_.max_steps) {
    finished_ = true;  // the official loop would advance the LMs once more for nothing
  } else {
    advance_pending_ = true;  // at the start of the next call: this patch is out first
  }
  return patch;
}

}  // namespace voxcpm
