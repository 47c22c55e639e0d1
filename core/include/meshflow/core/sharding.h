// Layouts over a device mesh and the helpers sharding rules are written with (Note [Sharding
// rules] in op.h). The rules sit beside their ops in core/src/ops; parallel/ propagates layouts
// with them and inserts the collectives (parallel/partitioner.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meshflow/core/op.h"

namespace meshflow {

bool operator==(const DimLayout& a, const DimLayout& b);
bool operator==(const Layout& a, const Layout& b);

namespace sharding {

Layout replicated(size_t rank);            // every dimension whole, no pending sum
bool is_replicated(const Layout& layout);
bool has_partial(const Layout& layout);
// "[R, model]", "[data, R] partial(model)", "[(data, model), R]".
std::string str(const Layout& layout);
// Whether the layout names `axis` (splitting a dimension or as a pending sum).
bool mentions(const Layout& layout, const std::string& axis);
// Every axis the layout names, dimensions first (an axis named twice appears twice).
std::vector<std::string> axes_named(const Layout& layout);
Layout without_partial(Layout layout);

// What a rule estimates it costs to bring a tensor from one layout to another, in bytes of the
// global tensor per mesh axis that must move: 0 when only slicing is needed (replicated to split),
// the tensor's bytes for a gather, a change of split or a reduce-scatter, twice that for an
// all-reduce. A rule that has several valid choices takes the cheapest (ties: the first).
double conversion_bytes(const TensorMeta& meta, const Layout& from, const Layout& to);

// Whether a layout names each axis at most once (a rule's candidates are checked with it).
bool valid(const Layout& layout);

// How pending sums pass through an elementwise op.
enum class PartialRule {
  None,       // non-linear (relu, exp, mul of two partials): inputs must be whole sums
  SameAll,    // add, sub: partial when every input is partial over the same axes
  OneFactor,  // mul: partial when exactly one input is, and the others are not
  First,      // div: partial when only the numerator is
  Pass,       // unary linear ops (neg, cast): the input's pending sum passes through
};

// Elementwise ops with numpy broadcasting (inputs aligned on the right): an output dimension is
// split as an input that is not broadcast there splits it; inputs that disagree are brought to the
// candidate (each input's layout, or their union) that moves the fewest bytes.
ShardingDecision elementwise(const std::vector<TensorMeta>& inputs, const std::vector<Layout>& layouts,
                             PartialRule partial);
// elementwise() as an op's rule: d.sharding = sharding::elementwise_rule<PartialRule::SameAll>.
template <PartialRule P>
ShardingDecision elementwise_rule(const std::vector<TensorMeta>& inputs, const std::vector<Layout>& layouts,
                                  const Attrs&) {
  return elementwise(inputs, layouts, P);
}

// The input's layout with `dims` made whole (softmax's axis, layer_norm's normalized dims).
Layout replicate_dims(Layout layout, const std::vector<int64_t>& dims);

}  // namespace sharding
}  // namespace meshflow
