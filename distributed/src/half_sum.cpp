// Sums of bf16/f16 words for the MPI backend: a portable loop and AVX2/F16C versions picked at run time.
#include "half_sum.h"

#include <immintrin.h>

#include <bit>
#include <cstring>

namespace meshflow::distributed::internal {
namespace {

// The bf16 constructor's rounding (nearest even, NaN kept quiet) on whole lanes, so it vectorizes.
[[gnu::always_inline]] inline void add_bf16_loop(const uint16_t* a, uint16_t* b, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float s = std::bit_cast<float>(uint32_t(a[i]) << 16) + std::bit_cast<float>(uint32_t(b[i]) << 16);
    const uint32_t u = std::bit_cast<uint32_t>(s);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    b[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
  }
}

void add_bf16_portable(const uint16_t* a, uint16_t* b, int64_t n) { add_bf16_loop(a, b, n); }

__attribute__((target("avx2"))) void add_bf16_avx2(const uint16_t* a, uint16_t* b, int64_t n) {
  add_bf16_loop(a, b, n);
}

void add_f16_portable(const uint16_t* a, uint16_t* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    f16 x, y;
    std::memcpy(&x, a + i, 2);
    std::memcpy(&y, b + i, 2);
    const f16 r(static_cast<float>(x) + static_cast<float>(y));
    std::memcpy(b + i, &r, 2);
  }
}

__attribute__((target("avx,f16c"))) void add_f16_f16c(const uint16_t* a, uint16_t* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256 y = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b + i), _mm256_cvtps_ph(_mm256_add_ps(x, y), _MM_FROUND_TO_NEAREST_INT));
  }
  add_f16_portable(a + i, b + i, n - i);
}

}  // namespace

void add_halves(DType dtype, const void* in, void* inout, int64_t n) {
  static const bool avx2 = __builtin_cpu_supports("avx2"), f16c = __builtin_cpu_supports("f16c");
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  if (dtype == DType::F16) {
    f16c ? add_f16_f16c(a, b, n) : add_f16_portable(a, b, n);
  } else {
    avx2 ? add_bf16_avx2(a, b, n) : add_bf16_portable(a, b, n);
  }
}

}  // namespace meshflow::distributed::internal
