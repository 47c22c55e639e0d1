// BatchNormalization and LayerNormalization on the core batch_norm / layer_norm ops.
#include "meshflow/models/layers/normalization.h"

#include <algorithm>

#include "common.h"
#include "config_fields.h"
#include "meshflow/core/ops/norm.h"

namespace meshflow::layers {

using detail::common_options;
using detail::read_common;

// BatchNormalization ------------------------------------------------------------------------------

// The options a BatchNormalization config holds (Note [One field list per options struct]).
template <typename F>
void fields(BatchNormalizationOptions& o, F&& f) {
  f("axis", detail::FirstOfList{o.axis});
  f("momentum", o.momentum);
  f("epsilon", o.epsilon);
  f("center", o.center);
  f("scale", o.scale);
  f("beta_initializer", o.beta_initializer);
  f("gamma_initializer", o.gamma_initializer);
  f("moving_mean_initializer", o.moving_mean_initializer);
  f("moving_variance_initializer", o.moving_variance_initializer);
  f("beta_regularizer", o.beta_regularizer);
  f("gamma_regularizer", o.gamma_regularizer);
}

BatchNormalizationLayer::BatchNormalizationLayer(BatchNormalizationOptions options)
    : Layer(common_options(options), "BatchNormalization"), options_(std::move(options)) {
  MF_CHECK(options_.epsilon > 0, "BatchNormalization: epsilon must be positive, got ", options_.epsilon);
  MF_CHECK(options_.momentum >= 0 && options_.momentum <= 1, "BatchNormalization: momentum must be in [0, 1], got ",
           options_.momentum);
  supports_masking_ = true;
}

void BatchNormalizationLayer::build(const Shape& s) {
  detail::check_rank(*this, s, 2, 64, "inputs of rank >= 2 ([batch, ..., channels])");
  const int64_t rank = static_cast<int64_t>(s.size());
  const int64_t axis = normalize_axis(options_.axis, rank, "BatchNormalization");
  MF_CHECK(axis == rank - 1, "layer '", name(), "' (BatchNormalization): only the last axis (channels-last) is ",
           "supported, got axis ", options_.axis, " for an input of shape ", shape_str(s));
  const int64_t c = s.back();
  MF_CHECK(c > 0, "layer '", name(), "' (BatchNormalization): the channel dimension of ", shape_str(s),
           " must be known");
  if (options_.scale)
    gamma_ = add_weight("gamma", {c}, detail::canonical_initializer(options_.gamma_initializer), true,
                        options_.gamma_regularizer);
  if (options_.center)
    beta_ = add_weight("beta", {c}, detail::canonical_initializer(options_.beta_initializer), true,
                       options_.beta_regularizer);
  moving_mean_ = add_weight("moving_mean", {c}, detail::canonical_initializer(options_.moving_mean_initializer), false);
  moving_variance_ =
      add_weight("moving_variance", {c}, detail::canonical_initializer(options_.moving_variance_initializer), false);
}

Tensor BatchNormalizationLayer::call(const Tensor& input) {
  Tensor x = detail::to_dtype(input, dtype_);
  const Shape& s = x.shape();
  detail::check_rank(*this, s, 2, 64, "inputs of rank >= 2 ([batch, ..., channels])");
  MF_CHECK(s.back() < 0 || s.back() == moving_mean_.numel(), "layer '", name(), "' (BatchNormalization) was built for ",
           moving_mean_.numel(), " channels but got an input of shape ", shape_str(s));
  const bool training = Layer::training() && trainable();
  return batch_norm(x, gamma_, beta_, moving_mean_, moving_variance_, training, options_.momentum, options_.epsilon);
}

Json BatchNormalizationLayer::get_config() const {
  Json c = Layer::get_config();
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<BatchNormalizationLayer> BatchNormalizationLayer::from_config(const Json& c) {
  BatchNormalizationOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  return std::make_shared<BatchNormalizationLayer>(o);
}

LayerRef<BatchNormalizationLayer> BatchNormalization(BatchNormalizationOptions options) {
  return make_layer<BatchNormalizationLayer>(std::move(options));
}

// LayerNormalization ------------------------------------------------------------------------------

template <typename F>
void fields(LayerNormalizationOptions& o, F&& f) {
  f("axis", o.axis);
  f("epsilon", o.epsilon);
  f("center", o.center);
  f("scale", o.scale);
  f("beta_initializer", o.beta_initializer);
  f("gamma_initializer", o.gamma_initializer);
  f("beta_regularizer", o.beta_regularizer);
  f("gamma_regularizer", o.gamma_regularizer);
}

LayerNormalizationLayer::LayerNormalizationLayer(LayerNormalizationOptions options)
    : Layer(common_options(options), "LayerNormalization"), options_(std::move(options)) {
  MF_CHECK(!options_.axis.empty(), "LayerNormalization: axis must name at least one axis");
  MF_CHECK(options_.epsilon > 0, "LayerNormalization: epsilon must be positive, got ", options_.epsilon);
  supports_masking_ = true;
}

// The core op normalizes over trailing axes, so `axis` must name the last k axes (any order).
int64_t LayerNormalizationLayer::normalized_dims(int64_t rank) const {
  std::vector<int64_t> axes;
  for (int64_t a : options_.axis) axes.push_back(normalize_axis(a, rank, "LayerNormalization"));
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  const int64_t k = static_cast<int64_t>(axes.size());
  MF_CHECK(axes.front() == rank - k && axes.front() > 0, "layer '", name(),
           "' (LayerNormalization): axis must be trailing axes of the input (rank ", rank, "), excluding the batch");
  return k;
}

void LayerNormalizationLayer::build(const Shape& s) {
  detail::check_rank(*this, s, 2, 64, "inputs of rank >= 2 ([batch, ..., features])");
  const int64_t k = normalized_dims(static_cast<int64_t>(s.size()));
  Shape param(s.end() - k, s.end());
  for (int64_t d : param)
    MF_CHECK(d > 0, "layer '", name(), "' (LayerNormalization): the normalized axes of ", shape_str(s), " must be known");
  if (options_.scale)
    gamma_ = add_weight("gamma", param, detail::canonical_initializer(options_.gamma_initializer), true,
                        options_.gamma_regularizer);
  if (options_.center)
    beta_ = add_weight("beta", param, detail::canonical_initializer(options_.beta_initializer), true,
                       options_.beta_regularizer);
}

Tensor LayerNormalizationLayer::call(const Tensor& input) {
  Tensor x = detail::to_dtype(input, dtype_);
  detail::check_rank(*this, x.shape(), 2, 64, "inputs of rank >= 2 ([batch, ..., features])");
  return layer_norm(x, gamma_, beta_, normalized_dims(x.dim()), options_.epsilon);
}

Json LayerNormalizationLayer::get_config() const {
  Json c = Layer::get_config();
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<LayerNormalizationLayer> LayerNormalizationLayer::from_config(const Json& c) {
  LayerNormalizationOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  return std::make_shared<LayerNormalizationLayer>(o);
}

LayerRef<LayerNormalizationLayer> LayerNormalization(LayerNormalizationOptions options) {
  return make_layer<LayerNormalizationLayer>(std::move(options));
}

MF_REGISTER_LAYER(BatchNormalizationLayer, "BatchNormalization");
MF_REGISTER_LAYER(LayerNormalizationLayer, "LayerNormalization");

}  // namespace meshflow::layers
