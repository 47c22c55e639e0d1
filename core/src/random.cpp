// Philox4x32-10 and the random tensor factories built on it.
#include "meshflow/core/random.h"

#include <cmath>

#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/parallel.h"

namespace meshflow {

void philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = static_cast<uint32_t>(p1);
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = static_cast<uint32_t>(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

Generator& default_generator() {
  static Generator gen;
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

namespace {

// Fills n doubles: U[0,1) when !normal, N(0,1) otherwise (Box-Muller on two uniforms).
// Element i always comes from counter (base + i/2), whatever the thread split.
void generate(double* out, int64_t n, bool normal, Generator& gen) {
  uint64_t base = gen.reserve(static_cast<uint64_t>((n + 1) / 2));
  uint64_t seed = gen.seed();
  parallel_for(0, (n + 1) / 2, 4096, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      uint32_t r[4];
      philox4x32(seed, base + static_cast<uint64_t>(j), r);
      double u0 = uint_to_unit_double(r[0], r[1]);
      double u1 = uint_to_unit_double(r[2], r[3]);
      double v0 = u0, v1 = u1;
      if (normal) {
        double rad = std::sqrt(-2.0 * std::log(1.0 - u0));  // 1-u0 in (0,1]: no log(0)
        v0 = rad * std::cos(2.0 * M_PI * u1);
        v1 = rad * std::sin(2.0 * M_PI * u1);
      }
      out[2 * j] = v0;
      if (2 * j + 1 < n) out[2 * j + 1] = v1;
    }
  });
}

void fill_from(Tensor& x, const std::vector<double>& values, const char* op) {
  MF_CHECK(x.defined() && !x.is_symbolic(), op, ": needs a tensor with storage");
  Tensor src = from_vector(values, x.shape(), {.dtype = x.dtype(), .device = Device()});
  x.copy_(src.to(x.device()));
}

}  // namespace

void uniform_(Tensor& x, double lo, double hi, Generator* gen) {
  MF_CHECK(lo <= hi, "uniform_: lo (", lo, ") must not exceed hi (", hi, ")");
  std::vector<double> v(static_cast<size_t>(x.numel()));
  generate(v.data(), x.numel(), false, gen ? *gen : default_generator());
  for (double& d : v) d = lo + (hi - lo) * d;
  fill_from(x, v, "uniform_");
}

void normal_(Tensor& x, double mean, double stddev, Generator* gen) {
  MF_CHECK(stddev >= 0, "normal_: stddev must be non-negative, got ", stddev);
  std::vector<double> v(static_cast<size_t>(x.numel()));
  generate(v.data(), x.numel(), true, gen ? *gen : default_generator());
  for (double& d : v) d = mean + stddev * d;
  fill_from(x, v, "normal_");
}

void truncated_normal_(Tensor& x, double mean, double stddev, Generator* gen) {
  MF_CHECK(stddev >= 0, "truncated_normal_: stddev must be non-negative, got ", stddev);
  Generator& g = gen ? *gen : default_generator();
  int64_t n = x.numel();
  std::vector<double> v(static_cast<size_t>(n));
  std::vector<double> draw(static_cast<size_t>(std::max<int64_t>(n, 1)));
  int64_t filled = 0;
  while (filled < n) {
    generate(draw.data(), n, true, g);
    for (int64_t i = 0; i < n && filled < n; ++i)
      if (std::fabs(draw[i]) <= 2.0) v[filled++] = mean + stddev * draw[i];
  }
  fill_from(x, v, "truncated_normal_");
}

Tensor rand(const Shape& shape, TensorOptions options, Generator* gen) {
  Tensor t = empty(shape, {.dtype = options.dtype, .device = options.device});
  uniform_(t, 0.0, 1.0, gen);
  t.set_requires_grad(options.requires_grad);
  return t;
}

Tensor randn(const Shape& shape, TensorOptions options, Generator* gen) {
  Tensor t = empty(shape, {.dtype = options.dtype, .device = options.device});
  normal_(t, 0.0, 1.0, gen);
  t.set_requires_grad(options.requires_grad);
  return t;
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options, Generator* gen) {
  MF_CHECK(low < high, "randint: low (", low, ") must be below high (", high, ")");
  int64_t n = shape_numel(shape);
  MF_CHECK(n >= 0, "randint: shape ", shape_str(shape), " has unknown dims");
  std::vector<double> u(static_cast<size_t>(n));
  generate(u.data(), n, false, gen ? *gen : default_generator());
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[i] = low + std::min<int64_t>(static_cast<int64_t>(u[i] * static_cast<double>(high - low)), high - low - 1);
  Tensor t = from_vector(v, shape, {.dtype = DType::I64});
  if (options.dtype != DType::I64) t = t.to(options.dtype);
  return t.to(options.resolved_device());
}

}  // namespace meshflow
