// Neural-network ops that are not elementwise: embedding lookup, dropout, one-hot.
#pragma once

#include "meshflow/core/random.h"
#include "meshflow/core/tensor.h"

namespace meshflow {

// Rows of table [vocab, dim] picked by ids (i32/i64, any shape) -> ids.shape + [dim]; the
// gradient scatter-adds into the rows used. An id outside [0, vocab) is an error naming it.
Tensor embedding(const Tensor& ids, const Tensor& table);

// Inverted dropout: zeroes each element with probability rate and scales the rest by
// 1/(1-rate); identity when !training or rate == 0; rate outside [0, 1) is an error. The mask
// comes from `gen` (counter-based: the same for every thread count) and is not stored; the
// backward regenerates it (Note [Dropout mask from attrs] in core/src/ops/nn.cpp).
Tensor dropout(const Tensor& x, double rate, bool training, Generator& gen);
Tensor dropout(const Tensor& x, double rate, bool training);  // the default generator

// Traced (symbolic x), dropout reserves its counters as an eager call would and records them in
// the op's attrs, so every run of the traced ops replays that one mask. A step that runs a trace
// once per training step and wants a new mask each time (the tensor-parallel step) collects the
// traced calls and, before each later run, reserves fresh counters from the same generators
// (SpmdProgram::set_counters). The generator must outlive the trace's use.
struct TracedDraw {
  Generator* generator = nullptr;
  uint64_t seed = 0, counter = 0, blocks = 0;  // the attrs the traced call got; blocks = counters used
};
class CollectDraws {
 public:
  explicit CollectDraws(std::vector<TracedDraw>* into);  // this thread, while alive
  ~CollectDraws();
  CollectDraws(const CollectDraws&) = delete;
  CollectDraws& operator=(const CollectDraws&) = delete;

 private:
  std::vector<TracedDraw>* previous_;
};

// ids (i32/i64, any shape) -> ids.shape + [depth]; an id outside [0, depth) gives a row of
// zeros, as tf.one_hot does (-1 is the usual "no class"). Not differentiable.
Tensor one_hot(const Tensor& ids, int64_t depth, DType dtype = DType::F32);

}  // namespace meshflow
