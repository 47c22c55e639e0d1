// Gradient attributions for any differentiable model and any output: saliency (the input
// gradient), gradient x input, SmoothGrad and integrated gradients, computed in batches.
#pragma once

#include <cstdint>
#include <functional>

#include "meshflow/core/tensor.h"

namespace meshflow {
class Model;
}

namespace meshflow::interpret {

// A differentiable map from a batch [N, ...] to outputs [N, ...]; output_index picks one element
// of each sample's output, flattened (a class for [N, classes], a unit for [N, 1]).
using Forward = std::function<Tensor(const Tensor&)>;
// The model's first output, called in inference mode (Dropout off, BatchNorm's moving statistics).
Forward forward_of(Model& model);

struct GradientOptions {
  int64_t output_index = 0;
  int64_t batch_size = 64;  // rows per forward/backward pass
};

// d output[output_index] / d x for each sample, shaped like x.
Tensor saliency(const Forward& f, const Tensor& x, GradientOptions options = {});
// The gradient times the input, elementwise.
Tensor gradient_x_input(const Forward& f, const Tensor& x, GradientOptions options = {});

struct SmoothGradOptions {
  int64_t output_index = 0;
  int samples = 50;
  // The noise's standard deviation as a fraction of each sample's value range (max - min), as in
  // Smilkov et al. (2017), who found 10-20% best.
  double noise_level = 0.15;
  uint64_t seed = 0;
  int64_t batch_size = 64;
};
// The saliency averaged over `samples` noisy copies of each input.
Tensor smoothgrad(const Forward& f, const Tensor& x, SmoothGradOptions options = {});

struct IntegratedGradientsOptions {
  int64_t output_index = 0;
  int steps = 64;        // intervals on the path (steps + 1 gradients, trapezoidal rule)
  Tensor baseline;       // one sample's shape or x's shape; undefined: zeros
  int64_t batch_size = 256;
};
// (x - baseline) times the average gradient on the straight path from baseline to x (Sundararajan
// et al., 2017): the attributions of a sample sum to f(x) - f(baseline) up to the rule's error.
Tensor integrated_gradients(const Forward& f, const Tensor& x, IntegratedGradientsOptions options = {});

}  // namespace meshflow::interpret
