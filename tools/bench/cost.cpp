#include "bench/cost.h"

#include <algorithm>
#include <vector>

namespace voxcpm::bench {
namespace {

double dtype_bytes(at::ScalarType t) { return t == at::kFloat ? 4.0 : 2.0; }

struct LayerShape {
  double params, q_dim, kv_dim, heads, head_dim, layers;
};

LayerShape shape_of(const TransformerConfig& t) {
  LayerShape s{};
  s.heads = static_cast<double>(t.num_attention_heads);
  s.head_dim = static_cast<double>(t.head_dim());
  s.q_dim = s.heads * s.head_dim;
  s.kv_dim = static_cast<double>(t.num_key_value_heads) * s.head_dim;
  const double H = static_cast<double>(t.hidden_size), F = static_cast<double>(t.intermediate_size);
  s.params = H * s.q_dim + 2 * H * s.kv_dim + s.q_dim * H + 3 * H * F + 2 * H;
  s.layers = static_cast<double>(t.num_hidden_layers);
  return s;
}

// `tokens` positions per sequence, `batch` sequences, attending over `ctx` keys each.
Cost transformer_cost(const TransformerConfig& t, double eb, double tokens, double batch, double ctx,
                      double kv_eb = 4) {
  const LayerShape s = shape_of(t);
  Cost c;
  c.bytes = s.layers * s.params * eb + s.layers * 2 * s.kv_dim * ctx * batch * kv_eb;  // weights + K/V reads
  c.flops = s.layers * (2 * s.params * tokens * batch + 4 * s.q_dim * tokens * ctx * batch);
  return c;
}

Cost linear_cost(double in, double out, double rows, double eb) { return {in * out * eb, 2 * in * out * rows}; }

}  // namespace

double CostModel::transformer_params(const TransformerConfig& t) const {
  const LayerShape s = shape_of(t);
  return s.layers * s.params + static_cast<double>(t.vocab_size * t.hidden_size);
}

int64_t CostModel::locdit_calls() const {
  const int64_t zero_init = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(timesteps + 1) * 0.04));
  return std::max<int64_t>(0, timesteps - zero_init);
}

namespace {

// Decoder of the AudioVAE for `frames` latent frames, as the parts that run one after the other
// (each consumes the previous one's output): the input conv(s); per block, snake + transposed
// conv; per residual unit, snake + depthwise conv + snake + 1x1 conv + residual add; the last
// snake + conv. A part's bytes are its weights plus about two passes over each activation it
// reads or writes; its FLOPs those of its convs and elementwise ops.
std::vector<Cost> vae_decode_parts(const AudioVaeConfig& v, double frames, double* params_out) {
  std::vector<Cost> parts;
  double params = 0;
  auto conv = [&](Cost& c, double cin, double cout, double k, double groups, double len_out) {
    const double w = cout * (cin / groups) * k;
    params += w + cout;
    c.flops += 2 * w * len_out;
    c.bytes += (w + cout) * 4 + (cin + cout) * len_out * 4;
  };
  double L = frames, ch = static_cast<double>(v.decoder_dim);
  const double lat = static_cast<double>(v.latent_dim);
  Cost in;
  if (v.depthwise) {
    conv(in, lat, lat, 7, lat, L);
    conv(in, lat, ch, 1, 1, L);
  } else {
    conv(in, lat, ch, 7, 1, L);
  }
  parts.push_back(in);
  for (int64_t s : v.decoder_rates) {
    const double cout = ch / 2, rate = static_cast<double>(s);
    Cost up;
    up.bytes += 2 * ch * L * 4;  // snake (+ V2 scale/bias) in and out
    up.flops += 6 * ch * L;
    params += cout * ch * 2 * rate + cout;  // transposed conv: weight [ch, cout, 2s]
    up.flops += 2 * ch * cout * 2 * rate * L;
    up.bytes += (cout * ch * 2 * rate + cout) * 4 + (ch * L + cout * L * rate) * 4;
    parts.push_back(up);
    L *= rate;
    for (int j = 0; j < 3; ++j) {
      Cost unit;
      unit.bytes += 4 * cout * L * 4;  // two snakes and the residual add
      unit.flops += 14 * cout * L;
      conv(unit, cout, cout, 7, v.depthwise ? cout : 1, L);
      conv(unit, cout, cout, 1, 1, L);
      parts.push_back(unit);
    }
    ch = cout;
  }
  Cost out;
  out.bytes += 2 * ch * L * 4;
  conv(out, ch, 1, 7, 1, L);
  parts.push_back(out);
  if (params_out) *params_out = params;
  return parts;
}

}  // namespace

Cost total_of(const std::vector<Cost>& parts) {
  Cost c;
  for (const Cost& p : parts) c += p;
  return c;
}

double roofline_seconds(const std::vector<Cost>& parts, double gbs, double gflops) {
  double t = 0;
  for (const Cost& p : parts) t += roofline_seconds(p, gbs, gflops);
  return t;
}

double CostModel::vae_decoder_params() const {
  double p = 0;
  vae_decode_parts(config.audio_vae, 1, &p);
  return p;
}

std::vector<Cost> CostModel::stage_parts(Stage s, int64_t context, int64_t prefix, int64_t audio) const {
  if (s == Stage::VaeDecode) return vae_decode_parts(config.audio_vae, static_cast<double>(config.patch_size), nullptr);
  return {stage(s, context, prefix, audio)};
}

double CostModel::weight_bytes() const {
  const double eb = weight_elem_bytes > 0 ? weight_elem_bytes : dtype_bytes(dtype);
  const double H = static_cast<double>(config.lm.hidden_size), E = static_cast<double>(config.encoder.hidden_dim),
               Dh = static_cast<double>(config.dit.hidden_dim), lat = static_cast<double>(config.scalar_quantization_latent_dim);
  double lm = transformer_params(config.base_lm()) + transformer_params(config.residual_lm()) +
              transformer_params(config.encoder_lm()) + transformer_params(config.dit_lm());
  lm += 2 * H * lat + H * H + 2 * H + E * H + 2 * H * Dh + 4 * Dh * Dh;  // fsq, stop, projections, time MLPs
  if (config.is_v2()) lm += 2 * H * H;
  // The encoder roughly mirrors the decoder in size; count the decoder twice as an estimate.
  return lm * eb + 2 * vae_decoder_params() * 4;
}

Cost CostModel::stage(Stage s, int64_t context, int64_t prefix, int64_t audio) const {
  const double eb = weight_elem_bytes > 0 ? weight_elem_bytes : dtype_bytes(dtype);
  const ModelConfig& m = config;
  const double H = static_cast<double>(m.lm.hidden_size), P = static_cast<double>(m.patch_size);
  const double D = static_cast<double>(m.feat_dim), E = static_cast<double>(m.encoder.hidden_dim);
  const double Dh = static_cast<double>(m.dit.hidden_dim), lat = static_cast<double>(m.scalar_quantization_latent_dim);
  const double ctx = static_cast<double>(context), T = static_cast<double>(prefix), A = static_cast<double>(audio);
  Cost c;
  switch (s) {
    case Stage::PromptEncode:
      break;  // depends on the prompt audio; not modelled
    case Stage::PrefillLocEnc:
      if (A > 0) {
        c += transformer_cost(m.encoder_lm(), eb, P + 1, A, P + 1);
        c += linear_cost(E, H, A, eb);
      }
      break;
    case Stage::PrefillBaseLM:
      c += transformer_cost(m.base_lm(), eb, T, 1, T / 2);  // causal: on average half the prefix
      c += linear_cost(H, lat, T, eb);
      c += linear_cost(lat, H, T, eb);
      break;
    case Stage::PrefillResidualLM:
      c += transformer_cost(m.residual_lm(), eb, T, 1, T / 2);
      if (m.is_v2()) c += linear_cost(2 * H, H, T, eb);
      break;
    case Stage::LocDiT: {
      const double seq = (m.is_v2() ? 3 : 1) + 2 * P;  // [mu (+mu_res, t)], cond patch, x patch
      const double calls = static_cast<double>(locdit_calls());
      Cost call = transformer_cost(m.dit_lm(), eb, seq, 2, seq);
      call += linear_cost(D, Dh, 4 * P, eb);        // in_proj + cond_proj on both CFG rows
      call += linear_cost(Dh, Dh, 8, eb);           // time and delta-time MLPs
      call += linear_cost(Dh, D, 2 * P, eb);        // out_proj
      c.bytes = call.bytes * calls;
      c.flops = call.flops * calls;
      c += linear_cost(H, Dh, 1, eb);  // lm_to_dit_proj
      c += linear_cost(H, Dh, 1, eb);  // res_to_dit_proj
      break;
    }
    case Stage::StopHead:
      c += linear_cost(H, H, 1, eb);
      c += linear_cost(H, 2, 1, eb);
      break;
    case Stage::LocEnc:
      c += linear_cost(D, E, P, eb);
      c += transformer_cost(m.encoder_lm(), eb, P + 1, 1, P + 1);
      c += linear_cost(E, H, 1, eb);
      break;
    case Stage::BaseLM:
      c += transformer_cost(m.base_lm(), eb, 1, 1, ctx, dtype_bytes(dtype));
      c += linear_cost(H, lat, 1, eb);
      c += linear_cost(lat, H, 1, eb);
      break;
    case Stage::ResidualLM:
      c += transformer_cost(m.residual_lm(), eb, 1, 1, ctx, dtype_bytes(dtype));
      if (m.is_v2()) c += linear_cost(2 * H, H, 1, eb);
      break;
    case Stage::VaeDecode:
      c = total_of(vae_decode_parts(m.audio_vae, P, nullptr));
      break;
    case Stage::kCount:
      break;
  }
  return c;
}

}  // namespace voxcpm::bench
