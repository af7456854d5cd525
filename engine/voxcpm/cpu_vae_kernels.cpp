#include "voxcpm/cpu_vae_kernels.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "voxcpm/cpu_linear.h"
#include "voxcpm/cpu_simd.h"
#include "voxcpm/error.h"
#include "voxcpm/weights.h"

namespace voxcpm::cpu {
namespace {

#ifdef VOXCPM_X86_KERNELS
// sin(t)² for eight lanes. t is reduced by multiples of π (sin² has period π, so the parity of
// the multiple does not matter) to r in [−π/2, π/2] with a two-part π and FMA, then sin r is its
// Taylor series to r¹¹ (truncation below 6e-8 on that interval: within an ulp or two of libm).
// Lanes beyond 2¹⁶ (where the reduction would lose bits) or not finite take std::sin.
VOXCPM_AVX2 inline __m256 sin_squared8(__m256 t) {
  const float pi_hi = static_cast<float>(M_PI);
  const float pi_lo = static_cast<float>(M_PI - static_cast<double>(pi_hi));
  const __m256 abs_t = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), t);
  if (_mm256_movemask_ps(_mm256_cmp_ps(abs_t, _mm256_set1_ps(65536.0f), _CMP_NLT_UQ))) {
    alignas(32) float v[8];
    _mm256_store_ps(v, t);
    for (float& e : v) e = std::sin(e) * std::sin(e);
    return _mm256_load_ps(v);
  }
  const __m256 q = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(static_cast<float>(M_1_PI))),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(q, _mm256_set1_ps(pi_hi), t);
  r = _mm256_fnmadd_ps(q, _mm256_set1_ps(pi_lo), r);
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 p = _mm256_set1_ps(static_cast<float>(-1.0 / 39916800.0));
  p = _mm256_fmadd_ps(p, r2, _mm256_set1_ps(static_cast<float>(1.0 / 362880.0)));
  p = _mm256_fmadd_ps(p, r2, _mm256_set1_ps(static_cast<float>(-1.0 / 5040.0)));
  p = _mm256_fmadd_ps(p, r2, _mm256_set1_ps(static_cast<float>(1.0 / 120.0)));
  p = _mm256_fmadd_ps(p, r2, _mm256_set1_ps(static_cast<float>(-1.0 / 6.0)));
  const __m256 s = _mm256_fmadd_ps(_mm256_mul_ps(p, r2), r, r);
  return _mm256_mul_ps(s, s);
}

VOXCPM_AVX2 inline __m256 snake8(__m256 x, __m256 a, __m256 inv_a) {
  return _mm256_fmadd_ps(sin_squared8(_mm256_mul_ps(a, x)), inv_a, x);
}

VOXCPM_AVX2 void snake_row(const float* x, float* y, int64_t len, float a, float inv_a) {
  const __m256 av = _mm256_set1_ps(a), iv = _mm256_set1_ps(inv_a);
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) _mm256_storeu_ps(y + j, snake8(_mm256_loadu_ps(x + j), av, iv));
  if (j < len) {  // the tail through the same lanes: a frame's value never depends on where it falls
    alignas(32) float buf[8] = {};
    std::copy(x + j, x + len, buf);
    _mm256_store_ps(buf, snake8(_mm256_load_ps(buf), av, iv));
    std::copy(buf, buf + (len - j), y + j);
  }
}

// One output row of the depthwise conv: K taps, eight outputs per step.
VOXCPM_AVX2 void depthwise_row(const float* x, float* y, int64_t len, const float* w, int64_t taps, float b,
                               int64_t d) {
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    __m256 acc = _mm256_set1_ps(b);
    for (int64_t k = 0; k < taps; ++k) acc = _mm256_fmadd_ps(_mm256_set1_ps(w[k]), _mm256_loadu_ps(x + j + k * d), acc);
    _mm256_storeu_ps(y + j, acc);
  }
  for (; j < len; ++j) {
    float acc = b;
    for (int64_t k = 0; k < taps; ++k) acc = std::fma(w[k], x[j + k * d], acc);
    y[j] = acc;
  }
}
// Output row o of a dense conv over frames j0..j1: eight frames per vector, one FMA chain per
// frame over (c, k); the tail frames take the same chain in scalar FMAs (same bits).
VOXCPM_AVX2 void dense_conv_row(const float* x, int64_t in_len, int64_t C, const float* w, int64_t taps, float b,
                                int64_t d, float* y, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + 16 <= j1; j += 16) {
    __m256 a0 = _mm256_set1_ps(b), a1 = a0;
    for (int64_t c = 0; c < C; ++c) {
      const float* xc = x + c * in_len + j;
      const float* wc = w + c * taps;
      for (int64_t k = 0; k < taps; ++k) {
        const __m256 wk = _mm256_set1_ps(wc[k]);
        a0 = _mm256_fmadd_ps(wk, _mm256_loadu_ps(xc + k * d), a0);
        a1 = _mm256_fmadd_ps(wk, _mm256_loadu_ps(xc + k * d + 8), a1);
      }
    }
    _mm256_storeu_ps(y + j, a0);
    _mm256_storeu_ps(y + j + 8, a1);
  }
  for (; j < j1; ++j) {
    float acc = b;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < taps; ++k) acc = std::fma(w[c * taps + k], x[c * in_len + j + k * d], acc);
    y[j] = acc;
  }
}
#endif

void check_input(const char* fn, const at::Tensor& x) {
  if (!packed_linear_supported()) throw Error(std::string(fn) + ": this CPU lacks AVX2/FMA");
  if (!x.defined() || x.dim() != 3 || x.scalar_type() != at::kFloat || !x.device().is_cpu() || !x.is_contiguous())
    throw Error(std::string(fn) + ": input must be contiguous float32 [B, C, L] on the CPU, got " +
                (x.defined() ? shape_str(x.sizes()) : std::string("an undefined tensor")));
}

void check_per_channel(const char* fn, const char* what, const at::Tensor& t, int64_t numel) {
  if (!t.defined() || t.numel() != numel || t.scalar_type() != at::kFloat || !t.device().is_cpu() ||
      !t.is_contiguous())
    throw Error(std::string(fn) + ": " + what + " must be contiguous float32 with " + std::to_string(numel) +
                " values");
}

void check_depthwise(const char* fn, const at::Tensor& w, const at::Tensor& bias, int64_t C, int64_t dilation) {
  if (!w.defined() || w.dim() != 3 || w.size(0) != C || w.size(1) != 1 || w.scalar_type() != at::kFloat ||
      !w.is_contiguous() || dilation < 1)
    throw Error(std::string(fn) + ": weight must be contiguous float32 [" + std::to_string(C) +
                ", 1, K] and dilation positive");
  check_per_channel(fn, "bias", bias, C);
}

// f(r) for rows r of [0, rows) in parallel, in tasks of about 16K elements of `work_per_row`.
template <class F>
void for_each_row(int64_t rows, int64_t work_per_row, const F& f) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(work_per_row, 1)),
                   [&](int64_t r0, int64_t r1) {
                     for (int64_t r = r0; r < r1; ++r) f(r);
                   });
}

}  // namespace

at::Tensor snake(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha) {
  check_input("snake", x);
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2);
  check_per_channel("snake", "alpha", alpha, C);
  check_per_channel("snake", "inv_alpha", inv_alpha, C);
  at::Tensor y = at::empty_like(x);
#ifdef VOXCPM_X86_KERNELS
  const float *xp = x.data_ptr<float>(), *a = alpha.data_ptr<float>(), *ia = inv_alpha.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for_each_row(B * C, L, [&](int64_t r) { snake_row(xp + r * L, yp + r * L, L, a[r % C], ia[r % C]); });
#endif
  return y;
}


at::Tensor depthwise_conv1d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t dilation) {
  check_input("depthwise_conv1d", x);
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2);
  check_depthwise("depthwise_conv1d", w, bias, C, dilation);
  const int64_t taps = w.size(2), out_len = L - (taps - 1) * dilation;
  if (out_len < 0)
    throw Error("depthwise_conv1d: input of " + std::to_string(L) + " frames is shorter than the kernel's reach");
  at::Tensor y = at::empty({B, C, out_len}, x.options());
#ifdef VOXCPM_X86_KERNELS
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *bp = bias.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for_each_row(B * C, out_len * taps, [&](int64_t r) {
    depthwise_row(xp + r * L, yp + r * out_len, out_len, wp + (r % C) * taps, taps, bp[r % C], dilation);
  });
#endif
  return y;
}

at::Tensor conv1d_few_outputs(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t dilation) {
  const char* fn = "conv1d_few_outputs";
  check_input(fn, x);
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2);
  if (!w.defined() || w.dim() != 3 || w.size(1) != C || w.scalar_type() != at::kFloat || !w.is_contiguous() ||
      dilation < 1)
    throw Error(std::string(fn) + ": weight must be contiguous float32 [O, " + std::to_string(C) +
                ", K] and dilation positive");
  const int64_t O = w.size(0), taps = w.size(2), out_len = L - (taps - 1) * dilation;
  check_per_channel(fn, "bias", bias, O);
  if (out_len < 0)
    throw Error(std::string(fn) + ": input of " + std::to_string(L) + " frames is shorter than the kernel's reach");
  at::Tensor y = at::empty({B, O, out_len}, x.options());
#ifdef VOXCPM_X86_KERNELS
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *bp = bias.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  constexpr int64_t kBlock = 512;  // frames per task
  const int64_t blocks = (out_len + kBlock - 1) / kBlock;
  at::parallel_for(0, B * O * blocks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t row = t / blocks, b = row / O, o = row % O, j0 = (t % blocks) * kBlock;
      dense_conv_row(xp + b * C * L, L, C, wp + o * C * taps, taps, bp[o], dilation, yp + row * out_len, j0,
                     std::min(out_len, j0 + kBlock));
    }
  });
#endif
  return y;
}

namespace {

void check_history(const char* fn, const at::Tensor* h, int64_t B, int64_t C, int64_t P) {
  if (h && (!h->defined() || h->sizes() != at::IntArrayRef({B, C, P}) || h->scalar_type() != at::kFloat ||
            !h->device().is_cpu() || !h->is_contiguous()))
    throw Error(std::string(fn) + ": history must be contiguous float32 [" + std::to_string(B) + ", " +
                std::to_string(C) + ", " + std::to_string(P) + "] on the CPU");
}

}  // namespace

at::Tensor snake_after_history(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha,
                               at::Tensor* history, int64_t pad) {
  const char* fn = "snake_after_history";
  check_input(fn, x);
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2), P = pad;
  check_per_channel(fn, "alpha", alpha, C);
  check_per_channel(fn, "inv_alpha", inv_alpha, C);
  if (P < 0) throw Error(std::string(fn) + ": negative pad");
  check_history(fn, history, B, C, P);
  at::Tensor y = at::empty({B, C, P + L}, x.options());
#ifdef VOXCPM_X86_KERNELS
  const float *xp = x.data_ptr<float>(), *a = alpha.data_ptr<float>(), *ia = inv_alpha.data_ptr<float>();
  float* hp = history ? history->data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  for_each_row(B * C, L, [&](int64_t r) {
    float* yr = yp + r * (P + L);
    float* h = hp ? hp + r * P : nullptr;
    if (h)
      std::copy(h, h + P, yr);
    else
      std::fill(yr, yr + P, 0.0f);
    snake_row(xp + r * L, yr + P, L, a[r % C], ia[r % C]);
    if (h) std::copy(yr + L, yr + L + P, h);
  });
#endif
  return y;
}

at::Tensor snake_and_shifted(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha,
                             at::Tensor* previous) {
  const char* fn = "snake_and_shifted";
  check_input(fn, x);
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2);
  check_per_channel(fn, "alpha", alpha, C);
  check_per_channel(fn, "inv_alpha", inv_alpha, C);
  check_history(fn, previous, B, C, 1);
  if (L == 0) throw Error(std::string(fn) + ": no frames");
  at::Tensor y = at::empty({B, 2 * C, L}, x.options());
#ifdef VOXCPM_X86_KERNELS
  const float *xp = x.data_ptr<float>(), *a = alpha.data_ptr<float>(), *ia = inv_alpha.data_ptr<float>();
  float* pp = previous ? previous->data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  for_each_row(B * C, L, [&](int64_t r) {
    const int64_t b = r / C, c = r % C;
    float* s = yp + (b * 2 * C + c) * L;  // snake(x) row
    float* shifted = s + C * L;            // the same row one frame later
    snake_row(xp + r * L, s, L, a[c], ia[c]);
    shifted[0] = pp ? pp[r] : 0.0f;
    std::copy(s, s + L - 1, shifted + 1);
    if (pp) pp[r] = s[L - 1];
  });
#endif
  return y;
}

at::Tensor transposed_conv_pair_inputs(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& inv_alpha,
                                       at::Tensor* previous) {
  const char* fn = "transposed_conv_pair_inputs";
  check_input(fn, x);
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2), M = (L + 1) / 2;
  const bool with_snake = alpha.defined();
  if (with_snake) {
    check_per_channel(fn, "alpha", alpha, C);
    check_per_channel(fn, "inv_alpha", inv_alpha, C);
  }
  check_history(fn, previous, B, C, 1);
  if (L == 0) throw Error(std::string(fn) + ": no frames");
  at::Tensor y = at::empty({B, 3, C, M}, x.options());
#ifdef VOXCPM_X86_KERNELS
  const float* xp = x.data_ptr<float>();
  const float* a = with_snake ? alpha.data_ptr<float>() : nullptr;
  const float* ia = with_snake ? inv_alpha.data_ptr<float>() : nullptr;
  float* pp = previous ? previous->data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, B * C, std::max<int64_t>(1, 16384 / L), [&](int64_t r0, int64_t r1) {
    std::vector<float> u(static_cast<size_t>(2 * M + 1));  // u_{−1}, u_0 .. u_{L−1} (, u_L = 0)
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / C, c = r % C;
      u[0] = pp ? pp[r] : 0.0f;
      if (with_snake)
        snake_row(xp + r * L, u.data() + 1, L, a[c], ia[c]);
      else
        std::copy(xp + r * L, xp + (r + 1) * L, u.begin() + 1);
      if (L % 2) u[static_cast<size_t>(L) + 1] = 0.0f;
      if (pp) pp[r] = u[static_cast<size_t>(L)];
      float* xe = yp + (b * 3 * C + c) * M;  // u_{2m}
      float* d_prev = xe + C * M;            // u_{2m−1} − u_{2m}
      float* d_next = d_prev + C * M;        // u_{2m+1} − u_{2m}
      for (int64_t m = 0; m < M; ++m) {
        const float mid = u[static_cast<size_t>(2 * m + 1)];
        xe[m] = mid;
        d_prev[m] = u[static_cast<size_t>(2 * m)] - mid;
        d_next[m] = u[static_cast<size_t>(2 * m + 2)] - mid;
      }
    }
  });
#endif
  return y;
}

at::Tensor interleave_frame_pairs(const at::Tensor& even, const at::Tensor& odd, int64_t phases, int64_t frames) {
  const char* fn = "interleave_frame_pairs";
  check_input(fn, even);
  check_input(fn, odd);
  const int64_t B = even.size(0), N = even.size(1), M = even.size(2), s = phases;
  if (odd.sizes() != even.sizes() || s < 1 || N % s != 0 || frames < 0 || (frames + 1) / 2 != M)
    throw Error(std::string(fn) + ": even and odd must both be [B, C·" + std::to_string(s) + ", ceil(" +
                std::to_string(frames) + "/2)], got " + shape_str(even.sizes()) + " and " + shape_str(odd.sizes()));
  const int64_t C = N / s, T = frames * s;
  at::Tensor y = at::empty({B, C, T}, even.options());
#ifdef VOXCPM_X86_KERNELS
  const float *ep = even.data_ptr<float>(), *op = odd.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for_each_row(B * C, T, [&](int64_t row) {  // row = b·C + c: its phase rows are row·s .. row·s + s − 1
    const float* e = ep + row * s * M;
    const float* o = op + row * s * M;
    float* yr = yp + row * T;
    for (int64_t m = 0; m < M; ++m) {
      float* y0 = yr + 2 * m * s;
      for (int64_t r = 0; r < s; ++r) y0[r] = e[r * M + m];
      if (2 * m + 1 < frames)
        for (int64_t r = 0; r < s; ++r) y0[s + r] = o[r * M + m];
    }
  });
#endif
  return y;
}

at::Tensor snake_depthwise_snake(const at::Tensor& x, const at::Tensor& alpha1, const at::Tensor& inv_alpha1,
                                 const at::Tensor& w, const at::Tensor& bias, int64_t dilation,
                                 const at::Tensor& alpha2, const at::Tensor& inv_alpha2, at::Tensor* history) {
  const char* fn = "snake_depthwise_snake";
  check_input(fn, x);
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2);
  for (const at::Tensor* t : {&alpha1, &inv_alpha1, &alpha2, &inv_alpha2}) check_per_channel(fn, "alpha and 1/alpha", *t, C);
  check_depthwise(fn, w, bias, C, dilation);
  const int64_t taps = w.size(2), P = (taps - 1) * dilation;
  check_history(fn, history, B, C, P);
  at::Tensor y = at::empty_like(x);
#ifdef VOXCPM_X86_KERNELS
  const float *xp = x.data_ptr<float>(), *a1 = alpha1.data_ptr<float>(), *i1 = inv_alpha1.data_ptr<float>();
  const float *a2 = alpha2.data_ptr<float>(), *i2 = inv_alpha2.data_ptr<float>();
  const float *wp = w.data_ptr<float>(), *bp = bias.data_ptr<float>();
  float* hp = history ? history->data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, B * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(L * taps, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(static_cast<size_t>(P + L));  // pad ++ snake1(x) of one row
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r % C;
      float* h = hp ? hp + r * P : nullptr;
      if (h)
        std::copy(h, h + P, buf.begin());
      else
        std::fill(buf.begin(), buf.begin() + P, 0.0f);
      snake_row(xp + r * L, buf.data() + P, L, a1[c], i1[c]);
      if (h) std::copy(buf.begin() + L, buf.end(), h);
      float* yr = yp + r * L;
      depthwise_row(buf.data(), yr, L, wp + c * taps, taps, bp[c], dilation);
      snake_row(yr, yr, L, a2[c], i2[c]);
    }
  });
#endif
  return y;
}

}  // namespace voxcpm::cpu
