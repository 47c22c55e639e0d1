// Fused in-place optimizer updates and gradient-clipping helpers (outside autograd, CPU, f32/f64).
#pragma once

#include <cstdint>
#include <vector>

#include "meshflow/core/op.h"
#include "meshflow/core/tensor.h"

namespace meshflow::optim {

// Note [Fused optimizer updates]: each update reads the gradient and the variable's slots and
// writes the variable and slots back in one pass over memory (Adam touches 4 arrays per element;
// composing ops would make ~10 passes and as many temporaries). Every tensor must be contiguous,
// on the CPU, of the parameter's floating dtype and shape; the checks name the update and the
// offending tensor. Large tensors are split over the thread pool, small ones run inline.

// SGD (Keras): without momentum  p -= lr*g;  with momentum  buf = momentum*buf - lr*g, then
// p += buf, or p += momentum*buf - lr*g when nesterov. `buf` may be undefined when momentum == 0.
void sgd_update_(Tensor& param, const Tensor& grad, Tensor& buf, double lr, double momentum, bool nesterov);

// Adam / AdamW (Keras): m += (1-b1)(g-m); v += (1-b2)(g²-v); with amsgrad v_max = max(v_max, v);
// p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v or v_max) + eps), t = step (1-based).
// weight_decay > 0 first applies the decoupled decay p -= lr*weight_decay*p (AdamW).
// `v_max` is read only when amsgrad.
void adam_update_(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& v_max, double lr, double beta1,
                  double beta2, double eps, int64_t step, bool amsgrad, double weight_decay = 0.0);
// Note [Prepared Adam step]: the same update for many parameters of one device in one op call,
// kept by the optimizer from step to step. A tiny model's step costs per call, not per FLOP: binding
// a tensor that is already bound copies no handle (each copy is an atomic reference-count change,
// Note [Per-op cost]) and the attributes are reused, so a step pays one dispatch and the checks.
class AdamBatch {
 public:
  // Holds n parameters; shrinking releases the rest.
  void resize(size_t n);
  size_t size() const { return operands_.size() / 5; }
  // Binds parameter i (i < size()): its gradient, moved in, and its slots. `v_max` is read only
  // when run() is asked for amsgrad; pass an undefined tensor otherwise.
  void bind(size_t i, const Tensor& param, Tensor&& grad, const Tensor& m, const Tensor& v, const Tensor& v_max);
  // Updates every bound parameter (all on one device), then releases the gradients. The checks are
  // those of the one-parameter adam_update_, naming the parameter's index.
  void run(double lr, double beta1, double beta2, double eps, int64_t step, bool amsgrad, double weight_decay = 0.0);

 private:
  std::vector<Tensor> operands_;  // per parameter: param, grad, m, v, and v_max (or param when unused)
  Attrs attrs_;
};

// RMSprop: ms = rho*ms + (1-rho)*g²; centered: mg = rho*mg + (1-rho)*g, denom = sqrt(ms - mg²) + eps,
// else denom = sqrt(ms) + eps; step = lr*g/denom; with momentum: mom = momentum*mom + step,
// p -= mom; else p -= step. `mg` is used only when centered, `mom` only when momentum > 0.
void rmsprop_update_(Tensor& param, const Tensor& grad, Tensor& ms, Tensor& mg, Tensor& mom, double lr, double rho,
                     double momentum, double eps, bool centered);

// Adagrad: acc += g²; p -= lr*g / (sqrt(acc) + eps).
void adagrad_update_(Tensor& param, const Tensor& grad, Tensor& acc, double lr, double eps);

// Sum of squares of all elements, accumulated in double (for clip-by-norm).
double squared_norm(const Tensor& t);
// t *= factor, in place.
void scale_(Tensor& t, double factor);
// t = clamp(t, lo, hi), in place.
void clamp_(Tensor& t, double lo, double hi);

// Primitives of gradient reduction (GradBucketer, the MPI backend), on any device:
// dst = src * factor (f32/f64, same shape and dtype; packs a gradient into a bucket pre-divided).
void scaled_copy_(Tensor& dst, const Tensor& src, double factor);
// inout += in (f32, f64, bf16, f16; same shape and dtype). Halves are added in f32 and rounded to
// nearest even once, as the bf16/f16 conversions round (Note [Halves on the wire]).
void accumulate_(Tensor& inout, const Tensor& in);

}  // namespace meshflow::optim
