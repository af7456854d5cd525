// Float32 y = x Wᵀ + b on the CPU for the row counts of decoding (1 row per LM step, 5 for a
// LocEnc patch, 18 for a LocDiT call), where a BLAS GEMM spends a third of its time re-packing
// the weight matrix on every call and a one-row GEMM reads it at a fraction of memory speed.
// The weight is packed once at load into panels of 16 outputs ([ceil(N/16), K, 16], zero
// padded), which an AVX2/FMA micro-kernel streams straight from memory. A bfloat16 checkpoint
// stays bfloat16 in the panels and is widened exactly in registers: the float32 products of the
// same values at half the memory and bandwidth. Each output of a multi-row call is one float32
// sum over k in order 0..K-1, whatever row it is; a one-row call (an LM decode step) sums even
// and odd k in two chains, then adds them (a BLAS blocks k differently: all agree to rounding).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

namespace voxcpm::cpu {

// True on x86-64 CPUs with AVX2 and FMA (checked at run time); elsewhere callers use at::linear.
bool packed_linear_supported();

constexpr int64_t kPanel = 16;  // outputs per panel

// w [N, K] (any floating dtype, any strides) → packed panels [ceil(N/16), K, 16], in one pass
// and one allocation: bfloat16 for a bfloat16 w, else float32.
at::Tensor pack_linear_weight(const at::Tensor& w);

// x [..., K] float32 on the CPU, `packed` from pack_linear_weight of an [N, K] weight, bias [N]
// float32 or undefined → [..., N]. Parallel over panels with at::parallel_for.
at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& packed, int64_t n, const at::Tensor& bias);

// Several products with the same input, x [..., K] against packed [N_i, K] weights (same dtype,
// no bias) → [..., ΣN_i], matrix i's outputs after those of 0..i-1, each output the bits
// packed_linear gives: one parallel loop over all panels (fused Q/K/V and gate/up projections).
at::Tensor packed_linears(const at::Tensor& x, const std::vector<at::Tensor>& packed, const std::vector<int64_t>& n);

// y [n] = W · SiLU(x) for one row x [K] against `packed` (from an [n, K] weight, n ≤ 16): the stop
// predictor's two-output head. A plain loop, where SiLU and a product as ATen ops cost 10-20 µs
// each for a few thousand multiply-adds. Each output is one float32 sum over k in order.
void packed_linear_of_silu_row(const float* x, const at::Tensor& packed, int64_t n, float* y);

// The same product in channels-first layout, for convolutions: x [K, M] (K input channels·taps,
// M frames) → y [N, M] = W x + b. With `phases` s > 1 (a transposed convolution of stride s, whose
// output j = c·s + r is phase r of channel c), the phases interleave in time: y [N/s, M·s] with
// y[c, m·s + r] = (W x + b)[c·s + r, m], written in place by the kernel. A `residual` [N, M]
// (one phase only) is added to the result as (W x + b) + residual, in the kernel's store.
at::Tensor packed_linear_channels_first(const at::Tensor& x, const at::Tensor& packed, int64_t n,
                                        const at::Tensor& bias, int64_t phases = 1,
                                        const at::Tensor& residual = at::Tensor());

}  // namespace voxcpm::cpu
