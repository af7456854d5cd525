// libFuzzer target: arbitrary bytes as config.json, through ModelConfig::parse and every derived
// value the model loader reads. voxcpm::Error is the expected answer to a bad file; anything else
// (another exception, a crash, undefined behaviour such as an overflowing size) is a finding.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "voxcpm/config.h"
#include "voxcpm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const voxcpm::ModelConfig c =
        voxcpm::ModelConfig::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    uint64_t sink = uint64_t(c.samples_per_patch()) + uint64_t(c.sample_rate()) + uint64_t(c.audio_vae.hop_length());
    for (const voxcpm::TransformerConfig& t : {c.base_lm(), c.residual_lm(), c.encoder_lm(), c.dit_lm()}) {
      FUZZ_CHECK(t.head_dim() > 0, "head_dim of an accepted config");
      sink += uint64_t(t.head_dim()) + uint64_t(t.num_hidden_layers);
    }
    volatile uint64_t keep = sink;
    (void)keep;
  } catch (const voxcpm::Error&) {
  }
  return 0;
}
