#include "voxcpm/audio_vae.h"

#include <algorithm>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "voxcpm/cpu_linear.h"
#include "voxcpm/cpu_vae_kernels.h"
#include "voxcpm/error.h"

namespace voxcpm {
namespace {

// Causal history of the decoder convs, one tensor [B, C, len] per slot.
using History = std::vector<at::Tensor>;

// f(b) → [...] for each sequence b of a batch of B, as [B, ...]: the packed products take one
// sequence at a time. A view when B is 1 (streaming and every generated utterance), else stacked.
template <class F>
at::Tensor per_sequence(int64_t B, const F& f) {
  if (B == 1) return f(0).unsqueeze(0);
  std::vector<at::Tensor> ys;
  for (int64_t b = 0; b < B; ++b) ys.push_back(f(b));
  return at::stack(ys, 0);
}

// Snake(x) = x + 1/(alpha + 1e-9) * sin(alpha x)^2, in the official op order.
struct Snake {
  at::Tensor alpha, inv_alpha;  // [1, C, 1]
  bool cpu_kernel = false;      // one fused pass (cpu_vae_kernels.h) on AVX2 CPUs

  at::Tensor operator()(const at::Tensor& x) const {
    if (cpu_kernel) return cpu::snake(x.contiguous(), alpha, inv_alpha);
    at::Tensor s = at::sin(alpha * x);
    return s.mul_(s).mul_(inv_alpha).add_(x);
  }
};

// Conv1d that sees `left_pad` zeros (full decode) or the previous inputs (stateful decode)
// before its input, and no padding on the right.
struct CausalConv {
  at::Tensor weight, bias;
  int64_t stride = 1, dilation = 1, groups = 1, left_pad = 0;
  int slot = -1;  // History slot when used by the stateful decoder
  at::Tensor packed;  // 1x1 convs on AVX2 CPUs: the weight packed for cpu::packed_linear (weight undefined)
  int64_t out_channels = 0;
  bool depthwise_kernel = false;  // depthwise convs on AVX2 CPUs: cpu::depthwise_conv1d
  bool few_outputs_kernel = false;  // the last conv (C → 1) on AVX2 CPUs: cpu::conv1d_few_outputs

  at::Tensor operator()(const at::Tensor& x, History* h) const {
    if (packed.defined())  // a 1x1 conv is W x + b per sequence
      return per_sequence(x.size(0), [&](int64_t b) {
        return cpu::packed_linear_channels_first(x[b], packed, out_channels, bias);
      });
    at::Tensor xp = x;
    if (left_pad > 0) {
      if (h) {
        at::Tensor& past = (*h)[slot];
        xp = at::cat({past, x}, 2);
        past.copy_(xp.narrow(2, xp.size(2) - left_pad, left_pad));
      } else {
        xp = at::constant_pad_nd(x, {left_pad, 0});
      }
    }
    if (depthwise_kernel) return cpu::depthwise_conv1d(xp.contiguous(), weight, bias, dilation);
    if (few_outputs_kernel) return cpu::conv1d_few_outputs(xp.contiguous(), weight, bias, dilation);
    const int64_t no_pad = 0;
    return at::conv1d(xp, weight, bias, at::IntArrayRef(stride), at::IntArrayRef(no_pad), at::IntArrayRef(dilation),
                      groups);
  }

  // conv(snake(x)); the last conv (C → 1) takes snake(x) written straight after its history.
  at::Tensor of_snake(const Snake& snake, const at::Tensor& x, History* h) const {
    if (few_outputs_kernel && snake.cpu_kernel && left_pad > 0) {
      at::Tensor* past = h ? &(*h)[slot] : nullptr;
      const at::Tensor xp = cpu::snake_after_history(x.contiguous(), snake.alpha, snake.inv_alpha, past, left_pad);
      return cpu::conv1d_few_outputs(xp, weight, bias, dilation);
    }
    return (*this)(snake(x), h);
  }

  // conv(x) + residual; a packed 1x1 conv adds it in the kernel's store (same bits, no extra pass).
  at::Tensor plus(const at::Tensor& x, const at::Tensor& residual, History* h) const {
    if (packed.defined() && x.size(0) == 1 && residual.sizes() == x.sizes())
      return cpu::packed_linear_channels_first(x[0], packed, out_channels, bias, 1, residual[0]).unsqueeze(0);
    return (*this)(x, h).add_(residual);
  }
};

// ConvTranspose1d (k = 2s, stride s) trimmed to L*s outputs: output frame j depends on input
// frames j and j-1 only. The stateful path prepends the previous chunk's last frame and drops
// the s outputs that belong to it.
struct CausalConvT {
  at::Tensor weight, bias;
  int64_t stride = 1;
  int slot = -1;
  // On AVX2 CPUs: output frame j = A x_j + B x_{j-1} ([Cout·s, Cin] each, rows (co, r)) as a
  // product with the bias repeated per phase; weight is then undefined. Either one product with
  // the packed [A | B] over [x_j; x_{j-1}] (`packed`), or Winograd's F(2,2) over frame pairs with
  // A, B and A + B packed (`packed_a`, `packed_b`, `packed_sum`): 3/4 of the FLOPs for 3/2 of the
  // weight bytes, for the layers that see enough frames to be compute-bound.
  at::Tensor packed, packed_a, packed_b, packed_sum, phase_bias;
  int64_t out_channels = 0;

  at::Tensor operator()(const at::Tensor& x, History* h) const {
    const int64_t len = x.size(2);
    if (len == 0) return at::empty({x.size(0), bias.size(0), 0}, x.options());
    at::Tensor* prev = h ? &(*h)[slot] : nullptr;
    if (packed_sum.defined())
      return pair_products(cpu::transposed_conv_pair_inputs(x.contiguous(), {}, {}, prev), len);
    if (packed.defined()) {
      const int64_t B = x.size(0), cin = x.size(1);
      const at::Tensor before = prev ? prev->clone() : at::zeros({B, cin, 1}, x.options());
      const at::Tensor shifted = at::cat({before, x.narrow(2, 0, len - 1)}, 2);  // x_{j-1}
      if (prev) prev->copy_(x.narrow(2, len - 1, 1));
      return stacked_product(at::cat({x, shifted}, 1));
    }
    at::Tensor xf = x;
    int64_t skip = 0;
    if (h) {
      at::Tensor& past = (*h)[slot];
      xf = at::cat({past, x}, 2);
      past.copy_(x.narrow(2, len - 1, 1));
      skip = stride;
    }
    return at::conv_transpose1d(xf, weight, bias, stride).narrow(2, skip, len * stride);
  }

  // up(snake(x)); with the packed products, snake(x) is written straight into their input.
  at::Tensor of_snake(const Snake& snake, const at::Tensor& x, History* h) const {
    at::Tensor* prev = h ? &(*h)[slot] : nullptr;
    if (snake.cpu_kernel && x.size(2) > 0) {
      if (packed_sum.defined())
        return pair_products(cpu::transposed_conv_pair_inputs(x.contiguous(), snake.alpha, snake.inv_alpha, prev),
                             x.size(2));
      if (packed.defined())
        return stacked_product(cpu::snake_and_shifted(x.contiguous(), snake.alpha, snake.inv_alpha, prev));
    }
    return (*this)(snake(x), h);
  }

 private:
  // The packed product of [x_j; x_{j-1}] ([B, 2·Cin, L]), phases interleaved in time.
  at::Tensor stacked_product(const at::Tensor& in) const {
    return per_sequence(in.size(0), [&](int64_t b) {
      return cpu::packed_linear_channels_first(in[b], packed, out_channels * stride, phase_bias, stride);
    });
  }

  // Winograd F(2,2) from transposed_conv_pair_inputs ([B, 3, Cin, ceil(L/2)]): the shared
  // (A + B) u_{2m} + bias, then each half's own product added to it in the kernel's store.
  at::Tensor pair_products(const at::Tensor& in, int64_t len) const {
    const int64_t n = out_channels * stride;
    return per_sequence(in.size(0), [&](int64_t b) {
      const at::Tensor shared = cpu::packed_linear_channels_first(in[b][0], packed_sum, n, phase_bias);
      const at::Tensor even = cpu::packed_linear_channels_first(in[b][1], packed_b, n, at::Tensor(), 1, shared);
      const at::Tensor odd = cpu::packed_linear_channels_first(in[b][2], packed_a, n, at::Tensor(), 1, shared);
      return cpu::interleave_frame_pairs(even.unsqueeze(0), odd.unsqueeze(0), stride, len)[0];
    });
  }
};

struct ResidualUnit {
  Snake snake1;
  CausalConv conv7;
  Snake snake2;
  CausalConv conv1;
  bool fused = false;  // AVX2 CPUs, depthwise conv7: snake1 → conv7 → snake2 as one kernel (same bits)

  at::Tensor operator()(const at::Tensor& x, History* h) const {
    if (fused) {
      at::Tensor* past = h ? &(*h)[conv7.slot] : nullptr;
      const at::Tensor mid = cpu::snake_depthwise_snake(x.contiguous(), snake1.alpha, snake1.inv_alpha, conv7.weight,
                                                        conv7.bias, conv7.dilation, snake2.alpha, snake2.inv_alpha, past);
      return conv1.plus(mid, x, h);
    }
    return conv1.plus(snake2(conv7(snake1(x), h)), x, h);
  }
};

struct EncoderBlock {
  ResidualUnit units[3];
  Snake snake;
  CausalConv down;

  at::Tensor operator()(at::Tensor x) const {
    for (const ResidualUnit& u : units) x = u(x, nullptr);
    return down(snake(x), nullptr);
  }
};

struct DecoderBlock {
  // V2 sample-rate conditioning on the block input, one [1, Cin, 1] pair per bucket.
  std::vector<at::Tensor> sr_scale, sr_bias;
  Snake snake;
  CausalConvT up;
  ResidualUnit units[3];

  at::Tensor operator()(at::Tensor x, int64_t bucket, History* h) const {
    if (!sr_scale.empty()) x = x * sr_scale[bucket] + sr_bias[bucket];
    x = up.of_snake(snake, x, h);
    for (const ResidualUnit& u : units) x = u(x, h);
    return x;
  }
};

// Reads the layers from the checkpoint with checked shapes, folding weight norm, and hands out
// history slots to the decoder convs that look back in time.
struct LayerLoader {
  const Weights& w;
  at::TensorOptions opts;
  std::vector<std::vector<int64_t>>* slot_shapes = nullptr;  // [C, len] per slot; null: no state

  Snake snake(const std::string& name, int64_t c) const {
    Snake s;
    s.alpha = w.get(name + ".alpha", {1, c, 1}, opts);
    s.inv_alpha = (s.alpha + 1e-9).reciprocal();
    s.cpu_kernel = packs(s.alpha);
    return s;
  }

  CausalConv conv(const std::string& name, int64_t cin, int64_t cout, int64_t k, int64_t stride = 1,
                  int64_t dilation = 1, int64_t groups = 1, int64_t left_pad = 0) const {
    CausalConv c;
    c.weight = w.weight_norm(name, {cout, cin / groups, k}, opts);
    c.bias = w.get(name + ".bias", {cout}, opts);
    c.stride = stride;
    c.dilation = dilation;
    c.groups = groups;
    c.left_pad = left_pad;
    if (k == 1 && stride == 1 && dilation == 1 && groups == 1 && left_pad == 0 && packs(c.weight)) {
      c.packed = cpu::pack_linear_weight(c.weight.view({cout, cin}));
      c.out_channels = cout;
      c.weight = at::Tensor();
    }
    c.depthwise_kernel = groups == cin && groups == cout && stride == 1 && packs(c.weight);
    c.few_outputs_kernel = groups == 1 && cout <= 4 && stride == 1 && packs(c.weight);
    if (slot_shapes && left_pad > 0) {
      c.slot = static_cast<int>(slot_shapes->size());
      slot_shapes->push_back({cin, left_pad});
    }
    return c;
  }

  // `pairs`: Winograd's F(2,2) (see CausalConvT) instead of one product over [x_j; x_{j-1}].
  CausalConvT conv_t(const std::string& name, int64_t cin, int64_t cout, int64_t stride, bool pairs) const {
    CausalConvT c;
    c.weight = w.weight_norm(name, {cin, cout, 2 * stride}, opts);  // dim 0 = in_channels
    c.bias = w.get(name + ".bias", {cout}, opts);
    c.stride = stride;
    if (packs(c.weight)) {
      // The kernel half that meets x_j (part 0) or x_{j-1} (part 1) as [(co, r), ci] = W[ci, co, part·s + r].
      const at::Tensor parts = c.weight.view({cin, cout, 2, stride}).permute({2, 1, 3, 0}).reshape({2, cout * stride, cin});
      if (pairs) {
        c.packed_a = cpu::pack_linear_weight(parts[0]);
        c.packed_b = cpu::pack_linear_weight(parts[1]);
        c.packed_sum = cpu::pack_linear_weight(parts[0] + parts[1]);
      } else {
        c.packed = cpu::pack_linear_weight(at::cat({parts[0], parts[1]}, 1));
      }
      c.phase_bias = c.bias.view({cout, 1}).expand({cout, stride}).reshape({cout * stride}).contiguous();
      c.out_channels = cout;
      c.weight = at::Tensor();
    }
    if (slot_shapes) {
      c.slot = static_cast<int>(slot_shapes->size());
      slot_shapes->push_back({cin, 1});
    }
    return c;
  }

  // The packed 1x1 / transposed-conv kernels: float32 on an AVX2 CPU (not for the data-less
  // placeholders of a recording Weights).
  bool packs(const at::Tensor& weight) const {
    return opts.device().is_cpu() && cpu::packed_linear_supported() && weight.is_contiguous();
  }

  // y = conv1x1(snake(conv7_dilated(snake(x)))), causal pad 6d; returns x + y.
  ResidualUnit residual_unit(const std::string& name, int64_t c, int64_t dilation, int64_t groups) const {
    ResidualUnit u;
    u.snake1 = snake(name + ".block.0", c);
    u.conv7 = conv(name + ".block.1", c, c, 7, 1, dilation, groups, 6 * dilation);
    u.snake2 = snake(name + ".block.2", c);
    u.conv1 = conv(name + ".block.3", c, c, 1);
    u.fused = u.snake1.cpu_kernel && u.snake2.cpu_kernel && u.conv7.depthwise_kernel &&
              u.conv7.left_pad == (u.conv7.weight.size(2) - 1) * dilation;
    return u;
  }
};

constexpr int64_t kDilations[3] = {1, 3, 9};

std::string sizes_str(const at::Tensor& t) { return t.defined() ? shape_str(t.sizes()) : "an undefined tensor"; }

}  // namespace

struct AudioVAE::Impl {
  AudioVaeConfig cfg;
  at::Device device = at::kCPU;

  CausalConv enc_in;
  std::vector<EncoderBlock> enc_blocks;
  CausalConv fc_mu;

  std::vector<CausalConv> dec_in;  // depthwise: k7 depthwise + 1x1; else one k7 conv
  std::vector<DecoderBlock> dec_blocks;
  Snake dec_snake;
  CausalConv dec_out;

  std::vector<int64_t> sr_boundaries;  // V2: bucket = number of boundaries below the rate
  std::vector<std::vector<int64_t>> slot_shapes;
};

AudioVAE::AudioVAE(const Weights& w, const AudioVaeConfig& cfg, at::Device device) : impl_(new Impl) {
  Impl& m = *impl_;
  m.cfg = cfg;
  // The concrete device ("cuda" → "cuda:0"): decoder states are checked against it.
  m.device = at::empty({0}, at::TensorOptions().device(device)).device();
  // ModelConfig::load validates these; a hand-made config is checked here so that a bad one
  // cannot reach the tensor ops.
  auto bad_config = [&](const std::string& why) { return Error(w.source() + ": audio_vae_config: " + why); };
  if (cfg.version != 1 && cfg.version != 2) throw bad_config("version must be 1 or 2");
  if (cfg.encoder_rates.empty() || cfg.decoder_rates.empty()) throw bad_config("empty encoder_rates/decoder_rates");
  for (int64_t r : cfg.encoder_rates)
    if (r <= 0) throw bad_config("encoder_rates must be positive");
  for (int64_t r : cfg.decoder_rates)
    if (r <= 0) throw bad_config("decoder_rates must be positive");
  if (cfg.encoder_dim <= 0 || cfg.latent_dim <= 0 || cfg.decoder_rates.size() > 30 ||
      cfg.decoder_dim <= 0 || cfg.decoder_dim % (int64_t{1} << cfg.decoder_rates.size()) != 0)
    throw bad_config("encoder_dim/latent_dim must be positive, decoder_dim divisible by 2^len(decoder_rates)");
  if (cfg.use_noise_block) throw bad_config("use_noise_block is not supported");
  const bool v2 = cfg.version == 2;
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(device);

  // Encoder.
  LayerLoader enc{w, opts};
  int64_t c = cfg.encoder_dim;
  m.enc_in = enc.conv("encoder.block.0", 1, c, 7, 1, 1, 1, 6);
  for (size_t i = 0; i < cfg.encoder_rates.size(); ++i) {
    const int64_t s = cfg.encoder_rates[i];
    const std::string p = "encoder.block." + std::to_string(i + 1) + ".block.";
    const int64_t groups = cfg.depthwise ? c : 1;
    EncoderBlock b;
    for (int j = 0; j < 3; ++j) b.units[j] = enc.residual_unit(p + std::to_string(j), c, kDilations[j], groups);
    b.snake = enc.snake(p + "3", c);
    // V1 pads 2*ceil(s/2) (s+1 for odd s); V2 subtracts output_padding s%2, i.e. pads s.
    const int64_t pad = 2 * ((s + 1) / 2) - (v2 ? s % 2 : 0);
    b.down = enc.conv(p + "4", c, 2 * c, 2 * s, s, 1, 1, pad);
    m.enc_blocks.push_back(std::move(b));
    c *= 2;
  }
  m.fc_mu = enc.conv("encoder.fc_mu", c, cfg.latent_dim, 3, 1, 1, 1, 2);
  // fc_logvar is never used at inference; its shapes are still checked so that the file is
  // known to be the checkpoint this config describes.
  LayerLoader{w, at::TensorOptions().dtype(at::kFloat)}.conv("encoder.fc_logvar", c, cfg.latent_dim, 3);

  // Decoder.
  LayerLoader dec{w, opts, &m.slot_shapes};
  const int64_t lat = cfg.latent_dim;
  int idx = 0;
  if (cfg.depthwise) {
    m.dec_in.push_back(dec.conv("decoder.model.0", lat, lat, 7, 1, 1, lat, 6));
    m.dec_in.push_back(dec.conv("decoder.model.1", lat, cfg.decoder_dim, 1));
    idx = 2;
  } else {
    m.dec_in.push_back(dec.conv("decoder.model.0", lat, cfg.decoder_dim, 7, 1, 1, 1, 6));
    idx = 1;
  }
  const bool sr_cond = v2 && !cfg.sr_bin_boundaries.empty();
  if (sr_cond) {
    // The checkpoint's buffer overrides the config in the official loader.
    const std::string name = "decoder.sr_bin_boundaries";
    at::Tensor t = w.raw(name, {static_cast<int64_t>(cfg.sr_bin_boundaries.size())});
    if (at::isFloatingType(t.scalar_type()) || t.scalar_type() == at::kBool)
      throw Error(w.source() + ": tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                  ", expected an integer dtype");
    t = t.to(at::kLong).contiguous();
    m.sr_boundaries.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  const int64_t buckets = static_cast<int64_t>(m.sr_boundaries.size()) + 1;
  c = cfg.decoder_dim;
  for (int64_t s : cfg.decoder_rates) {
    const std::string p = "decoder.model." + std::to_string(idx) + ".block.";
    const int64_t cout = c / 2;
    DecoderBlock b;
    if (sr_cond) {
      const std::string q = "decoder.sr_cond_model." + std::to_string(idx);
      at::Tensor scale = w.get(q + ".scale_embed.weight", {buckets, c}, opts);
      at::Tensor bias = w.get(q + ".bias_embed.weight", {buckets, c}, opts);
      for (int64_t k = 0; k < buckets; ++k) {
        b.sr_scale.push_back(scale[k].view({1, c, 1}).clone());
        b.sr_bias.push_back(bias[k].view({1, c, 1}).clone());
      }
    }
    b.snake = dec.snake(p + "0", c);
    // F(2,2) from the third block on: the first two see 2-32 frames per streaming patch, where
    // their large weights (117 and 29 MB for VoxCPM1.5) make weight traffic count and F(2,2)'s 3/2
    // of it cancelled its gain (measured: 4.2 → 6.5 ms at 4 frames, 2.9 → 2.9 ms at 28); the later
    // ones see ≥ 128 frames and are bound by arithmetic (196 frames 3.7 → 3.2 ms, 1176: 3.5 → 2.8,
    // 3528: 2.2 → 1.6).
    b.up = dec.conv_t(p + "1", c, cout, s, /*pairs=*/m.dec_blocks.size() >= 2);
    const int64_t groups = cfg.depthwise ? cout : 1;
    for (int j = 0; j < 3; ++j)
      b.units[j] = dec.residual_unit(p + std::to_string(j + 2), cout, kDilations[j], groups);
    m.dec_blocks.push_back(std::move(b));
    c = cout;
    ++idx;
  }
  m.dec_snake = dec.snake("decoder.model." + std::to_string(idx), c);
  m.dec_out = dec.conv("decoder.model." + std::to_string(idx + 1), c, 1, 7, 1, 1, 1, 6);
}

AudioVAE::AudioVAE(AudioVAE&&) noexcept = default;
AudioVAE& AudioVAE::operator=(AudioVAE&&) noexcept = default;
AudioVAE::~AudioVAE() = default;

int64_t AudioVAE::encode_hop() const { return impl_->cfg.hop_length(); }
int64_t AudioVAE::decode_hop() const { return impl_->cfg.decode_hop_length(); }
int64_t AudioVAE::sample_rate() const { return impl_->cfg.sample_rate; }
int64_t AudioVAE::out_sample_rate() const { return impl_->cfg.out_sample_rate; }
int64_t AudioVAE::latent_dim() const { return impl_->cfg.latent_dim; }
const at::Device& AudioVAE::device() const { return impl_->device; }

at::Tensor AudioVAE::encode(const at::Tensor& wav) const {
  const Impl& m = *impl_;
  if (!wav.defined() || wav.dim() != 3 || wav.size(1) != 1)
    throw Error("AudioVAE::encode: expected a waveform [B, 1, N], got " + sizes_str(wav));
  if (wav.size(0) == 0 || wav.size(2) == 0)
    throw Error("AudioVAE::encode: empty waveform " + shape_str(wav.sizes()));
  if (!at::isFloatingType(wav.scalar_type()))
    throw Error("AudioVAE::encode: waveform must be floating point, got " +
                std::string(c10::toString(wav.scalar_type())));
  c10::NoGradGuard no_grad;
  const int64_t hop = encode_hop(), n = wav.size(2);
  const int64_t right_pad = (n + hop - 1) / hop * hop - n;
  at::Tensor x = wav.to(m.device, at::kFloat);
  if (right_pad > 0) x = at::constant_pad_nd(x, {0, right_pad});
  x = m.enc_in(x, nullptr);
  for (const EncoderBlock& b : m.enc_blocks) x = b(x);
  return m.fc_mu(x, nullptr);
}

at::Tensor AudioVAE::check_latents(const at::Tensor& z, const char* what) const {
  if (!z.defined() || z.dim() != 3 || z.size(1) != impl_->cfg.latent_dim)
    throw Error(std::string("AudioVAE::") + what + ": expected latents [B, " + std::to_string(impl_->cfg.latent_dim) +
                ", F], got " + sizes_str(z));
  if (!at::isFloatingType(z.scalar_type()))
    throw Error(std::string("AudioVAE::") + what + ": latents must be floating point, got " +
                std::string(c10::toString(z.scalar_type())));
  return z.to(impl_->device, at::kFloat);
}

int64_t AudioVAE::bucket_of(int64_t sr_cond) const {
  const auto& b = impl_->sr_boundaries;
  return std::count_if(b.begin(), b.end(), [&](int64_t x) { return x < sr_cond; });
}

at::Tensor AudioVAE::run_decoder(const at::Tensor& z, int64_t bucket, History* history) const {
  const Impl& m = *impl_;
  at::Tensor x = z;
  for (const CausalConv& c : m.dec_in) x = c(x, history);
  for (const DecoderBlock& b : m.dec_blocks) x = b(x, bucket, history);
  return m.dec_out.of_snake(m.dec_snake, x, history).tanh_();
}

at::Tensor AudioVAE::decode(const at::Tensor& z) const {
  at::Tensor x = check_latents(z, "decode");
  if (x.size(0) == 0 || x.size(2) == 0) return at::zeros({x.size(0), 1, x.size(2) * decode_hop()}, x.options());
  c10::NoGradGuard no_grad;
  return run_decoder(x, bucket_of(out_sample_rate()), nullptr);
}

at::Tensor AudioVAE::decode(const at::Tensor& z, int64_t sr_cond) const {
  if (impl_->sr_boundaries.empty())
    throw Error("AudioVAE::decode: sr_cond needs the V2 AudioVAE (VoxCPM2) with sr_bin_boundaries");
  if (sr_cond <= 0) throw Error("AudioVAE::decode: sr_cond must be a positive sample rate, got " + std::to_string(sr_cond));
  at::Tensor x = check_latents(z, "decode");
  if (x.size(0) == 0 || x.size(2) == 0) return at::zeros({x.size(0), 1, x.size(2) * decode_hop()}, x.options());
  c10::NoGradGuard no_grad;
  return run_decoder(x, bucket_of(sr_cond), nullptr);
}

std::unique_ptr<AudioVAE::DecoderState> AudioVAE::new_decoder_state() const {
  auto s = std::make_unique<DecoderState>();
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(impl_->device);
  s->history_.reserve(impl_->slot_shapes.size());
  for (const auto& shape : impl_->slot_shapes) s->history_.push_back(at::zeros({1, shape[0], shape[1]}, opts));
  s->bucket_ = bucket_of(out_sample_rate());
  return s;
}

at::Tensor AudioVAE::decode_step(DecoderState& s, const at::Tensor& z_chunk) const {
  at::Tensor x = check_latents(z_chunk, "decode_step");
  if (x.size(0) != 1)
    throw Error("AudioVAE::decode_step: expected one sequence [1, latent, f], got " + shape_str(x.sizes()));
  const auto& shapes = impl_->slot_shapes;
  bool ok = s.history_.size() == shapes.size();
  for (size_t i = 0; ok && i < shapes.size(); ++i)
    ok = s.history_[i].sizes() == at::IntArrayRef({1, shapes[i][0], shapes[i][1]}) &&
         s.history_[i].device() == impl_->device;
  if (!ok) throw Error("AudioVAE::decode_step: the DecoderState was not made by this AudioVAE");
  if (x.size(2) == 0) return at::zeros({1, 1, 0}, x.options());
  c10::NoGradGuard no_grad;
  return run_decoder(x, s.bucket_, &s.history_);
}

size_t AudioVAE::decoder_state_bytes(const DecoderState& s) const {
  size_t n = 0;
  for (const at::Tensor& t : s.history_) n += t.numel() * t.element_size();
  return n;
}

}  // namespace voxcpm
