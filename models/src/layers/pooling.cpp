// MaxPooling2D, AveragePooling2D and the global pooling layers.
#include "meshflow/models/layers/pooling.h"

#include "common.h"
#include "config_fields.h"
#include "meshflow/core/ops/conv.h"
#include "meshflow/core/ops/reduce.h"
#include "meshflow/core/ops/shape.h"
#include "meshflow/models/masking.h"

namespace meshflow::layers {

using detail::common_options;
using detail::read_common;

namespace {
const char* pooling_class(Pooling2DLayer::Kind k) {
  return k == Pooling2DLayer::Kind::Max ? "MaxPooling2D" : "AveragePooling2D";
}
const char* global_class(GlobalPoolingLayer::Kind k) {
  switch (k) {
    case GlobalPoolingLayer::Kind::Average1D: return "GlobalAveragePooling1D";
    case GlobalPoolingLayer::Kind::Average2D: return "GlobalAveragePooling2D";
    case GlobalPoolingLayer::Kind::Max2D: return "GlobalMaxPooling2D";
  }
  return "";
}
}  // namespace

// Pooling2D ---------------------------------------------------------------------------------------

// The options a pooling config holds (Note [One field list per options struct]).
template <typename F>
void fields(Pooling2DOptions& o, F&& f) {
  f("padding", o.padding);
  f("strides", detail::NullIsDefault{o.strides});
}

Pooling2DLayer::Pooling2DLayer(Kind kind, Int2 pool_size, Pooling2DOptions options)
    : Layer(common_options(options), pooling_class(kind)), kind_(kind), pool_size_(pool_size),
      options_(std::move(options)) {
  MF_CHECK(pool_size.first > 0 && pool_size.second > 0, pooling_class(kind), ": pool_size must be positive, got [",
           pool_size.first, ", ", pool_size.second, "]");
  MF_CHECK(options_.padding == "valid" || options_.padding == "same", pooling_class(kind),
           ": padding must be \"valid\" or \"same\", got \"", options_.padding, "\"");
  if (options_.strides == Int2(0)) options_.strides = pool_size_;
  MF_CHECK(options_.strides.first > 0 && options_.strides.second > 0, pooling_class(kind),
           ": strides must be positive, got [", options_.strides.first, ", ", options_.strides.second, "]");
}

Tensor Pooling2DLayer::call(const Tensor& x) {
  detail::check_rank(*this, x.shape(), 4, 4, "inputs of rank 4 ([batch, rows, cols, channels])");
  Pool2dOptions o{.pool_size = pool_size_.vec(), .strides = options_.strides.vec(), .padding = options_.padding};
  return kind_ == Kind::Max ? max_pool2d(x, o) : avg_pool2d(x, o);
}

Json Pooling2DLayer::get_config() const {
  Json c = Layer::get_config();
  c["pool_size"] = detail::int2_config(pool_size_);
  c["data_format"] = "channels_last";
  detail::write_fields(c, options_);
  return c;
}

std::pair<Int2, Pooling2DOptions> Pooling2DLayer::read_config(const Json& c) {
  Pooling2DOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  Int2 pool = c.contains("pool_size") ? detail::int2_from_config(c["pool_size"]) : Int2(2);
  return {pool, o};
}

MaxPooling2DLayer::MaxPooling2DLayer(Int2 pool_size, Pooling2DOptions options)
    : Pooling2DLayer(Kind::Max, pool_size, std::move(options)) {}
std::shared_ptr<MaxPooling2DLayer> MaxPooling2DLayer::from_config(const Json& c) {
  auto [pool, o] = read_config(c);
  return std::make_shared<MaxPooling2DLayer>(pool, o);
}

AveragePooling2DLayer::AveragePooling2DLayer(Int2 pool_size, Pooling2DOptions options)
    : Pooling2DLayer(Kind::Average, pool_size, std::move(options)) {}
std::shared_ptr<AveragePooling2DLayer> AveragePooling2DLayer::from_config(const Json& c) {
  auto [pool, o] = read_config(c);
  return std::make_shared<AveragePooling2DLayer>(pool, o);
}

LayerRef<MaxPooling2DLayer> MaxPooling2D(Int2 pool_size, Pooling2DOptions options) {
  return make_layer<MaxPooling2DLayer>(pool_size, std::move(options));
}
LayerRef<AveragePooling2DLayer> AveragePooling2D(Int2 pool_size, Pooling2DOptions options) {
  return make_layer<AveragePooling2DLayer>(pool_size, std::move(options));
}

// Global pooling ----------------------------------------------------------------------------------

template <typename F>
void fields(GlobalPoolingOptions& o, F&& f) {
  f("keepdims", o.keepdims);
}

GlobalPoolingLayer::GlobalPoolingLayer(Kind kind, GlobalPoolingOptions options)
    : Layer(common_options(options), global_class(kind)), kind_(kind), options_(std::move(options)) {}

Tensor GlobalPoolingLayer::call(const Tensor& x) {
  if (kind_ != Kind::Average1D) {
    detail::check_rank(*this, x.shape(), 4, 4, "inputs of rank 4 ([batch, rows, cols, channels])");
    return kind_ == Kind::Max2D ? max(x, {1, 2}, options_.keepdims) : mean(x, {1, 2}, options_.keepdims);
  }
  detail::check_rank(*this, x.shape(), 3, 3, "inputs of rank 3 ([batch, steps, features])");
  Tensor mask = keras_mask(x);
  if (!mask.defined()) return mean(x, {1}, options_.keepdims);
  MF_CHECK(mask.dim() == 2, "layer '", name(), "' (GlobalAveragePooling1D): the input's mask has shape ",
           shape_str(mask.shape()), " but a [batch, steps] mask is needed for an input of shape ", shape_str(x.shape()));
  // The mean over the unmasked steps only: sum(x * m) / sum(m), m the mask as x's dtype.
  Tensor m = cast(mask, x.dtype()).unsqueeze(-1);
  return sum(x * m, {1}, options_.keepdims) / sum(m, {1}, options_.keepdims);
}

Json GlobalPoolingLayer::get_config() const {
  Json c = Layer::get_config();
  c["data_format"] = "channels_last";
  detail::write_fields(c, options_);
  return c;
}

GlobalPoolingOptions GlobalPoolingLayer::read_config(const Json& c) {
  GlobalPoolingOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  return o;
}

GlobalAveragePooling1DLayer::GlobalAveragePooling1DLayer(GlobalPoolingOptions options)
    : GlobalPoolingLayer(Kind::Average1D, std::move(options)) {}
std::shared_ptr<GlobalAveragePooling1DLayer> GlobalAveragePooling1DLayer::from_config(const Json& c) {
  return std::make_shared<GlobalAveragePooling1DLayer>(read_config(c));
}
GlobalAveragePooling2DLayer::GlobalAveragePooling2DLayer(GlobalPoolingOptions options)
    : GlobalPoolingLayer(Kind::Average2D, std::move(options)) {}
std::shared_ptr<GlobalAveragePooling2DLayer> GlobalAveragePooling2DLayer::from_config(const Json& c) {
  return std::make_shared<GlobalAveragePooling2DLayer>(read_config(c));
}
GlobalMaxPooling2DLayer::GlobalMaxPooling2DLayer(GlobalPoolingOptions options)
    : GlobalPoolingLayer(Kind::Max2D, std::move(options)) {}
std::shared_ptr<GlobalMaxPooling2DLayer> GlobalMaxPooling2DLayer::from_config(const Json& c) {
  return std::make_shared<GlobalMaxPooling2DLayer>(read_config(c));
}

LayerRef<GlobalAveragePooling1DLayer> GlobalAveragePooling1D(GlobalPoolingOptions options) {
  return make_layer<GlobalAveragePooling1DLayer>(std::move(options));
}
LayerRef<GlobalAveragePooling2DLayer> GlobalAveragePooling2D(GlobalPoolingOptions options) {
  return make_layer<GlobalAveragePooling2DLayer>(std::move(options));
}
LayerRef<GlobalMaxPooling2DLayer> GlobalMaxPooling2D(GlobalPoolingOptions options) {
  return make_layer<GlobalMaxPooling2DLayer>(std::move(options));
}

MF_REGISTER_LAYER(MaxPooling2DLayer, "MaxPooling2D");
MF_REGISTER_LAYER(AveragePooling2DLayer, "AveragePooling2D");
MF_REGISTER_LAYER(GlobalAveragePooling1DLayer, "GlobalAveragePooling1D");
MF_REGISTER_LAYER(GlobalAveragePooling2DLayer, "GlobalAveragePooling2D");
MF_REGISTER_LAYER(GlobalMaxPooling2DLayer, "GlobalMaxPooling2D");

}  // namespace meshflow::layers
