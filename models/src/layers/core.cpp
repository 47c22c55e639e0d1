// Dense, Activation, Dropout, Flatten and Reshape.
#include "meshflow/models/layers/core.h"

#include <algorithm>

#include "common.h"
#include "config_fields.h"
#include "meshflow/core/ops/linalg.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow::layers {

using detail::common_options;
using detail::read_common;

// Dense -------------------------------------------------------------------------------------------

// The options a Dense config holds (Note [One field list per options struct]).
template <typename F>
void fields(DenseOptions& o, F&& f) {
  f("activation", detail::ActivationName{o.activation});
  f("use_bias", o.use_bias);
  f("kernel_initializer", o.kernel_initializer);
  f("bias_initializer", o.bias_initializer);
  f("kernel_regularizer", o.kernel_regularizer);
  f("bias_regularizer", o.bias_regularizer);
}

DenseLayer::DenseLayer(int64_t units, DenseOptions options)
    : Layer(common_options(options), "Dense"), units_(units), options_(std::move(options)) {
  MF_CHECK(units > 0, "Dense: units must be positive, got ", units);
  activation_ = activations::get(options_.activation);
  supports_masking_ = true;
}

void DenseLayer::build(const Shape& s) {
  detail::check_rank(*this, s, 2, 64, "inputs of rank >= 2 ([batch, ..., features])");
  MF_CHECK(s.back() > 0, "layer '", name(), "' (Dense): the last dimension of the input ", shape_str(s),
           " must be known to create the kernel");
  kernel_ = add_weight("kernel", {s.back(), units_}, detail::canonical_initializer(options_.kernel_initializer), true,
                       options_.kernel_regularizer);
  if (options_.use_bias)
    bias_ = add_weight("bias", {units_}, detail::canonical_initializer(options_.bias_initializer), true,
                       options_.bias_regularizer);
  if (!options_.kernel_layout.dims.empty()) kernel_.set_layout(options_.kernel_layout);
  if (!options_.bias_layout.dims.empty()) {
    MF_CHECK(options_.use_bias, "layer '", name(), "' (Dense): bias_layout given but use_bias is false");
    bias_.set_layout(options_.bias_layout);
  }
}

Tensor DenseLayer::call(const Tensor& input) {
  Tensor x = detail::to_dtype(input, dtype_);
  const Shape& s = x.shape();
  detail::check_rank(*this, s, 2, 64, "inputs of rank >= 2 ([batch, ..., features])");
  const int64_t in = kernel_.shape()[0];
  MF_CHECK(s.back() == in || s.back() < 0, "layer '", name(), "' (Dense) was built for inputs of shape [?, ", in,
           "] (kernel ", shape_str(kernel_.shape()), ") but got an input of shape ", shape_str(s));
  Tensor y;
  if (s.size() > 2 && shape_known(s)) {
    // One GEMM over all leading positions, rather than a batch of small ones.
    Shape out(s.begin(), s.end() - 1);
    out.push_back(units_);
    y = matmul(x.reshape({-1, in}), kernel_).reshape(out);
  } else {
    y = matmul(x, kernel_);
  }
  return detail::bias_activation(y, bias_, options_.activation, activation_);
}

Json DenseLayer::get_config() const {
  Json c = Layer::get_config();
  c["units"] = units_;
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<DenseLayer> DenseLayer::from_config(const Json& c) {
  DenseOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  return std::make_shared<DenseLayer>(detail::required_field(c, "units", "Dense").get<int64_t>(), o);
}

LayerRef<DenseLayer> Dense(int64_t units, DenseOptions options) {
  return make_layer<DenseLayer>(units, std::move(options));
}

// Activation --------------------------------------------------------------------------------------

ActivationLayer::ActivationLayer(std::string activation, ActivationOptions options)
    : Layer(common_options(options), "Activation"), activation_name_(activations::canonical_name(activation)) {
  activation_ = activations::get(activation_name_);
  supports_masking_ = true;
}

Tensor ActivationLayer::call(const Tensor& x) { return activation_(x); }

Json ActivationLayer::get_config() const {
  Json c = Layer::get_config();
  c["activation"] = activation_name_;
  return c;
}

std::shared_ptr<ActivationLayer> ActivationLayer::from_config(const Json& c) {
  ActivationOptions o;
  read_common(c, o);
  return std::make_shared<ActivationLayer>(detail::required_field(c, "activation", "Activation").get<std::string>(), o);
}

LayerRef<ActivationLayer> Activation(std::string activation, ActivationOptions options) {
  return make_layer<ActivationLayer>(std::move(activation), options);
}

// Dropout -----------------------------------------------------------------------------------------

template <typename F>
void fields(DropoutOptions& o, F&& f) {
  f("seed", o.seed);
}

DropoutLayer::DropoutLayer(double rate, DropoutOptions options)
    : Layer(common_options(options), "Dropout"), rate_(rate), options_(std::move(options)) {
  MF_CHECK(rate >= 0.0 && rate < 1.0, "Dropout: rate must be in [0, 1), got ", rate);
  if (options_.seed) generator_ = std::make_shared<Generator>(*options_.seed);
  supports_masking_ = true;
}

Tensor DropoutLayer::call(const Tensor& x) {
  const bool training = Layer::training();
  if (!training || rate_ == 0.0) return x;
  return generator_ ? dropout(x, rate_, true, *generator_) : dropout(x, rate_, true);
}

Json DropoutLayer::get_config() const {
  Json c = Layer::get_config();
  c["rate"] = rate_;
  c["noise_shape"] = nullptr;
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<DropoutLayer> DropoutLayer::from_config(const Json& c) {
  DropoutOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  return std::make_shared<DropoutLayer>(detail::required_field(c, "rate", "Dropout").get<double>(), o);
}

LayerRef<DropoutLayer> Dropout(double rate, DropoutOptions options) {
  return make_layer<DropoutLayer>(rate, std::move(options));
}

// Flatten -----------------------------------------------------------------------------------------

FlattenLayer::FlattenLayer(FlattenOptions options) : Layer(common_options(options), "Flatten") {}

Tensor FlattenLayer::call(const Tensor& x) {
  const Shape& s = x.shape();
  detail::check_rank(*this, s, 1, 64, "inputs with a batch dimension");
  int64_t rest = 1;
  for (size_t i = 1; i < s.size(); ++i) rest = (rest < 0 || s[i] < 0) ? -1 : rest * s[i];
  MF_CHECK(rest >= 0 || s[0] >= 0, "layer '", name(), "' (Flatten) cannot flatten ", shape_str(s),
           ": the batch and a feature dimension are both unknown");
  return x.reshape({s[0], rest});  // at most one of them is unknown (-1), which reshape infers
}

Json FlattenLayer::get_config() const {
  Json c = Layer::get_config();
  c["data_format"] = "channels_last";
  return c;
}

std::shared_ptr<FlattenLayer> FlattenLayer::from_config(const Json& c) {
  FlattenOptions o;
  read_common(c, o);
  return std::make_shared<FlattenLayer>(o);
}

LayerRef<FlattenLayer> Flatten(FlattenOptions options) { return make_layer<FlattenLayer>(options); }

// Reshape -----------------------------------------------------------------------------------------

ReshapeLayer::ReshapeLayer(Shape target_shape, ReshapeOptions options)
    : Layer(common_options(options), "Reshape"), target_shape_(std::move(target_shape)) {
  int unknown = 0;
  for (int64_t d : target_shape_) {
    MF_CHECK(d > 0 || d == -1, "Reshape: invalid dimension ", d, " in target_shape ", shape_str(target_shape_));
    unknown += d == -1;
  }
  MF_CHECK(unknown <= 1, "Reshape: target_shape ", shape_str(target_shape_), " has more than one unknown (-1) dimension");
}

Tensor ReshapeLayer::call(const Tensor& x) {
  const Shape& s = x.shape();
  detail::check_rank(*this, s, 1, 64, "inputs with a batch dimension");
  int64_t have = 1, want = 1;
  for (size_t i = 1; i < s.size(); ++i) have = (have < 0 || s[i] < 0) ? -1 : have * s[i];
  for (int64_t d : target_shape_) want *= d == -1 ? 1 : d;
  Shape target = target_shape_;
  for (auto& d : target)
    if (d == -1 && have >= 0) d = want > 0 && have % want == 0 ? have / want : 0;
  const bool has_unknown = std::find(target_shape_.begin(), target_shape_.end(), -1) != target_shape_.end();
  MF_CHECK(have < 0 || (has_unknown ? (have % want == 0) : have == want), "layer '", name(),
           "' (Reshape) cannot reshape an input of shape ", shape_str(s), " (", have,
           " values per sample) to target_shape ", shape_str(target_shape_));
  Shape full{s[0]};
  full.insert(full.end(), target.begin(), target.end());
  if (s[0] < 0) full[0] = -1;
  return x.reshape(full);
}

Json ReshapeLayer::get_config() const {
  Json c = Layer::get_config();
  c["target_shape"] = target_shape_;
  return c;
}

std::shared_ptr<ReshapeLayer> ReshapeLayer::from_config(const Json& c) {
  ReshapeOptions o;
  read_common(c, o);
  return std::make_shared<ReshapeLayer>(detail::required_field(c, "target_shape", "Reshape").get<Shape>(), o);
}

LayerRef<ReshapeLayer> Reshape(Shape target_shape, ReshapeOptions options) {
  return make_layer<ReshapeLayer>(std::move(target_shape), options);
}

MF_REGISTER_LAYER(DenseLayer, "Dense");
MF_REGISTER_LAYER(ActivationLayer, "Activation");
MF_REGISTER_LAYER(DropoutLayer, "Dropout");
MF_REGISTER_LAYER(FlattenLayer, "Flatten");
MF_REGISTER_LAYER(ReshapeLayer, "Reshape");

}  // namespace meshflow::layers
