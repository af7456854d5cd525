#include "voxcpm/stream.h"

#include <algorithm>
#include <random>

#include <ATen/ATen.h>

#include "voxcpm/error.h"
#include "voxcpm/text_split.h"

namespace voxcpm {
namespace {

int64_t prefix_len(const Model& m, const GenerateOptions& o) {
  return o.streaming_prefix_len > 0 ? o.streaming_prefix_len : (m.config().is_v2() ? 4 : 3);
}

std::vector<float> to_vector(const at::Tensor& wav) {
  at::Tensor w = wav.reshape({-1}).to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
}

}  // namespace

// One text segment in flight: its inputs, the current attempt and what it generated.
struct Synthesis::Segment {
  SequenceInputs inputs;
  std::unique_ptr<Generation> gen;
  std::vector<at::Tensor> patches;  // generated [1,P,D] (model dtype), final attempt
  uint64_t seed = 0;
  int attempts = 0;
  int64_t drop = 0;  // samples still to drop from the start of the decoded audio (§7.6 trim)
};

Synthesis::Synthesis(std::shared_ptr<const Model> model, const std::string& text, const GenerateOptions& opts,
                     Mode mode)
    : model_(std::move(model)), opts_(opts), mode_(mode) {
  opts_.validate();
  if (Tokenizer::is_blank(text)) throw Error("target text is empty");
  const std::string clean = opts_.normalize_whitespace ? Tokenizer::normalize_whitespace(text) : text;
  // Segment budget: a segment, a continuation prompt of up to its own size (the voice carried from
  // segment 0 has at most 6n+10 patches) and its generated patches must fit the context.
  int64_t budget = opts_.max_segment_tokens;
  if (budget == 0) budget = std::max<int64_t>(16, (model_->config().max_length - 64) / 15);
  const Tokenizer& tok = model_->tokenizer();
  segments_ = split_text(clean, static_cast<size_t>(budget), [&tok](const std::string& s) { return tok.encode(s).size(); });
  if (segments_.empty()) throw Error("target text is empty");
  seed_ = opts_.seed ? *opts_.seed : (static_cast<uint64_t>(std::random_device{}()) & 0xffffffffu);
}

Synthesis::~Synthesis() = default;

size_t Synthesis::state_bytes() const {
  size_t n = decoder_ ? model_->audio_vae.decoder_state_bytes(*decoder_) : 0;
  if (seg_ && seg_->gen) n += seg_->gen->state_bytes();
  return n;
}

at::Tensor Synthesis::decode(const at::Tensor& patches) {
  const int64_t D = model_->config().feat_dim;
  StageScope timed(times_, Stage::VaeDecode);
  at::Tensor z = patches.reshape({-1, patches.size(-2), D}).permute({2, 0, 1}).reshape({1, D, -1}).to(at::kFloat);
  return model_->audio_vae.decode_step(*decoder_, z);
}

std::optional<AudioChunk> Synthesis::emit(std::vector<float> samples, bool last) {
  AudioChunk c;
  c.offset = offset_;
  c.index = index_++;
  c.segment = static_cast<int64_t>(next_segment_) - 1;
  c.last = last;
  offset_ += static_cast<int64_t>(samples.size());
  c.samples = std::move(samples);
  if (last) done_ = true;
  return c;
}

void Synthesis::start_segment() {
  const Model& m = *model_;
  const size_t k = next_segment_++;
  seg_ = std::make_unique<Segment>();
  seg_->seed = seed_ + k;
  seg_->inputs = build_inputs(m, segments_[k], prompt_, opts_);
  const int64_t ctx = seg_->inputs.context_patches;
  if (k > 0) return;  // later segments continue the previous segment's decoder state

  // Segment 0 starts the decoder. In continuation modes its context patches go through it first,
  // exactly as the non-streaming decode sees them before trimming them away (§7.6, §8.4).
  decoder_ = m.audio_vae.new_decoder_state();
  std::vector<float> primed;
  if (ctx > 0) primed = to_vector(decode(seg_->inputs.feats.slice(1, -ctx).squeeze(0)));
  if (!opts_.trim_context) {
    pending_context_ = std::move(primed);  // the old model-level generate() keeps that audio
    return;
  }
  // VoxCPM-0.5B/1.5 trim a nominal prefix-1 patches whenever the sequence has audio, even if
  // fewer context patches existed (a quirk we keep so the output matches).
  if (!m.config().is_v2() && seg_->inputs.audio_mask.sum().item<int64_t>() > 0)
    seg_->drop = std::max<int64_t>(0, (prefix_len(m, opts_) - 1 - ctx) * m.samples_per_patch());
}

void Synthesis::finish_segment() {
  GenerateResult last_result_;
  last_result_.steps = seg_->gen ? seg_->gen->steps() : 0;
  last_result_.stopped_by_head = seg_->gen && seg_->gen->stopped_by_head();
  last_result_.seed = seg_->seed;
  last_result_.attempts = std::max(1, seg_->attempts);
  last_result_.target_ids = seg_->inputs.target_ids;
  last_result_.sample_rate = sample_rate();
  at::Tensor gen = seg_->patches.empty() ? at::Tensor() : at::cat(seg_->patches, 0);  // [N,P,D]
  if (gen.defined()) {
    const int64_t ctx = seg_->inputs.context_patches;
    // As the official API returns it: VoxCPM-0.5B/1.5 include the context patches, VoxCPM2 does not.
    at::Tensor feat = (!model_->config().is_v2() && ctx > 0)
                          ? at::cat({seg_->inputs.feats.slice(1, -ctx).squeeze(0), gen}, 0)
                          : gen;
    last_result_.generated_feat = feat.to(at::kCPU, at::kFloat);
  }
  results_.push_back(std::move(last_result_));
  // Zero-shot long text: later segments continue segment 0's voice (official merge_prompt_cache
  // idea), so the speaker does not change from sentence to sentence.
  if (next_segment_ == 1 && segments_.size() > 1 && !prompt_.audio_feat.defined() && gen.defined()) {
    prompt_.prompt_text = segments_[0];
    prompt_.audio_feat = gen.to(at::kCPU, at::kFloat);
  }
  seg_.reset();
}

std::optional<AudioChunk> Synthesis::next_chunk() {
  if (done_) return std::nullopt;
  if (cancelled_.load()) throw Cancelled();
  const Model& m = *model_;
  if (!prompt_ready_) {
    prompt_ = build_prompt_cache(m, opts_, times_);
    prompt_ready_ = true;
  }
  if (!pending_context_.empty()) {
    std::vector<float> ctx = std::move(pending_context_);
    pending_context_.clear();
    return emit(std::move(ctx), false);
  }
  if (!seg_) {
    if (next_segment_ >= segments_.size()) {
      done_ = true;
      return std::nullopt;
    }
    start_segment();
    if (!pending_context_.empty()) return next_chunk();
  }
  const bool final_segment = next_segment_ >= segments_.size();
  Segment& s = *seg_;

  if (mode_ == Mode::Streaming) {
    if (!s.gen) {
      s.gen = std::make_unique<Generation>(model_, s.inputs, opts_, s.seed, trace_, &cancelled_);
      s.gen->set_stage_times(times_);
      s.attempts = 1;
    }
    Generation& g = *s.gen;
    std::optional<at::Tensor> patch = g.next_patch();
    std::vector<float> samples;
    if (patch) {
      ++model_steps_;
      s.patches.push_back(*patch);
      samples = to_vector(decode(*patch));
    }
    const bool seg_done = g.finished() || !patch;
    if (s.drop > 0) {
      const int64_t d = std::min<int64_t>(s.drop, static_cast<int64_t>(samples.size()));
      samples.erase(samples.begin(), samples.begin() + d);
      s.drop -= d;
    }
    if (seg_done) finish_segment();
    return emit(std::move(samples), seg_done && final_segment);
  }

  // Whole: generate the segment to the end (retrying bad cases with seed+1, ...), then decode.
  const double bad_len = static_cast<double>(s.inputs.target_ids.size()) * opts_.retry_badcase_ratio_threshold;
  const int64_t counted_ctx = m.config().is_v2() ? 0 : s.inputs.context_patches;
  for (int k = 0; k < opts_.retry_badcase_max_times; ++k) {
    GenerationTrace attempt_trace;
    s.seed = seed_ + (next_segment_ - 1) + k;
    s.gen = std::make_unique<Generation>(model_, s.inputs, opts_, s.seed, trace_ ? &attempt_trace : nullptr,
                                         &cancelled_);
    s.gen->set_stage_times(times_);
    s.attempts = k + 1;
    s.patches.clear();
    while (true) {
      auto p = s.gen->next_patch();
      if (!p) break;
      ++model_steps_;
      s.patches.push_back(*p);
    }
    if (trace_) *trace_ = std::move(attempt_trace);
    const int64_t counted = s.gen->steps() + counted_ctx;
    if (!(opts_.retry_badcase && static_cast<double>(counted) >= bad_len)) break;
  }
  // Patch by patch through the stateful decoder, exactly as streaming does (the same samples,
  // and faster: one patch's activations stay in cache, a whole utterance's do not).
  std::vector<float> samples;
  for (const at::Tensor& p : s.patches) {
    const std::vector<float> part = to_vector(decode(p));
    samples.insert(samples.end(), part.begin(), part.end());
  }
  const int64_t d = std::min<int64_t>(s.drop, static_cast<int64_t>(samples.size()));
  samples.erase(samples.begin(), samples.begin() + d);
  finish_segment();
  return emit(std::move(samples), final_segment);
}

GenerateResult generate(const std::shared_ptr<const Model>& model, const std::string& text,
                        const GenerateOptions& opts, GenerationTrace* trace) {
  Synthesis s(model, text, opts, Synthesis::Mode::Whole);
  s.set_trace(trace);
  GenerateResult r;
  while (auto c = s.next_chunk()) r.waveform.insert(r.waveform.end(), c->samples.begin(), c->samples.end());
  const auto& segs = s.segment_results();
  if (segs.empty()) throw Error("generation produced no segment");
  r.sample_rate = model->sample_rate();
  r.seed = segs.front().seed;
  r.segments = static_cast<int64_t>(segs.size());
  std::vector<at::Tensor> feats;
  for (const auto& g : segs) {
    r.steps += g.steps;
    r.attempts = std::max(r.attempts, g.attempts);
    r.target_ids.insert(r.target_ids.end(), g.target_ids.begin(), g.target_ids.end());
    if (g.generated_feat.defined()) feats.push_back(g.generated_feat);
  }
  r.stopped_by_head = segs.back().stopped_by_head;
  if (!feats.empty()) r.generated_feat = at::cat(feats, 0);
  return r;
}

}  // namespace voxcpm
