// Random numbers: a counter-based Philox4x32-10 generator (the same stream on CPU and GPU).
#pragma once

#include <atomic>
#include <cstdint>

#include "meshflow/core/tensor.h"

namespace meshflow {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x4d657368666c6f77ull) : seed_(seed) {}
  Generator(const Generator& other) : seed_(other.seed_), offset_(other.offset_.load()) {}
  Generator& operator=(const Generator& other) {
    seed_ = other.seed_;
    offset_ = other.offset_.load();
    return *this;
  }
  uint64_t seed() const { return seed_; }
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  // Reserves `count` 128-bit counters and returns the first; kernels generate from
  // (seed, counter) so results do not depend on how work is split over threads. Threads drawing
  // from one generator at once (replica threads building models from the default one) each get
  // counters of their own.
  uint64_t reserve(uint64_t count) { return offset_.fetch_add(count); }
  uint64_t offset() const { return offset_.load(); }
  void set_offset(uint64_t offset) { offset_ = offset; }

 private:
  uint64_t seed_;
  std::atomic<uint64_t> offset_{0};
};

Generator& default_generator();
void manual_seed(uint64_t seed);

// Philox4x32-10: four 32-bit random words for (seed, counter).
void philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]);
inline float uint_to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }  // [0,1)
inline double uint_to_unit_double(uint32_t hi, uint32_t lo) {
  return static_cast<double>((static_cast<uint64_t>(hi) << 21) ^ (lo >> 11)) * (1.0 / 9007199254740992.0);
}

// Tensors of random values (f32 unless options say otherwise).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);   // U[0,1)
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);  // N(0,1)
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = {.dtype = DType::I64},
               Generator* gen = nullptr);
// Fills x in place (no autograd).
void uniform_(Tensor& x, double lo, double hi, Generator* gen = nullptr);
void normal_(Tensor& x, double mean, double stddev, Generator* gen = nullptr);
// Normal values redrawn until within two standard deviations (Keras's TruncatedNormal).
void truncated_normal_(Tensor& x, double mean, double stddev, Generator* gen = nullptr);

}  // namespace meshflow
