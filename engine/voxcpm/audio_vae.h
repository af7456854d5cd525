// AudioVAE of VoxCPM (spec §3.8, §3.9, §8.3): causal conv encoder (waveform → latent "mu") and
// causal conv decoder (latents → waveform), one implementation for the V1 class (VoxCPM-0.5B,
// VoxCPM1.5) and the V2 class (VoxCPM2: odd-stride encoder padding, sample-rate conditioning,
// separate output rate). Always fp32 on the device given at construction; weight norm is folded
// once at load. The decoder can also run incrementally with a per-request DecoderState and then
// reproduces the full decode exactly (the decoder is strictly causal).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include "voxcpm/config.h"
#include "voxcpm/weights.h"

namespace voxcpm {

class AudioVAE {
 public:
  // `w` holds the audiovae.pth tensors without prefix (`encoder.block.0.weight_v`, ...). Throws
  // voxcpm::Error naming the file and the tensor if one is missing or has the wrong shape.
  AudioVAE(const Weights& w, const AudioVaeConfig& cfg, at::Device device);
  AudioVAE(AudioVAE&&) noexcept;
  AudioVAE& operator=(AudioVAE&&) noexcept;
  ~AudioVAE();

  int64_t encode_hop() const;        // input samples per latent frame
  int64_t decode_hop() const;        // output samples per latent frame
  int64_t sample_rate() const;       // encoder input rate
  int64_t out_sample_rate() const;   // decoder output rate
  int64_t latent_dim() const;
  const at::Device& device() const;

  // wav [B,1,N] (any float dtype, any device) at sample_rate() → mu [B,latent,ceil(N/hop)] fp32
  // on device(). Right-pads with zeros to a multiple of the hop first, as the official code does.
  at::Tensor encode(const at::Tensor& wav) const;
  // z [B,latent,F] → waveform [B,1,F*decode_hop] fp32 on device(). V2 conditions on
  // out_sample_rate(); the overload with `sr_cond` picks another bucket (V2 only, else Error).
  at::Tensor decode(const at::Tensor& z) const;
  at::Tensor decode(const at::Tensor& z, int64_t sr_cond) const;

  // Causal history of every decoder conv for one request (spec §8.3); starts at zero, which is
  // what the full decode sees before its first frame.
  class DecoderState {
   private:
    friend class AudioVAE;
    std::vector<at::Tensor> history_;  // one slot per decoder conv that looks back in time
    int64_t bucket_ = 0;               // V2 sample-rate bucket
  };
  std::unique_ptr<DecoderState> new_decoder_state() const;
  // z_chunk [1,latent,f] → [1,1,f*decode_hop]. Feeding a latent sequence in any chunking gives
  // the same samples as decode() of the whole sequence.
  at::Tensor decode_step(DecoderState& s, const at::Tensor& z_chunk) const;
  size_t decoder_state_bytes(const DecoderState& s) const;

 private:
  struct Impl;
  at::Tensor check_latents(const at::Tensor& z, const char* what) const;
  at::Tensor run_decoder(const at::Tensor& z, int64_t bucket, std::vector<at::Tensor>* history) const;
  int64_t bucket_of(int64_t sr_cond) const;

  std::unique_ptr<Impl> impl_;
};

}  // namespace voxcpm
