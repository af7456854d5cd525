#include "voxcpm/cpu_transformer_kernels.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "voxcpm/cpu_linear.h"
#include "voxcpm/cpu_simd.h"
#include "voxcpm/error.h"

namespace voxcpm::cpu {

void rope_row(const float* x, const float* c, const float* s, int64_t hd, float* y) {
  const int64_t half = hd / 2;
  for (int64_t i = 0; i < half; ++i) y[i] = x[i] * c[i] - x[i + half] * s[i];
  for (int64_t i = half; i < hd; ++i) y[i] = x[i] * c[i] + x[i - half] * s[i];
}

namespace {

#ifdef VOXCPM_X86_KERNELS
// Σ a[i]·b[i] over n (a multiple of 8) in two FMA chains.
VOXCPM_AVX2 float dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  if (i < n) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

// out[0..8U) = Σ_j p[j] · v[j·stride + 0..8U), the accumulators in registers.
template <int U>
VOXCPM_AVX2 void weighted_sum_block(const float* p, const float* v, int64_t n, int64_t stride, float* out) {
  __m256 acc[U];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) acc[u] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m256 pj = _mm256_broadcast_ss(p + j);
    const float* vj = v + j * stride;
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) acc[u] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * u), acc[u]);
  }
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) _mm256_storeu_ps(out + 8 * u, acc[u]);
}

// out[0..hd) = Σ_j p[j] · v[j·stride + 0..hd), hd a multiple of 8, in blocks of 64 columns.
void weighted_sum(const float* p, const float* v, int64_t n, int64_t stride, int64_t hd, float* out) {
  for (int64_t c = 0; c < hd; c += 64) {
    switch (std::min<int64_t>(64, hd - c) / 8) {
      case 8: weighted_sum_block<8>(p, v + c, n, stride, out + c); break;
      case 7: weighted_sum_block<7>(p, v + c, n, stride, out + c); break;
      case 6: weighted_sum_block<6>(p, v + c, n, stride, out + c); break;
      case 5: weighted_sum_block<5>(p, v + c, n, stride, out + c); break;
      case 4: weighted_sum_block<4>(p, v + c, n, stride, out + c); break;
      case 3: weighted_sum_block<3>(p, v + c, n, stride, out + c); break;
      case 2: weighted_sum_block<2>(p, v + c, n, stride, out + c); break;
      default: weighted_sum_block<1>(p, v + c, n, stride, out + c); break;
    }
  }
}
// e^x for 8 floats: x = n·ln2 + r with ln2 split in two (Cody–Waite), e^r by the degree-6
// Cephes expf polynomial, then ·2^⌊n/2⌋·2^(n−⌊n/2⌋) (two factors, so that n = 128 and the
// subnormal results are reached). Within 2 ulp of expf over the whole float range: +inf above
// 88.73, 0 below −104 (as expf), NaN stays NaN (min/max return their second operand for a NaN).
VOXCPM_AVX2 __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(88.8f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(ni, 1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
  const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

// y[i] = g[i] / (1 + exp(−g[i])) · u[i] for i < n.
VOXCPM_AVX2 void silu_mul_row(const float* g, const float* u, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, gv))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
  }
  for (; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}
#endif

void require(bool ok, const std::string& what) {
  if (!ok) throw Error("attention_from_qkv: " + what);
}

}  // namespace

bool attention_from_qkv_supported(int64_t head_dim) {
#ifdef VOXCPM_X86_KERNELS
  return head_dim > 0 && head_dim % 8 == 0 && packed_linear_supported();
#else
  (void)head_dim;
  return false;
#endif
}

at::Tensor attention_from_qkv(const at::Tensor& qkv, const AttentionShape& sh, const at::Tensor& keys,
                              const at::Tensor& values, int64_t pos, bool causal, const at::Tensor& cos,
                              const at::Tensor& sin, double scale) {
  const int64_t B = sh.batch, S = sh.queries, heads = sh.heads, kv = sh.kv_heads, hd = sh.head_dim;
  require(attention_from_qkv_supported(hd), "needs an AVX2/FMA CPU and a head width that is a multiple of 8");
  require(B > 0 && S > 0 && kv > 0 && heads % kv == 0 && pos >= 0, "inconsistent shape or negative position");
  const int64_t width = (heads + 2 * kv) * hd;
  require(qkv.defined() && qkv.scalar_type() == at::kFloat && qkv.device().is_cpu() && qkv.is_contiguous() &&
              qkv.numel() == B * S * width,
          "qkv must be float32 [B·S, (heads + 2·kv)·hd], contiguous, on the CPU");
  for (const at::Tensor* t : {&keys, &values})
    require(t->defined() && t->scalar_type() == at::kFloat && t->device().is_cpu() && t->dim() == 4 &&
                t->size(0) == B && t->size(1) == kv && t->size(2) >= pos + S && t->size(3) == hd && t->stride(3) == 1,
            "keys/values must be float32 [B, kv, T >= pos + S, hd] with contiguous rows");
  require(keys.strides() == values.strides(), "keys and values must share a layout");
  const bool rope = cos.defined();
  if (rope)
    require(cos.scalar_type() == at::kFloat && sin.defined() && sin.scalar_type() == at::kFloat &&
                cos.is_contiguous() && sin.is_contiguous() && cos.numel() == S * hd && sin.numel() == S * hd,
            "cos/sin must be float32 [S, hd], contiguous");

  at::Tensor out = at::empty({B, S, heads * hd}, qkv.options());
#ifdef VOXCPM_X86_KERNELS
  const float* src = qkv.data_ptr<float>();
  float *kp = keys.data_ptr<float>(), *vp = values.data_ptr<float>(), *op = out.data_ptr<float>();
  const float *cp = rope ? cos.data_ptr<float>() : nullptr, *sp = rope ? sin.data_ptr<float>() : nullptr;
  const int64_t sb = keys.stride(0), sg = keys.stride(1), st = keys.stride(2);

  // The new keys (after RoPE) and values into their slots.
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const float* row = src + (b * S + s) * width;
      for (int64_t g = 0; g < kv; ++g) {
        const int64_t slot = b * sb + g * sg + (pos + s) * st;
        const float* k = row + (heads + g) * hd;
        if (rope)
          rope_row(k, cp + s * hd, sp + s * hd, hd, kp + slot);
        else
          std::copy(k, k + hd, kp + slot);
        const float* v = row + (heads + kv + g) * hd;
        std::copy(v, v + hd, vp + slot);
      }
    }

  // One task per (sequence, query head): its queries against its kv head's keys.
  const int64_t group = heads / kv, keys_max = pos + S;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, S * keys_max * hd));
  at::parallel_for(0, B * heads, grain, [&](int64_t t0, int64_t t1) {
    std::vector<float> q(static_cast<size_t>(hd)), p(static_cast<size_t>(keys_max));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / heads, h = t % heads;
      const float* kg = kp + b * sb + (h / group) * sg;
      const float* vg = vp + b * sb + (h / group) * sg;
      for (int64_t s = 0; s < S; ++s) {
        const float* qs = src + (b * S + s) * width + h * hd;
        if (rope)
          rope_row(qs, cp + s * hd, sp + s * hd, hd, q.data());
        else
          std::copy(qs, qs + hd, q.begin());
        const int64_t n = causal ? pos + s + 1 : keys_max;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          p[j] = dot(q.data(), kg + j * st, hd) * static_cast<float>(scale);
          mx = std::max(mx, p[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += (p[j] = std::exp(p[j] - mx));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < n; ++j) p[j] *= inv;
        weighted_sum(p.data(), vg, n, st, hd, op + (b * S + s) * heads * hd + h * hd);
      }
    }
  });
#endif
  return out;
}

at::Tensor silu_mul(const at::Tensor& gu) {
  if (!gu.defined() || gu.scalar_type() != at::kFloat || !gu.device().is_cpu() || !gu.is_contiguous() ||
      gu.dim() < 1 || gu.size(-1) % 2 != 0)
    throw Error("silu_mul: input must be float32 [..., 2F], contiguous, on the CPU");
  const int64_t F = gu.size(-1) / 2, rows = F ? gu.numel() / (2 * F) : 0;
  std::vector<int64_t> sizes = gu.sizes().vec();
  sizes.back() = F;
  at::Tensor y = at::empty(sizes, gu.options());
  const float* src = gu.data_ptr<float>();
  float* dst = y.data_ptr<float>();
  // Tasks of whole rows or, for few rows, of 1024-wide column blocks (an LM step is one row).
  const int64_t blocks = (F + 1023) / 1024;
  const bool avx2 = packed_linear_supported();
  at::parallel_for(0, rows * blocks, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t / blocks, c = (t % blocks) * 1024, n = std::min<int64_t>(1024, F - c);
      const float* row = src + r * 2 * F;
#ifdef VOXCPM_X86_KERNELS
      if (avx2) {
        silu_mul_row(row + c, row + F + c, dst + r * F + c, n);
        continue;
      }
#endif
      for (int64_t i = c; i < c + n; ++i) dst[r * F + i] = row[i] / (1.0f + std::exp(-row[i])) * row[F + i];
    }
  });
  return y;
}

void add_scaled_(at::Tensor& x, const at::Tensor& h, float scale) {
  if (!x.defined() || !h.defined() || x.scalar_type() != at::kFloat || h.scalar_type() != at::kFloat ||
      !x.device().is_cpu() || !h.device().is_cpu() || !x.is_contiguous() || !h.is_contiguous() ||
      x.sizes() != h.sizes())
    throw Error("add_scaled_: x and h must be float32 contiguous CPU tensors of one shape");
  float* xp = x.data_ptr<float>();
  const float* hp = h.data_ptr<float>();
  const int64_t n = x.numel();
  if (scale == 1.0f) {
    for (int64_t i = 0; i < n; ++i) xp[i] += hp[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    // Two statements: rounded on its own (ISO C++ mode does not contract across them into an FMA).
    const float product = hp[i] * scale;
    xp[i] += product;
  }
}

}  // namespace voxcpm::cpu
