// Moving a value between layouts (Note [Partitioned programs] in partitioner.h): the steps, the
// layout after each, and running them with the collectives of spmd_ops.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "meshflow/core/op.h"
#include "meshflow/parallel/mesh.h"

namespace meshflow::spmd {

// One step of a conversion between layouts, on one mesh axis.
struct Step {
  enum class Kind { AllReduce, ReduceScatter, AllGather, Split } kind;
  std::string axis;
  int64_t dim = -1;
};

// The steps that bring a value from `from` to `to`: pending sums first (reduce-scattered straight
// into a split when the target splits one more axis there), then the splits that differ are
// gathered, minor axis first, then the new splits are sliced. Throws naming `what` when `to` asks
// for a pending sum `from` does not have.
std::vector<Step> conversion(const Layout& from, const Layout& to, const std::string& what);
// The layout after one step.
Layout after(Layout layout, const Step& step);
// Bytes on the wire of a tensor: bools travel as i32.
int64_t wire_bytes(const Shape& shape, DType dtype);
// `rank`'s part of a whole tensor laid out as `layout` (a view; no traffic).
Tensor cut(const Tensor& whole, const Layout& layout, const Mesh& mesh, int rank);
// Runs `steps` on `rank`'s part `t` of a value of `global` shape laid out as `layout`, with the
// axes' communicators `comms` (autograd ops: differentiable).
Tensor convert(Tensor t, const Shape& global, Layout layout, const std::vector<Step>& steps,
               const std::map<std::string, int64_t>& comms, const Mesh& mesh, int rank);

}  // namespace meshflow::spmd
