// Elementwise ops with NumPy broadcasting: arithmetic, math functions, activations, comparisons.
#pragma once

#include "meshflow/core/tensor.h"

namespace meshflow {

// Binary arithmetic (broadcasting; operands of different dtypes are promoted).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// Unary math and activations.
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor gelu(const Tensor& x, bool approximate = false);  // erf form, or tanh form when approximate
// gelu(x + bias) in one pass, bias 1-D along x's last axis (a transformer MLP's activation).
Tensor bias_gelu(const Tensor& x, const Tensor& bias, bool approximate = false);
// relu(x + bias), bias 1-D along x's last axis: one pass forward and one backward (with the bias's
// gradient summed in the same sweep) on the CPU; Dense and Conv with activation="relu" use it.
Tensor bias_relu(const Tensor& x, const Tensor& bias);
Tensor softplus(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor clip(const Tensor& x, double lo, double hi);

// Comparisons give bool tensors (no gradient).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);

// where(cond, a, b): a where cond is true, else b (broadcasting; gradients to a and b).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Converts to dtype (gradient flows back between floating types).
Tensor cast(const Tensor& x, DType dtype);

// A 0-d tensor like `like` (same dtype and device) holding value: how scalars enter ops.
Tensor scalar_like(double value, const Tensor& like);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

}  // namespace meshflow
