// The AudioVAE's elementwise and depthwise work on the CPU, where ATen spends more time than the
// decoder's matrix products: Snake as five tensor passes around a libm-accurate sine, and the
// dilated depthwise k7 conv through a generic convolution backend. The kernels here make one
// pass over the data (AVX2/FMA, parallel over channels) and agree with the ATen ops to float32
// rounding; they also write Snake's output straight into the inputs of the packed conv products
// (cpu_linear.h) that follow it. Callers use the ATen ops where packed_linear_supported() is false
// or off the CPU.
#pragma once

#include <ATen/Tensor.h>

namespace voxcpm::cpu {

// Snake: y = x + inv_alpha · sin(alpha · x)², per channel. x [B, C, L] float32, contiguous;
// alpha and inv_alpha [1, C, 1] float32. Returns a new tensor.
at::Tensor snake(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha);

// Depthwise conv1d without padding: y[b, c, j] = bias[c] + Σ_k w[c, 0, k] · x[b, c, j + k·dilation].
// x [B, C, L] float32, contiguous; w [C, 1, K]; bias [C] → [B, C, L − (K−1)·dilation].
at::Tensor depthwise_conv1d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t dilation);

// A dense conv1d with few output channels (the decoder's last conv, C → 1, k 7), where ATen
// unfolds the whole input first: y[b, o, j] = bias[o] + Σ_c Σ_k w[o, c, k] · x[b, c, j + k·dilation],
// no padding, one FMA chain per output in (c, k) order, so a frame's value does not depend on the
// chunk it falls in. x [B, C, L] float32, contiguous; w [O, C, K]; bias [O] → [B, O, L − (K−1)·dilation].
at::Tensor conv1d_few_outputs(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t dilation);

// Snake after P frames of history, [B, C, P + L] = pad ++ snake(x) (the input of a causal conv):
// pad is `history` [B, C, P], replaced by the last P frames of the result, or zeros when null.
at::Tensor snake_after_history(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha,
                               at::Tensor* history, int64_t pad);

// The input of a causal transposed conv as one product: [B, 2C, L] = [snake(x); snake(x) one frame
// later], whose shifted half starts with `previous` [B, C, 1] (replaced by the last frame of
// snake(x)), or with zeros when previous is null.
at::Tensor snake_and_shifted(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha,
                             at::Tensor* previous);

// The inputs of a transposed conv (kernel 2s, stride s) by Winograd's F(2,2), for output frames in
// pairs (2m, 2m+1): with u = snake(x) (x itself when alpha is undefined), A and B the kernel halves
// that meet u_j and u_{j−1},
//   y_{2m} = B (u_{2m−1} − u_{2m}) + (A + B) u_{2m},   y_{2m+1} = (A + B) u_{2m} + A (u_{2m+1} − u_{2m}):
// three products over half the frames instead of two over all of them (3/4 of the FLOPs). Returns
// [B, 3, C, ceil(L/2)] = [u_{2m}; u_{2m−1} − u_{2m}; u_{2m+1} − u_{2m}], where u_{−1} is `previous`
// [B, C, 1] (replaced by u_{L−1}) or zero when previous is null, and u_L = 0 for an odd L (that
// pair's second output is not a frame of this call).
at::Tensor transposed_conv_pair_inputs(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha,
                                       at::Tensor* previous);

// The output of those products in time order: even and odd [B, C·s, ceil(L/2)] (rows c·s + r,
// phase r of channel c) → y [B, C, L·s] with y[b, c, 2m·s + r] = even[b, c·s + r, m] and
// y[b, c, (2m+1)·s + r] = odd[b, c·s + r, m] for 2m+1 < L.
at::Tensor interleave_frame_pairs(const at::Tensor& even, const at::Tensor& odd, int64_t phases, int64_t frames);

// The channel-wise part of a residual unit, y = snake2(depthwise(pad ++ snake1(x))), in one pass
// per channel row (one parallel loop, no intermediate tensors): the same bits as the three calls
// above. pad is the P = (K−1)·dilation frames before x: `history` [B, C, P] (the conv inputs of
// earlier frames, replaced by the last P of pad ++ snake1(x)), or zeros when history is null.
// x [B, C, L] → [B, C, L].
at::Tensor snake_depthwise_snake(const at::Tensor& x, const at::Tensor& alpha1, const at::Tensor& inv_alpha1,
                                 const at::Tensor& w, const at::Tensor& bias, int64_t dilation,
                                 const at::Tensor& alpha2, const at::Tensor& inv_alpha2, at::Tensor* history);

}  // namespace voxcpm::cpu
