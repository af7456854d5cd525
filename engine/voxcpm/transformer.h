// MiniCPM4 transformer (spec §3.1), used four times per model: base LM, residual LM, the LocEnc
// encoder and the LocDiT decoder. RMSNorm, LongRoPE (rotate-half), grouped-query attention with
// optional kv_channels, use_mup residual scaling, optional no_rope, and a static KV cache for
// token-by-token decoding.
#pragma once

#include <array>

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "voxcpm/config.h"
#include "voxcpm/layers.h"
#include "voxcpm/weights.h"

namespace voxcpm {

// Static KV cache of one transformer (one per request). Keys are stored after RoPE.
struct KVCache {
  at::Tensor key, value;  // [layers, B, kv_heads, max_length, head_dim], module dtype
  int64_t length = 0;     // filled positions 0..length-1; the slots after them hold zeros
  int64_t max_length() const { return key.defined() ? key.size(3) : 0; }
};

class Transformer {
 public:
  // Loads `<prefix>.layers.<i>.*`, `<prefix>.norm.weight` (and `<prefix>.embed_tokens.weight`
  // when vocab_size > 0). Throws Error on an inconsistent config or a missing/mis-shaped tensor.
  Transformer(const Weights& w, const std::string& prefix, const TransformerConfig& cfg, const ModuleOptions& o);

  const TransformerConfig& config() const { return cfg_; }
  const ModuleOptions& options() const { return opts_; }
  int64_t head_dim() const { return head_dim_; }

  // ids (integer, any shape) → embeddings [..., H]; ×scale_emb iff use_mup. Base LM only.
  at::Tensor embed(const at::Tensor& ids) const;

  // Zeroed cache for `batch` sequences of up to `max_length` positions.
  KVCache new_cache(int64_t batch, int64_t max_length) const;

  // Full sequence x [B,S,H] at positions 0..S-1, causal or bidirectional. With a cache, it is
  // filled with the (post-RoPE) keys/values of positions 0..S-1, the slots after them are zero,
  // and length = S (a cache can be reused for a new request this way).
  // Returns the final-normed hidden states [B,S,H].
  at::Tensor forward(const at::Tensor& x, bool causal, KVCache* cache = nullptr) const;

  // One token x [B,H] at position cache.length, attending to positions 0..cache.length;
  // then cache.length++. Throws Error if the cache is full. Returns [B,H].
  at::Tensor forward_step(const at::Tensor& x, KVCache& cache) const;

  // LongRoPE tables [max_position_embeddings, head_dim] as float32 tensors holding values
  // rounded to the module dtype (what Python's bf16 buffers hold). Undefined when no_rope.
  const at::Tensor& rope_cos() const { return cos_; }
  const at::Tensor& rope_sin() const { return sin_; }

 private:
  struct Layer {
    at::Tensor input_norm, post_norm;  // [H]
    Linear q, k, v, o, gate, up, down;
  };

  // Decode sizes (an LM step, a LocDiT/LocEnc call) take cpu::attention_from_qkv on AVX2 CPUs in
  // float32; longer sequences (prefill) the tensor ops, whose batched products scale better.
  static constexpr int64_t kFusedAttentionMaxQueries = 64;

  // x in the module dtype and device as a new contiguous tensor: the residual stream that layers()
  // updates in place, never the caller's tensor (one conversion or copy, not both).
  at::Tensor own_copy(const at::Tensor& x) const;
  // The layers over x [B, S, H] (own_copy) at positions pos..pos+S-1 (pos > 0 only for one-position
  // steps), their keys/values stored in `cache` when given; returns the final-normed hidden states.
  at::Tensor layers(at::Tensor x, int64_t pos, bool causal, KVCache* cache) const;
  // Self-attention of layer l for h [B, S, H] → the output projection [B, S, H]; keys/values: the
  // layer's cache [B, kv, T, hd] (the new positions are written there) or undefined.
  at::Tensor attention(const Layer& l, const at::Tensor& h, int64_t pos, bool causal, const at::Tensor& keys,
                       const at::Tensor& values) const;
  // x += h (× scale_depth/√layers when use_mup), in place on the CPU in float32.
  void residual_add_(at::Tensor& x, const at::Tensor& h) const;
  at::Tensor mlp(const Layer& l, const at::Tensor& x) const;
  // q, k, v projections [..., q_dim / kv_dim / kv_dim]: one packed call for the three on AVX2 CPUs.
  std::array<at::Tensor, 3> project_qkv(const Layer& l, const at::Tensor& h) const;
  void check_cache(const KVCache& cache, int64_t batch) const;

  std::string name_;  // weight prefix, for messages
  TransformerConfig cfg_;
  ModuleOptions opts_;
  int64_t heads_ = 0, kv_heads_ = 0, head_dim_ = 0;
  double attn_scale_ = 1.0, depth_scale_ = 1.0;
  bool fused_attention_ = false;  // every layer's q/k/v packed and the CPU runs cpu::attention_from_qkv
  at::Tensor embed_tokens_;  // [vocab, H] or undefined
  std::vector<Layer> layers_;
  at::Tensor norm_;      // [H]
  at::Tensor cos_, sin_;  // see rope_cos()
};

}  // namespace voxcpm
