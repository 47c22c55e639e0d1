// The sum of halves the MPI backend reduces with (the accumulate op, core/kernels/cpu/optim.cpp) over
// borrowed buffers, against the scalar bf16/f16 conversions of core.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "meshflow/core/optim.h"
#include "meshflow/core/tensor.h"

namespace {

using meshflow::bf16;
using meshflow::DType;
using meshflow::f16;

template <typename H>
float to_float(uint16_t bits) {
  H h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

template <typename H>
uint16_t from_float(float x) {
  const H h(x);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

// Every pair drawn from all 65536 words (NaNs, infinities, subnormals, both zeros), in a length
// that is not a multiple of the vector width, so the tail loop runs too.
template <typename H>
void check(DType dtype) {
  std::mt19937 rng(7);
  const int64_t n = 65536 * 4 + 5;
  std::vector<uint16_t> a(n), b(n);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = static_cast<uint16_t>(i < 65536 ? i : rng());
    b[i] = static_cast<uint16_t>(rng());
  }
  std::vector<uint16_t> sum = b;
  meshflow::Tensor acc = meshflow::borrow_host(sum.data(), {n}, dtype);
  meshflow::optim::accumulate_(acc, meshflow::borrow_host(a.data(), {n}, dtype));
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float want = to_float<H>(a[i]) + to_float<H>(b[i]);
    const bool ok = std::isnan(want) ? std::isnan(to_float<H>(sum[i])) : sum[i] == from_float<H>(want);
    if (!ok && ++wrong <= 5)
      ADD_FAILURE() << meshflow::dtype_name(dtype) << " element " << i << ": " << to_float<H>(a[i]) << " + "
                    << to_float<H>(b[i]) << " gave bits " << sum[i] << ", expected " << from_float<H>(want);
  }
  EXPECT_EQ(wrong, 0);
}

TEST(HalfSum, Bf16MatchesScalarRounding) { check<bf16>(DType::BF16); }
TEST(HalfSum, F16MatchesScalarRounding) { check<f16>(DType::F16); }

}  // namespace
