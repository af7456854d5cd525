#include "voxcpm/transformer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include <ATen/Parallel.h>

#include "voxcpm/cpu_transformer_kernels.h"
#include "voxcpm/error.h"

namespace voxcpm {
namespace {

// RMSNorm: variance in float32, normalised value rounded back to the input dtype, then × weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (x.scalar_type() == at::kFloat && x.device().is_cpu() && weight.scalar_type() == at::kFloat) {
    // float32 on the CPU: one pass per row instead of six tensor ops (each op's dispatch cost more
    // than its arithmetic at decode sizes). The sum of squares in double, then the same float
    // steps: (x · rsqrt(mean + eps)) · weight.
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
    const int64_t H = xc.size(-1), rows = H ? xc.numel() / H : 0;
    at::Tensor y = at::empty_like(xc);
    const float *xp = xc.data_ptr<float>(), *wp = wc.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = xp + r * H;
        double ss = 0;
        for (int64_t i = 0; i < H; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const float var = static_cast<float>(ss / static_cast<double>(H));
        const float inv = 1.0f / std::sqrt(var + static_cast<float>(eps));
        float* yr = yp + r * H;
        for (int64_t i = 0; i < H; ++i) yr[i] = (xr[i] * inv) * wp[i];
      }
    });
    return y;
  }
  at::Tensor variance = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  return (x * at::rsqrt(variance + eps)).to(x.scalar_type()) * weight;
}

// Rotate-half RoPE on x [B, heads, S, hd] with cos/sin [S, hd]: computed in float32 (the
// module-dtype tables are promoted exactly), rounded back once.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  if (x.scalar_type() == at::kFloat && x.device().is_cpu() && x.dim() == 4 && x.stride(3) == 1 &&
      cos.scalar_type() == at::kFloat && cos.is_contiguous() && sin.is_contiguous()) {
    // float32 on the CPU: one pass per head row, written contiguous [B, heads, S, hd].
    const int64_t B = x.size(0), N = x.size(1), S = x.size(2), hd = x.size(3);
    at::Tensor y = at::empty({B, N, S, hd}, x.options());
    const float *xp = x.data_ptr<float>(), *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    const int64_t sb = x.stride(0), sn = x.stride(1), ss = x.stride(2);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t < S; ++t)
          cpu::rope_row(xp + b * sb + n * sn + t * ss, cp + t * hd, sp + t * hd, hd, yp + ((b * N + n) * S + t) * hd);
    return y;
  }
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor rotated = at::cat({-xf.narrow(-1, half, half), xf.narrow(-1, 0, half)}, -1);
  return (xf * cos + rotated * sin).to(x.scalar_type());
}

// Attention following the documented torch 2.x SDPA math: softmax(q·kᵀ·scale + mask)·v, mask =
// -inf where a causal query must not look (query i sees keys 0..i, top-left aligned).
// q [B, heads, S, hd]; k, v [B, kv, Sk, hd]; returns [B, heads, S, hd] in q's dtype.
// GQA: query head h reads kv head h / (heads/kv).
// bf16/fp16 inputs are computed in float32 and the output is rounded once, as torch 2.x's SDPA
// math backend and the reference run of the fixtures do (pure bf16 math would round the scores
// and probabilities too: 0.047 off the bf16 CFM golden instead of 0).
bool is_reduced(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf; }

// Full-sequence form: GQA by repeat_interleave of the kv heads, exactly as the reference math
// (bit-identical to the official float32 CPU results; the copy is small for these lengths).
at::Tensor attention_full(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, double scale,
                          bool causal) {
  const bool reduced = is_reduced(q_in);
  const at::Tensor q = reduced ? q_in.to(at::kFloat) : q_in;
  const at::Tensor k = reduced ? k_in.to(at::kFloat) : k_in, v = reduced ? v_in.to(at::kFloat) : v_in;
  const int64_t B = q.size(0), heads = q.size(1), S = q.size(2), hd = q.size(3), kv = k.size(1), Sk = k.size(2);
  // Query heads h = g·kv_group + i share kv head g (repeat_interleave in Python): as [B, kv, group·S, hd]
  // they meet their kv head in one product per kv head, without copying K and V per query head.
  const int64_t rows = heads / kv * S;
  at::Tensor scores = at::matmul(q.contiguous().view({B, kv, rows, hd}), k.transpose(-2, -1)).view({B, heads, S, Sk});
  scores.mul_(scale);
  if (causal)
    scores.masked_fill_(at::ones({S, Sk}, q.options().dtype(at::kBool)).triu_(1),
                        -std::numeric_limits<double>::infinity());
  const at::Tensor out = at::matmul(at::softmax(scores, -1).view({B, kv, rows, Sk}), v).view({B, heads, S, hd});
  return reduced ? out.to(q_in.scalar_type()) : out;
}

// Single-query form over the cache prefix (no mask needed): the query heads of one kv head
// become the rows of one GEMM, so the cache is read in place rather than repeated `groups` times.
at::Tensor attention_step(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, double scale) {
  const bool reduced = is_reduced(q_in);
  const at::Tensor q = reduced ? q_in.to(at::kFloat) : q_in;
  const at::Tensor k = reduced ? k_in.to(at::kFloat) : k_in, v = reduced ? v_in.to(at::kFloat) : v_in;
  const int64_t B = q.size(0), heads = q.size(1), hd = q.size(3), kv = k.size(1);
  at::Tensor scores = at::matmul(q.view({B, kv, heads / kv, hd}), k.transpose(-2, -1));
  scores.mul_(scale);
  const at::Tensor out = at::matmul(at::softmax(scores, -1), v).view({B, heads, 1, hd});
  return reduced ? out.to(q_in.scalar_type()) : out;
}

void require(bool ok, const std::string& name, const std::string& what) {
  if (!ok) throw Error("transformer '" + name + "': " + what);
}

// LongRoPE cos/sin tables [max_position_embeddings, head_dim], computed on the CPU in float32
// with the official op order, then rounded to the module dtype (Python casts these buffers with
// the model) and moved to the device.
std::pair<at::Tensor, at::Tensor> rope_tables(const TransformerConfig& cfg, int64_t head_dim, const std::string& name,
                                              const ModuleOptions& o) {
  const RopeScaling& rs = cfg.rope_scaling;
  const int64_t half = head_dim / 2, max_pos = cfg.max_position_embeddings;
  require(head_dim % 2 == 0, name, "head dimension must be even for RoPE");
  require(max_pos > 0, name, "max_position_embeddings must be positive");
  require(rs.original_max_position_embeddings > 1, name,
          "rope_scaling.original_max_position_embeddings must be greater than 1");
  const bool use_long = max_pos > rs.original_max_position_embeddings;  // decided once, as in Python
  const std::vector<double>& factors = use_long ? rs.long_factor : rs.short_factor;
  require(static_cast<int64_t>(factors.size()) == half, name,
          std::string("rope_scaling.") + (use_long ? "long_factor" : "short_factor") + " must have head_dim/2 = " +
              std::to_string(half) + " entries");
  const double scale = static_cast<double>(max_pos) / static_cast<double>(rs.original_max_position_embeddings);
  const double radicand =
      1.0 + std::log(scale) / std::log(static_cast<double>(rs.original_max_position_embeddings));
  require(radicand >= 0, name, "rope scaling factor is undefined for these max_position_embeddings");
  const double scaling_factor = std::sqrt(radicand);

  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor exponent = at::arange(0, head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) / head_dim;
  const at::Tensor inv_freq = at::reciprocal(at::pow(at::scalar_tensor(cfg.rope_theta, f32), exponent));
  const at::Tensor positions = at::arange(max_pos, f32);
  const at::Tensor ext = at::tensor(factors, at::TensorOptions().dtype(at::kDouble)).to(at::kFloat);
  const at::Tensor freqs = at::mul(at::outer(positions, at::reciprocal(ext)), inv_freq);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {(emb.cos() * scaling_factor).to(o.tensor()).contiguous(),
          (emb.sin() * scaling_factor).to(o.tensor()).contiguous()};
}

}  // namespace

Transformer::Transformer(const Weights& w, const std::string& prefix, const TransformerConfig& cfg,
                         const ModuleOptions& o)
    : name_(prefix), cfg_(cfg), opts_(o) {
  require(at::isFloatingType(o.dtype), name_, "module dtype must be floating point");
  require(cfg.hidden_size > 0 && cfg.intermediate_size > 0 && cfg.num_hidden_layers > 0, name_,
          "hidden_size, intermediate_size and num_hidden_layers must be positive");
  require(cfg.num_attention_heads > 0 && cfg.num_key_value_heads > 0, name_,
          "num_attention_heads and num_key_value_heads must be positive");
  require(cfg.num_attention_heads % cfg.num_key_value_heads == 0, name_,
          "num_attention_heads (" + std::to_string(cfg.num_attention_heads) +
              ") is not divisible by num_key_value_heads (" + std::to_string(cfg.num_key_value_heads) + ")");
  require(cfg.kv_channels || cfg.hidden_size % cfg.num_attention_heads == 0, name_,
          "hidden_size (" + std::to_string(cfg.hidden_size) + ") is not divisible by num_attention_heads (" +
              std::to_string(cfg.num_attention_heads) + ") and kv_channels is not set");
  require(!cfg.kv_channels || *cfg.kv_channels > 0, name_, "kv_channels must be positive");
  require(cfg.rms_norm_eps >= 0, name_, "rms_norm_eps must not be negative");
  require(cfg.vocab_size >= 0, name_, "vocab_size must not be negative");
  heads_ = cfg.num_attention_heads;
  kv_heads_ = cfg.num_key_value_heads;
  head_dim_ = cfg.head_dim();
  attn_scale_ = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  depth_scale_ = cfg.scale_depth / std::sqrt(static_cast<double>(cfg.num_hidden_layers));

  const at::TensorOptions t = o.tensor();
  const int64_t H = cfg.hidden_size, F = cfg.intermediate_size;
  const int64_t q_dim = heads_ * head_dim_, kv_dim = kv_heads_ * head_dim_;
  if (cfg.vocab_size > 0) embed_tokens_ = w.get(prefix + ".embed_tokens.weight", {cfg.vocab_size, H}, t);
  layers_.reserve(static_cast<size_t>(cfg.num_hidden_layers));
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = prefix + ".layers." + std::to_string(i);
    Layer l;
    l.input_norm = w.get(p + ".input_layernorm.weight", {H}, t);
    l.post_norm = w.get(p + ".post_attention_layernorm.weight", {H}, t);
    l.q = Linear::load(w, p + ".self_attn.q_proj", H, q_dim, false, o);
    l.k = Linear::load(w, p + ".self_attn.k_proj", H, kv_dim, false, o);
    l.v = Linear::load(w, p + ".self_attn.v_proj", H, kv_dim, false, o);
    l.o = Linear::load(w, p + ".self_attn.o_proj", q_dim, H, false, o);
    l.gate = Linear::load(w, p + ".mlp.gate_proj", H, F, false, o);
    l.up = Linear::load(w, p + ".mlp.up_proj", H, F, false, o);
    l.down = Linear::load(w, p + ".mlp.down_proj", F, H, false, o);
    layers_.push_back(std::move(l));
  }
  norm_ = w.get(prefix + ".norm.weight", {H}, t);
  // Built from the config alone: only once the weights agreed with it (a corrupt config fails above).
  if (!cfg.no_rope) std::tie(cos_, sin_) = rope_tables(cfg, head_dim_, name_, o);
  fused_attention_ = cpu::attention_from_qkv_supported(head_dim_) &&
                     std::all_of(layers_.begin(), layers_.end(), [](const Layer& l) {
                       return l.q.packed.defined() && l.k.packed.defined() && l.v.packed.defined();
                     });
}

at::Tensor Transformer::embed(const at::Tensor& ids) const {
  if (!embed_tokens_.defined()) throw Error("transformer '" + name_ + "' has no token embedding (vocab_size 0)");
  if (at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool)
    throw Error("transformer '" + name_ + "': token ids must be an integer tensor");
  if (ids.numel() > 0) {
    const auto [lo, hi] = at::aminmax(ids);
    const int64_t min_id = lo.item<int64_t>(), max_id = hi.item<int64_t>();
    if (min_id < 0 || max_id >= cfg_.vocab_size)
      throw Error("transformer '" + name_ + "': token id " + std::to_string(min_id < 0 ? min_id : max_id) +
                  " is outside the vocabulary [0, " + std::to_string(cfg_.vocab_size) + ")");
  }
  at::Tensor e = at::embedding(embed_tokens_, ids.to(opts_.device, at::kLong));
  if (cfg_.use_mup) e = e * cfg_.scale_emb;
  return e;
}

KVCache Transformer::new_cache(int64_t batch, int64_t max_length) const {
  if (batch <= 0 || max_length <= 0)
    throw Error("transformer '" + name_ + "': KV cache batch and max_length must be positive");
  if (!cfg_.no_rope && max_length > cfg_.max_position_embeddings)
    throw Error("transformer '" + name_ + "': KV cache max_length " + std::to_string(max_length) +
                " exceeds max_position_embeddings " + std::to_string(cfg_.max_position_embeddings));
  KVCache c;
  const std::vector<int64_t> shape = {cfg_.num_hidden_layers, batch, kv_heads_, max_length, head_dim_};
  c.key = at::zeros(shape, opts_.tensor());
  c.value = at::zeros(shape, opts_.tensor());
  return c;
}

void Transformer::check_cache(const KVCache& cache, int64_t batch) const {
  const std::vector<int64_t> expected = {cfg_.num_hidden_layers, batch, kv_heads_, cache.max_length(), head_dim_};
  if (!cache.key.defined() || !cache.value.defined() || cache.key.sizes() != at::IntArrayRef(expected) ||
      cache.value.sizes() != at::IntArrayRef(expected) || cache.key.scalar_type() != opts_.dtype ||
      cache.value.scalar_type() != opts_.dtype || cache.key.device().type() != opts_.device.type())
    throw Error("transformer '" + name_ + "': KV cache does not match this transformer (expected " +
                shape_str(expected) + " in the module dtype, on its device)");
}

void Transformer::residual_add_(at::Tensor& x, const at::Tensor& h) const {
  // use_mup scales the branch by scale_depth/sqrt(layers of this instance); a separate rounding.
  if (x.scalar_type() == at::kFloat && x.device().is_cpu() && x.is_contiguous() && h.is_contiguous() &&
      h.scalar_type() == at::kFloat && x.sizes() == h.sizes()) {
    cpu::add_scaled_(x, h, cfg_.use_mup ? static_cast<float>(depth_scale_) : 1.0f);
    return;
  }
  x = cfg_.use_mup ? x + h * depth_scale_ : x + h;
}

at::Tensor Transformer::mlp(const Layer& l, const at::Tensor& x) const {
  if (l.gate.packed.defined() && l.up.packed.defined()) {
    const int64_t F = l.gate.out_features;
    return l.down(cpu::silu_mul(cpu::packed_linears(x, {l.gate.packed, l.up.packed}, {F, F})));
  }
  return l.down(at::silu(l.gate(x)) * l.up(x));
}

std::array<at::Tensor, 3> Transformer::project_qkv(const Layer& l, const at::Tensor& h) const {
  if (l.q.packed.defined() && l.k.packed.defined() && l.v.packed.defined()) {
    const int64_t nq = l.q.out_features, nk = l.k.out_features;
    const at::Tensor qkv = cpu::packed_linears(h, {l.q.packed, l.k.packed, l.v.packed}, {nq, nk, nk});
    return {qkv.narrow(-1, 0, nq), qkv.narrow(-1, nq, nk), qkv.narrow(-1, nq + nk, nk)};
  }
  return {l.q(h), l.k(h), l.v(h)};
}

at::Tensor Transformer::attention(const Layer& l, const at::Tensor& h, int64_t pos, bool causal,
                                  const at::Tensor& keys, const at::Tensor& values) const {
  const int64_t B = h.size(0), S = h.size(1);
  at::Tensor cos, sin;
  if (!cfg_.no_rope) {
    cos = cos_.narrow(0, pos, S);
    sin = sin_.narrow(0, pos, S);
  }
  if (fused_attention_ && S <= kFusedAttentionMaxQueries) {
    const int64_t nq = l.q.out_features, nk = l.k.out_features;
    const at::Tensor qkv = cpu::packed_linears(h, {l.q.packed, l.k.packed, l.v.packed}, {nq, nk, nk});
    at::Tensor k = keys, v = values;
    if (!k.defined()) {  // no cache: the new keys and values only
      k = at::empty({B, kv_heads_, S, head_dim_}, h.options());
      v = at::empty_like(k);
    }
    return l.o(cpu::attention_from_qkv(qkv.view({B * S, nq + 2 * nk}), {B, S, heads_, kv_heads_, head_dim_}, k, v,
                                       pos, causal, cos, sin, attn_scale_));
  }
  const auto [q_lin, k_lin, v_lin] = project_qkv(l, h);
  at::Tensor q = q_lin.view({B, S, heads_, head_dim_}).transpose(1, 2);
  at::Tensor k = k_lin.view({B, S, kv_heads_, head_dim_}).transpose(1, 2);
  at::Tensor v = v_lin.view({B, S, kv_heads_, head_dim_}).transpose(1, 2);
  if (!cfg_.no_rope) {
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
  }
  q = q.contiguous();
  if (keys.defined()) {
    keys.narrow(2, pos, S).copy_(k);
    values.narrow(2, pos, S).copy_(v);
  }
  // A whole sequence (pos 0) attends to its own keys; a step's one query to the cache prefix.
  const at::Tensor a = pos == 0 ? attention_full(q, k, v, attn_scale_, causal)
                                : attention_step(q, keys.narrow(2, 0, pos + 1), values.narrow(2, 0, pos + 1), attn_scale_);
  return l.o(a.transpose(1, 2).reshape({B, S, heads_ * head_dim_}));
}

at::Tensor Transformer::own_copy(const at::Tensor& x) const {
  return x.to(opts_.tensor(), /*non_blocking=*/false, /*copy=*/true, at::MemoryFormat::Contiguous);
}

at::Tensor Transformer::layers(at::Tensor x, int64_t pos, bool causal, KVCache* cache) const {
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    at::Tensor keys, values;
    if (cache) {
      keys = cache->key.select(0, static_cast<int64_t>(i));
      values = cache->value.select(0, static_cast<int64_t>(i));
    }
    residual_add_(x, attention(l, rms_norm(x, l.input_norm, cfg_.rms_norm_eps), pos, causal, keys, values));
    residual_add_(x, mlp(l, rms_norm(x, l.post_norm, cfg_.rms_norm_eps)));
  }
  return rms_norm(x, norm_, cfg_.rms_norm_eps);
}

at::Tensor Transformer::forward(const at::Tensor& x_in, bool causal, KVCache* cache) const {
  if (x_in.dim() != 3 || x_in.size(2) != cfg_.hidden_size || x_in.size(0) == 0 || x_in.size(1) == 0)
    throw Error("transformer '" + name_ + "': input must be [B, S, " + std::to_string(cfg_.hidden_size) +
                "], got " + shape_str(x_in.sizes()));
  const int64_t B = x_in.size(0), S = x_in.size(1);
  if (!cfg_.no_rope && S > cfg_.max_position_embeddings)
    throw Error("transformer '" + name_ + "': sequence of " + std::to_string(S) +
                " positions exceeds max_position_embeddings " + std::to_string(cfg_.max_position_embeddings));
  if (cache) {
    check_cache(*cache, B);
    if (S > cache->max_length())
      throw Error("transformer '" + name_ + "': sequence of " + std::to_string(S) +
                  " positions does not fit the KV cache (max_length " + std::to_string(cache->max_length()) + ")");
  }
  const at::Tensor out = layers(own_copy(x_in), 0, causal, cache);
  if (cache) {
    // StaticKVCache.fill_caches zeroes the whole cache first. Slots at and past `length` are
    // already zero (new_cache zeroes, only slots below `length` are ever written), so zeroing
    // the previously used tail [S, length) gives the same content without a max_length memset.
    const int64_t stale = std::min(cache->length, cache->max_length()) - S;
    if (stale > 0) {
      cache->key.narrow(3, S, stale).zero_();
      cache->value.narrow(3, S, stale).zero_();
    }
    cache->length = S;
  }
  return out;
}

at::Tensor Transformer::forward_step(const at::Tensor& x_in, KVCache& cache) const {
  if (x_in.dim() != 2 || x_in.size(1) != cfg_.hidden_size || x_in.size(0) == 0)
    throw Error("transformer '" + name_ + "': step input must be [B, " + std::to_string(cfg_.hidden_size) +
                "], got " + shape_str(x_in.sizes()));
  const int64_t B = x_in.size(0);
  check_cache(cache, B);
  const int64_t pos = cache.length;
  if (pos < 0 || pos >= cache.max_length())
    throw Error("transformer '" + name_ + "': KV cache is full (" + std::to_string(pos) + " of " +
                std::to_string(cache.max_length()) + " positions used)");
  if (!cfg_.no_rope && pos >= cfg_.max_position_embeddings)
    throw Error("transformer '" + name_ + "': position " + std::to_string(pos) +
                " exceeds max_position_embeddings " + std::to_string(cfg_.max_position_embeddings));
  // Attends over cache[:pos+1]. The official code attends over the whole static cache with a
  // boolean mask: the same math (masked entries weigh exactly 0), but the longer reductions
  // round differently (≈1e-6 in float32), and the cost would grow with max_length, not pos.
  const at::Tensor out = layers(own_copy(x_in).unsqueeze(1), pos, /*causal=*/true, &cache);
  cache.length = pos + 1;
  return out.squeeze(1);
}

}  // namespace voxcpm
