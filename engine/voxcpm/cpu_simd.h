// What the CPU kernels (cpu_linear, cpu_transformer_kernels, cpu_vae_kernels) share to build their
// AVX2/FMA code: VOXCPM_X86_KERNELS where the compiler can (x86-64 with GCC or Clang; the code is
// chosen at run time by cpu::packed_linear_supported()), and VOXCPM_AVX2 to mark those functions.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VOXCPM_X86_KERNELS 1
#define VOXCPM_AVX2 __attribute__((target("avx2,fma")))
#include <immintrin.h>
#endif
