#include "voxcpm/cpu_linear.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "voxcpm/cpu_simd.h"
#include "voxcpm/error.h"
#include "voxcpm/weights.h"

namespace voxcpm::cpu {
namespace {

#ifdef VOXCPM_X86_KERNELS
// Eight weights as float32: loaded, or widened exactly from bfloat16 (its bits are the top half).
VOXCPM_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
VOXCPM_AVX2 inline __m256 load8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

// Where output (m, j) goes: y[m · row + (j / group) · group_stride + (j % group) · col]. Row-major
// [M, N] is {N, 1, 1, 1}, channels-first [N, M] {1, 1, M, 1}; a transposed convolution's N = C·s
// outputs whose s phases interleave in time ([C, M·s]) are {s, s, M·s, 1}.
struct OutLayout {
  int64_t row, group, group_stride, col;
  int64_t at(int64_t j) const { return (j / group) * group_stride + (j % group) * col; }
};

// Outputs j0..j0+16 of RX consecutive rows: xt is x transposed ([K][M], offset to the first
// row), panel is [K][16] of W (float or bfloat16 bits). 2·RX accumulators stay in registers.
// Every `every` k-steps a 64-byte line of the next panel is prefetched from `prefetch` on (null:
// none), so that the passes over this panel share fetching the next one while the FMAs run. With
// one pass (up to 6 rows: LM steps, LocEnc) the panel is used once and the line goes to L2 only:
// measured 8–10% faster than into L1 at 1 and 5 rows, and 7% slower at 18 rows.
template <int RX, class W, bool kTwoChains = false>
VOXCPM_AVX2 void micro(const W* panel, const float* xt, int64_t m_stride, int64_t k_len, float* y, const OutLayout& o,
                       int64_t j0, int64_t cols, const float* bias, const char* prefetch, int64_t every) {
  __m256 lo[RX], hi[RX];
#pragma GCC unroll 6
  for (int r = 0; r < RX; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
  // Lines of the next panel to fetch per k-step: one for float32, half a line for bfloat16.
  const int64_t every_base = every;
  every = every * static_cast<int64_t>(64 / (kPanel * sizeof(W)));
  int64_t countdown = every;
  // After `steps` more k-steps: the next line of `prefetch` once the countdown has run out.
  auto prefetch_after = [&](int64_t steps) {
    if (!prefetch || (countdown -= steps) > 0) return;
    if (every_base == 1)
      _mm_prefetch(prefetch, _MM_HINT_T1);
    else
      _mm_prefetch(prefetch, _MM_HINT_T0);
    prefetch += 64;
    countdown += every;
  };
  int64_t k = 0;
  if (kTwoChains) {
    // A call of one row (an LM decode step): two FMA chains per output (even and odd k), so that
    // the loop is not held to the FMA latency (one-row products 33 -> 47 GB/s); their sum is the
    // output, a summation order of its own. Tiles of a multi-row call never take it, so a row's
    // bits there do not depend on where the row falls.
    __m256 lo1 = _mm256_setzero_ps(), hi1 = _mm256_setzero_ps();
    for (; k + 2 <= k_len; k += 2) {
      prefetch_after(2);
      const __m256 x0 = _mm256_broadcast_ss(xt + k * m_stride), x1 = _mm256_broadcast_ss(xt + (k + 1) * m_stride);
      lo[0] = _mm256_fmadd_ps(load8(panel + k * kPanel), x0, lo[0]);
      hi[0] = _mm256_fmadd_ps(load8(panel + k * kPanel + 8), x0, hi[0]);
      lo1 = _mm256_fmadd_ps(load8(panel + (k + 1) * kPanel), x1, lo1);
      hi1 = _mm256_fmadd_ps(load8(panel + (k + 1) * kPanel + 8), x1, hi1);
    }
    lo[0] = _mm256_add_ps(lo[0], lo1);
    hi[0] = _mm256_add_ps(hi[0], hi1);
  }
  for (; k < k_len; ++k) {
    prefetch_after(1);
    const __m256 w0 = load8(panel + k * kPanel), w1 = load8(panel + k * kPanel + 8);
    const float* xk = xt + k * m_stride;
#pragma GCC unroll 6
    for (int r = 0; r < RX; ++r) {
      const __m256 xv = _mm256_broadcast_ss(xk + r);
      lo[r] = _mm256_fmadd_ps(w0, xv, lo[r]);
      hi[r] = _mm256_fmadd_ps(w1, xv, hi[r]);
    }
  }
  // Through a fully unrolled store, so that the accumulators never live in memory in the loop.
  alignas(32) float out[RX][kPanel];
#pragma GCC unroll 6
  for (int r = 0; r < RX; ++r) {
    _mm256_store_ps(out[r], lo[r]);
    _mm256_store_ps(out[r] + 8, hi[r]);
  }
  // Output offsets stepped per column, not divided per element: with a short k loop (the
  // AudioVAE's 64- to 256-channel convs) a division per output cost as much as the FMAs.
  int64_t off[kPanel];
  for (int64_t j = 0, q = j0 / o.group, rem = j0 % o.group; j < cols; ++j) {
    off[j] = q * o.group_stride + rem * o.col;
    if (++rem == o.group) rem = 0, ++q;
  }
  for (int r = 0; r < RX; ++r) {
    float* yr = y + r * o.row;
    if (bias)
      for (int64_t j = 0; j < cols; ++j) yr[off[j]] = out[r][j] + bias[j];
    else
      for (int64_t j = 0; j < cols; ++j) yr[off[j]] = out[r][j];
  }
}

// All rows against one panel in tiles of at most 6, as even as they go (14 rows: 5, 5, 4, not
// 6, 6, 2: a tile of 2 rows has too few FMA chains to hide their latency); pass c of `passes`
// prefetches its share of `next`. A tile's size never changes an output's bits. xt is
// [K][m_stride] (column m0 onwards used); y points at row 0 of the outputs, panel at j0.
template <class W>
void panel_rows(const W* panel, const float* xt, int64_t m_stride, int64_t m_len, int64_t k_len, float* y,
                const OutLayout& o, int64_t j0, int64_t cols, const float* bias, const W* next) {
  const int64_t passes = (m_len + 5) / 6;
  if (passes == 0) return;
  const int64_t base = m_len / passes, longer = m_len % passes;  // the first `longer` tiles take base + 1
  for (int64_t c = 0, m = 0; c < passes; ++c) {
    const int64_t rows = base + (c < longer ? 1 : 0);
    const char* pf = next ? reinterpret_cast<const char*>(next + (c * k_len / passes) * kPanel) : nullptr;
    const float* xm = xt + m;
    float* ym = y + m * o.row;
    switch (rows) {
      case 6: micro<6>(panel, xm, m_stride, k_len, ym, o, j0, cols, bias, pf, passes); break;
      case 5: micro<5>(panel, xm, m_stride, k_len, ym, o, j0, cols, bias, pf, passes); break;
      case 4: micro<4>(panel, xm, m_stride, k_len, ym, o, j0, cols, bias, pf, passes); break;
      case 3: micro<3>(panel, xm, m_stride, k_len, ym, o, j0, cols, bias, pf, passes); break;
      case 2: micro<2>(panel, xm, m_stride, k_len, ym, o, j0, cols, bias, pf, passes); break;
      default:
        if (m_stride == 1)  // the whole call is this one row
          micro<1, W, true>(panel, xm, m_stride, k_len, ym, o, j0, cols, bias, pf, passes);
        else
          micro<1>(panel, xm, m_stride, k_len, ym, o, j0, cols, bias, pf, passes);
        break;
    }
    m += rows;
  }
}

// Several weights of the same input width against one x, as one parallel loop over all their
// panels: one fork/join instead of one per matrix, and the weight stream (and its prefetch)
// runs on from one matrix into the next. Matrix i's outputs start at column j_off[i]; bias (or
// null) holds one value per column of the concatenation.
template <class W>
void run_parts_as(const float* xt, int64_t m_len, int64_t k_len, const std::vector<const W*>& wps,
                  const std::vector<int64_t>& ns, const float* bias, float* y, const OutLayout& o) {
  std::vector<int64_t> first_panel{0}, j_off{0};
  for (size_t i = 0; i < ns.size(); ++i) {
    first_panel.push_back(first_panel.back() + (ns[i] + kPanel - 1) / kPanel);
    j_off.push_back(j_off.back() + ns[i]);
  }
  auto locate = [&](int64_t p, size_t& i) {  // panel p of the concatenation → matrix i, its pointer
    while (p >= first_panel[i + 1]) ++i;
    return wps[i] + (p - first_panel[i]) * k_len * kPanel;
  };
  at::parallel_for(0, first_panel.back(), 4, [&](int64_t p0, int64_t p1) {
    size_t i = 0, i_next = 0;
    for (int64_t p = p0; p < p1; ++p) {
      const W* panel = locate(p, i);
      const W* next = p + 1 < p1 ? locate(p + 1, i_next) : nullptr;
      const int64_t local_j = (p - first_panel[i]) * kPanel, j0 = j_off[i] + local_j;
      panel_rows(panel, xt, m_len, m_len, k_len, y, o, j0, std::min(kPanel, ns[i] - local_j),
                 bias ? bias + j0 : nullptr, next);
    }
  });
}

// Work is split over panels, and also over blocks of rows when there are too few panels to keep
// every thread busy (the AudioVAE's 64-channel convs over thousands of frames). Each output is
// still one sum over k in order, so any split gives the same bits.
template <class W>
void run_panels_as(const float* xt, int64_t m_len, int64_t k_len, const W* wp, int64_t panels, int64_t n,
                   const float* bias, float* y, const OutLayout& o) {
  const int64_t want_tasks = 4 * static_cast<int64_t>(at::get_num_threads());
  int64_t m_block = m_len;
  if (panels < want_tasks && m_len >= 48) {
    const int64_t blocks = std::min((want_tasks + panels - 1) / panels, m_len / 24);
    m_block = ((m_len + blocks - 1) / blocks + 5) / 6 * 6;
  }
  const int64_t m_blocks = (m_len + m_block - 1) / m_block;
  if (m_blocks == 1) return run_parts_as(xt, m_len, k_len, std::vector<const W*>{wp}, {n}, bias, y, o);
  at::parallel_for(0, panels * m_blocks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p = t / m_blocks, m0 = (t % m_blocks) * m_block, j0 = p * kPanel;
      panel_rows(wp + p * k_len * kPanel, xt + m0, m_len, std::min(m_block, m_len - m0), k_len,
                 y + m0 * o.row, o, j0, std::min(kPanel, n - j0), bias ? bias + j0 : nullptr,
                 static_cast<const W*>(nullptr));
    }
  });
}

// A weight as float32 for a broadcast (bfloat16: its bits are the top half).
inline float widen(float v) { return v; }
inline float widen(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Channels-first, one phase, many frames (the AudioVAE's 1x1 convs): JX output channels (panel
// columns jp..jp+JX) of 16 consecutive frames, vectorised over the frames, so that x rows are
// plain vector loads and each channel's 16 outputs one vector store (plus bias, plus `res`, the
// residual in y's layout, or null). Each output is the same FMA chain over k as micro's: same bits.
template <int JX, class W>
VOXCPM_AVX2 void micro_frames(const W* panel, int64_t jp, const float* x, int64_t m_stride, int64_t k_len, float* y,
                              const float* bias, const float* res) {
  __m256 lo[JX], hi[JX];
#pragma GCC unroll 6
  for (int j = 0; j < JX; ++j) lo[j] = hi[j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < k_len; ++k) {
    const float* xk = x + k * m_stride;
    const __m256 x0 = _mm256_loadu_ps(xk), x1 = _mm256_loadu_ps(xk + 8);
    const W* wk = panel + k * kPanel + jp;
#pragma GCC unroll 6
    for (int j = 0; j < JX; ++j) {
      const __m256 w = _mm256_set1_ps(widen(wk[j]));
      lo[j] = _mm256_fmadd_ps(w, x0, lo[j]);
      hi[j] = _mm256_fmadd_ps(w, x1, hi[j]);
    }
  }
#pragma GCC unroll 6
  for (int j = 0; j < JX; ++j) {
    __m256 a = lo[j], b = hi[j];
    if (bias) {
      const __m256 bj = _mm256_set1_ps(bias[j]);
      a = _mm256_add_ps(a, bj);
      b = _mm256_add_ps(b, bj);
    }
    if (res) {
      a = _mm256_add_ps(a, _mm256_loadu_ps(res + j * m_stride));
      b = _mm256_add_ps(b, _mm256_loadu_ps(res + j * m_stride + 8));
    }
    _mm256_storeu_ps(y + j * m_stride, a);
    _mm256_storeu_ps(y + j * m_stride + 8, b);
  }
}

// One panel (outputs j0..j0+cols) against 16 frames from x, in tiles of up to 6 channels.
template <class W>
void panel_frames(const W* panel, const float* x, int64_t m_stride, int64_t k_len, float* y, int64_t j0,
                  int64_t cols, const float* bias, const float* res) {
  for (int64_t jp = 0; jp < cols; jp += 6) {
    float* yj = y + (j0 + jp) * m_stride;
    const float* rj = res ? res + (j0 + jp) * m_stride : nullptr;
    const float* bj = bias ? bias + jp : nullptr;
    switch (std::min<int64_t>(6, cols - jp)) {
      case 6: micro_frames<6>(panel, jp, x, m_stride, k_len, yj, bj, rj); break;
      case 5: micro_frames<5>(panel, jp, x, m_stride, k_len, yj, bj, rj); break;
      case 4: micro_frames<4>(panel, jp, x, m_stride, k_len, yj, bj, rj); break;
      case 3: micro_frames<3>(panel, jp, x, m_stride, k_len, yj, bj, rj); break;
      case 2: micro_frames<2>(panel, jp, x, m_stride, k_len, yj, bj, rj); break;
      default: micro_frames<1>(panel, jp, x, m_stride, k_len, yj, bj, rj); break;
    }
  }
}

// y [N, M] = W x + b (+ res) for x [K, M], parallel over blocks of 16 frames, each block through
// every panel while its x columns stay in L1. A last block of fewer frames takes the row tiles.
template <class W>
void run_frames_as(const float* x, int64_t m_len, int64_t k_len, const W* wp, int64_t panels, int64_t n,
                   const float* bias, float* y, const float* res) {
  at::parallel_for(0, (m_len + 15) / 16, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t m0 = blk * 16, rows = std::min<int64_t>(16, m_len - m0);
      for (int64_t p = 0; p < panels; ++p) {
        const W* panel = wp + p * k_len * kPanel;
        const int64_t j0 = p * kPanel, cols = std::min(kPanel, n - j0);
        const float* bp = bias ? bias + j0 : nullptr;
        if (rows == 16) {
          panel_frames(panel, x + m0, m_len, k_len, y + m0, j0, cols, bp, res ? res + m0 : nullptr);
          continue;
        }
        panel_rows(panel, x + m0, m_len, rows, k_len, y + m0, OutLayout{1, 1, m_len, 1}, j0, cols, bp,
                   static_cast<const W*>(nullptr));
        if (res)
          for (int64_t j = j0; j < j0 + cols; ++j)
            for (int64_t m = m0; m < m_len; ++m) y[j * m_len + m] += res[j * m_len + m];
      }
    }
  });
}

// f(data) with the packed weight's panels as float32 or as bfloat16 bits.
template <class F>
void with_panel_data(const at::Tensor& packed, const F& f) {
  if (packed.scalar_type() == at::kBFloat16)
    f(static_cast<const uint16_t*>(packed.data_ptr()));
  else
    f(static_cast<const float*>(packed.data_ptr()));
}

// One-phase channels-first products vectorise over frames from this many frames on, when the
// weight stays in L2 while every block of frames streams it (larger ones: the row tiles, which
// read each panel once; measured at 512² weights: 1.85 vs 2.30 ms).
constexpr int64_t kFramesPathMin = 64;
constexpr int64_t kFramesPathMaxWeightBytes = 256 * 1024;

// y = xt^T W^T + b over all panels, parallel; output (m, j) at y[m · o.row + o.at(j)].
void run_panels(const float* xt, int64_t m_len, int64_t k_len, const at::Tensor& packed, int64_t n, const float* bias,
                float* y, const OutLayout& o) {
  with_panel_data(packed, [&](auto wp) { run_panels_as(xt, m_len, k_len, wp, packed.size(0), n, bias, y, o); });
}

#endif

}  // namespace

bool packed_linear_supported() {
#ifdef VOXCPM_X86_KERNELS
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

namespace {

// Zeroed memory for a packed weight, in transparent huge pages where the kernel grants them
// (Linux "madvise" mode): a decode step streams about 2 GB of panels, and with 4 KiB pages every
// 4 KiB is a TLB miss (a two-level page walk inside a VM) and a stop for the hardware prefetcher.
// The mapping starts on a 2 MiB boundary; whole 2 MiB blocks are advised, the tail keeps small
// pages so that a weight costs its own size in RSS. Falls back to an ordinary tensor.
at::Tensor zeros_in_huge_pages(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  constexpr size_t kHuge = size_t{2} << 20;
  int64_t numel = 1;
  for (int64_t d : sizes) numel *= d;
  const size_t bytes = static_cast<size_t>(numel) * opts.dtype().itemsize();
  if (bytes < kHuge) return at::zeros(sizes, opts);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t used = (bytes + page - 1) / page * page;
  void* raw = mmap(nullptr, used + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return at::zeros(sizes, opts);
  char* base = static_cast<char*>(raw);
  char* start = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~(uintptr_t{kHuge} - 1));
  if (start > base) munmap(base, static_cast<size_t>(start - base));
  char* end = base + used + kHuge;
  if (end > start + used) munmap(start + used, static_cast<size_t>(end - (start + used)));
#ifdef MADV_HUGEPAGE
  madvise(start, bytes / kHuge * kHuge, MADV_HUGEPAGE);  // advice only: ignored where THP is off
#endif
  return at::from_blob(start, sizes, [used](void* p) { munmap(p, used); }, opts);
}

}  // namespace

at::Tensor pack_linear_weight(const at::Tensor& w) {
  if (!w.defined() || w.dim() != 2 || !at::isFloatingType(w.scalar_type()))
    throw Error("pack_linear_weight: expected a floating [N, K] matrix");
  const int64_t n = w.size(0), k = w.size(1), panels = (n + kPanel - 1) / kPanel, full = n / kPanel;
  // bfloat16 stays bfloat16 (widened exactly in the kernel: half the memory and traffic, the
  // same products); anything else becomes float32.
  const auto opts = at::TensorOptions().dtype(w.scalar_type() == at::kBFloat16 ? at::kBFloat16 : at::kFloat);
  at::Tensor packed = zeros_in_huge_pages({panels, k, kPanel}, opts);
  if (full > 0) packed.narrow(0, 0, full).copy_(w.narrow(0, 0, full * kPanel).view({full, kPanel, k}).transpose(1, 2));
  if (n % kPanel) packed.select(0, full).narrow(1, 0, n % kPanel).copy_(w.narrow(0, full * kPanel, n % kPanel).t());
  return packed;
}

namespace {

void check_packed(const char* fn, const at::Tensor& packed, int64_t n, const at::Tensor& bias) {
  if (!packed_linear_supported()) throw Error(std::string(fn) + ": this CPU lacks AVX2/FMA");
  if (!packed.defined() || packed.dim() != 3 || packed.size(2) != kPanel ||
      (packed.scalar_type() != at::kFloat && packed.scalar_type() != at::kBFloat16) ||
      n <= 0 || (n + kPanel - 1) / kPanel != packed.size(0) || !packed.is_contiguous())
    throw Error(std::string(fn) + ": the packed weight does not match " + std::to_string(n) + " outputs");
  if (bias.defined() && (bias.numel() != n || bias.scalar_type() != at::kFloat || !bias.is_contiguous()))
    throw Error(std::string(fn) + ": bias must be float32 [" + std::to_string(n) + "]");
}

// The row-major products' input checked, their output [..., n] allocated and x transposed to
// [K][M] (the RX values a k-step broadcasts are adjacent; undefined when there are no rows).
struct RowMajorCall {
  at::Tensor y, xt;
  int64_t m_len = 0;
};

RowMajorCall row_major_call(const char* fn, const at::Tensor& x, int64_t k_len, int64_t n) {
  if (!x.defined() || x.dim() < 1 || x.size(-1) != k_len || x.scalar_type() != at::kFloat || !x.device().is_cpu())
    throw Error(std::string(fn) + ": input must be float32 [..., " + std::to_string(k_len) + "] on the CPU, got " +
                (x.defined() ? shape_str(x.sizes()) : std::string("an undefined tensor")));
  std::vector<int64_t> out_sizes = x.sizes().vec();
  out_sizes.back() = n;
  RowMajorCall c;
  c.m_len = x.numel() / k_len;
  c.y = at::empty(out_sizes, x.options());
  if (c.m_len == 0) return c;
  if (c.m_len > 64) {  // prefill sizes: ATen's blocked copy
    c.xt = x.reshape({c.m_len, k_len}).t().contiguous();
    return c;
  }
  const at::Tensor xc = x.contiguous();
  c.xt = at::empty({k_len, c.m_len}, x.options());
  // Decode sizes: a plain loop (ATen's strided copy of a few rows cost more than the product's setup).
  const float* src = xc.data_ptr<float>();
  float* dst = c.xt.data_ptr<float>();
  for (int64_t m = 0; m < c.m_len; ++m)
    for (int64_t k = 0; k < k_len; ++k) dst[k * c.m_len + m] = src[m * k_len + k];
  return c;
}

}  // namespace

at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& packed, int64_t n, const at::Tensor& bias) {
  check_packed("packed_linear", packed, n, bias);
  const int64_t k_len = packed.size(1);
  RowMajorCall c = row_major_call("packed_linear", x, k_len, n);
#ifdef VOXCPM_X86_KERNELS
  if (c.m_len > 0)
    run_panels(c.xt.data_ptr<float>(), c.m_len, k_len, packed, n, bias.defined() ? bias.data_ptr<float>() : nullptr,
               c.y.data_ptr<float>(), OutLayout{n, 1, 1, 1});
#endif
  return c.y;
}

void packed_linear_of_silu_row(const float* x, const at::Tensor& packed, int64_t n, float* y) {
  check_packed("packed_linear_of_silu_row", packed, n, at::Tensor());
  if (n > kPanel) throw Error("packed_linear_of_silu_row: at most 16 outputs");
#ifdef VOXCPM_X86_KERNELS
  const int64_t k_len = packed.size(1);
  float acc[kPanel] = {};
  with_panel_data(packed, [&](auto panel) {
    for (int64_t k = 0; k < k_len; ++k) {
      const float s = x[k] / (1.0f + std::exp(-x[k]));  // SiLU as ATen writes it
      for (int64_t j = 0; j < n; ++j) acc[j] += s * widen(panel[k * kPanel + j]);
    }
  });
  std::copy(acc, acc + n, y);
#else
  (void)x, (void)y;
  throw Error("packed_linear_of_silu_row: packed weights need an x86-64 build");
#endif
}

at::Tensor packed_linears(const at::Tensor& x, const std::vector<at::Tensor>& packed, const std::vector<int64_t>& n) {
  if (packed.empty() || packed.size() != n.size()) throw Error("packed_linears: one output count per packed weight");
  const int64_t k_len = packed[0].defined() && packed[0].dim() == 3 ? packed[0].size(1) : -1;
  int64_t total = 0;
  for (size_t i = 0; i < packed.size(); ++i) {
    check_packed("packed_linears", packed[i], n[i], at::Tensor());
    if (packed[i].size(1) != k_len || packed[i].scalar_type() != packed[0].scalar_type())
      throw Error("packed_linears: the weights differ in input width or dtype");
    total += n[i];
  }
  RowMajorCall c = row_major_call("packed_linears", x, k_len, total);
  if (c.m_len == 0) return c.y;
#ifdef VOXCPM_X86_KERNELS
  const float* xt = c.xt.data_ptr<float>();
  float* y = c.y.data_ptr<float>();
  const OutLayout o{total, 1, 1, 1};
  with_panel_data(packed[0], [&](auto first) {  // every weight has its dtype (checked above)
    std::vector<decltype(first)> wps;
    for (const at::Tensor& p : packed) wps.push_back(static_cast<decltype(first)>(p.data_ptr()));
    run_parts_as(xt, c.m_len, k_len, wps, n, static_cast<const float*>(nullptr), y, o);
  });
#endif
  return c.y;
}

at::Tensor packed_linear_channels_first(const at::Tensor& x, const at::Tensor& packed, int64_t n,
                                        const at::Tensor& bias, int64_t phases, const at::Tensor& residual) {
  check_packed("packed_linear_channels_first", packed, n, bias);
  const int64_t k_len = packed.size(1);
  if (!x.defined() || x.dim() != 2 || x.size(0) != k_len || x.scalar_type() != at::kFloat || !x.device().is_cpu())
    throw Error("packed_linear_channels_first: input must be float32 [" + std::to_string(k_len) + ", M] on the CPU, got " +
                (x.defined() ? shape_str(x.sizes()) : std::string("an undefined tensor")));
  if (phases < 1 || n % phases != 0)
    throw Error("packed_linear_channels_first: " + std::to_string(n) + " outputs do not split into " +
                std::to_string(phases) + " phases");
  const int64_t m_len = x.size(1);
  if (residual.defined() && (phases != 1 || residual.sizes() != at::IntArrayRef({n, m_len}) ||
                             residual.scalar_type() != at::kFloat || !residual.device().is_cpu()))
    throw Error("packed_linear_channels_first: the residual must be float32 [" + std::to_string(n) + ", " +
                std::to_string(m_len) + "] on the CPU (one phase)");
  at::Tensor y = at::empty({n / phases, m_len * phases}, x.options());
  if (m_len == 0) return y;
#ifdef VOXCPM_X86_KERNELS
  const at::Tensor xt = x.contiguous();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  if (phases == 1 && m_len >= kFramesPathMin && static_cast<int64_t>(packed.nbytes()) <= kFramesPathMaxWeightBytes) {
    const at::Tensor res = residual.defined() ? residual.contiguous() : at::Tensor();
    const float* rp = res.defined() ? res.data_ptr<float>() : nullptr;
    with_panel_data(packed, [&](auto wp) {
      run_frames_as(xt.data_ptr<float>(), m_len, k_len, wp, packed.size(0), n, bp, y.data_ptr<float>(), rp);
    });
    return y;
  }
  run_panels(xt.data_ptr<float>(), m_len, k_len, packed, n, bp, y.data_ptr<float>(),
             OutLayout{phases, phases, m_len * phases, 1});
#endif
  if (residual.defined()) y.add_(residual);
  return y;
}

}  // namespace voxcpm::cpu
