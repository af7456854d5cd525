// The transformer work between the matrix products, in float32 on the CPU at decode sizes (an LM
// step, a LocDiT/LocEnc call of a few positions), where the tensor-op form's ATen calls cost more
// in dispatch and allocation than in arithmetic: self-attention as one pass from the fused Q/K/V
// projection to the output projection's input (instead of ten calls: views, RoPE, cache copies,
// two batched products, scale, mask, softmax, transposes), SiLU(gate)·up in one pass, and the
// residual adds in place. Same math as the tensor ops; sums run in another order and exp is this
// file's own, so results agree with them to float32 rounding, not bit for bit.
#pragma once

#include <cstdint>

#include <ATen/Tensor.h>

namespace voxcpm::cpu {

// Rotate-half RoPE of one head row of hd values (hd even): y = x·cos + rotate_half(x)·sin, the
// negation of rotate_half written as a subtraction (same bits). y must not alias x.
void rope_row(const float* x, const float* cos, const float* sin, int64_t hd, float* y);

struct AttentionShape {
  int64_t batch = 0, queries = 0;  // B sequences of S new positions each
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
};

// True where attention_from_qkv runs (an AVX2/FMA CPU) for this head width (a multiple of 8).
bool attention_from_qkv_supported(int64_t head_dim);

// qkv: [B·S, (heads + 2·kv)·hd] float32, contiguous; each row holds the query heads, then the key
// heads, then the value heads of one position (the fused projection's output).
// keys, values: [B, kv, T, hd] float32 with contiguous hd rows (a layer of the KV cache, or
// scratch), T ≥ pos + S. The new positions pos..pos+S−1 are written there first, keys after RoPE.
// Query s attends to keys 0..pos+s when causal, else to 0..pos+S−1. Query head h reads kv head
// h / (heads / kv) (GQA). cos, sin: [S, hd] float32 contiguous tables of those positions, or both
// undefined (no RoPE). Returns [B, S, heads·hd] float32.
at::Tensor attention_from_qkv(const at::Tensor& qkv, const AttentionShape& shape, const at::Tensor& keys,
                              const at::Tensor& values, int64_t pos, bool causal, const at::Tensor& cos,
                              const at::Tensor& sin, double scale);

// gu [..., 2F] float32 contiguous (gate outputs, then up outputs, per row) → [..., F] =
// silu(gate) · up, silu(g) = g / (1 + exp(−g)).
at::Tensor silu_mul(const at::Tensor& gu);

// x += h · scale in place (scale 1: x += h); x and h float32 contiguous of the same shape. The
// product is rounded before the add, as the tensor ops round it.
void add_scaled_(at::Tensor& x, const at::Tensor& h, float scale);

}  // namespace voxcpm::cpu
