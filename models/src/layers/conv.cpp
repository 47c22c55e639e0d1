// Conv1D and Conv2D: a kernel of [k..., in/groups, filters], an optional bias, an activation.
#include "meshflow/models/layers/conv.h"

#include "common.h"
#include "config_fields.h"
#include "meshflow/core/ops/conv.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow::layers {

using detail::common_options;
using detail::read_common;

Int2::Int2(std::initializer_list<int64_t> v) {
  MF_CHECK(v.size() == 1 || v.size() == 2, "expected one or two integers (a size or a pair), got ", v.size());
  first = *v.begin();
  second = *(v.end() - 1);
}

namespace {

void check_padding(const std::string& padding, bool causal_ok, const char* layer) {
  MF_CHECK(padding == "valid" || padding == "same" || (causal_ok && padding == "causal"), layer,
           ": padding must be \"valid\", \"same\"", causal_ok ? " or \"causal\"" : "", ", got \"", padding, "\"");
}

// The channels (last) dimension must be known and divisible by groups; so must filters.
int64_t input_channels(const Layer& l, const Shape& s, int64_t groups, int64_t filters) {
  const int64_t c = s.back();
  MF_CHECK(c > 0, "layer '", l.name(), "' (", l.class_name(), "): the channel dimension (last) of the input ",
           shape_str(s), " must be known to create the kernel");
  MF_CHECK(c % groups == 0 && filters % groups == 0, "layer '", l.name(), "' (", l.class_name(), "): groups = ",
           groups, " must divide both the input channels (", c, ") and filters (", filters, ")");
  return c;
}

void check_channels(const Layer& l, const Shape& s, const Variable& kernel, int64_t groups) {
  const int64_t want = kernel.shape()[kernel.dim() - 2] * groups;
  MF_CHECK(s.back() < 0 || s.back() == want, "layer '", l.name(), "' (", l.class_name(), ") was built for ", want,
           " input channels (kernel ", shape_str(kernel.shape()), ") but got an input of shape ", shape_str(s));
}

// The options Conv1D and Conv2D configs share (Note [One field list per options struct]).
template <typename O, typename F>
void conv_fields(O& o, F&& f) {
  f("padding", o.padding);
  f("groups", o.groups);
  f("activation", detail::ActivationName{o.activation});
  f("use_bias", o.use_bias);
  f("kernel_initializer", o.kernel_initializer);
  f("bias_initializer", o.bias_initializer);
  f("kernel_regularizer", o.kernel_regularizer);
  f("bias_regularizer", o.bias_regularizer);
}

}  // namespace

template <typename F>
void fields(Conv2DOptions& o, F&& f) {
  conv_fields(o, f);
  f("strides", o.strides);
  f("dilation_rate", o.dilation_rate);
}

template <typename F>
void fields(Conv1DOptions& o, F&& f) {
  conv_fields(o, f);
  f("strides", detail::OneElementList{o.strides});
  f("dilation_rate", detail::OneElementList{o.dilation_rate});
}

// Conv2D ------------------------------------------------------------------------------------------

Conv2DLayer::Conv2DLayer(int64_t filters, Int2 kernel_size, Conv2DOptions options)
    : Layer(common_options(options), "Conv2D"), filters_(filters), kernel_size_(kernel_size),
      options_(std::move(options)) {
  MF_CHECK(filters > 0, "Conv2D: filters must be positive, got ", filters);
  MF_CHECK(kernel_size.first > 0 && kernel_size.second > 0, "Conv2D: kernel_size must be positive, got [",
           kernel_size.first, ", ", kernel_size.second, "]");
  MF_CHECK(options_.groups > 0, "Conv2D: groups must be positive, got ", options_.groups);
  check_padding(options_.padding, false, "Conv2D");
  activation_ = activations::get(options_.activation);
}

void Conv2DLayer::build(const Shape& s) {
  detail::check_rank(*this, s, 4, 4, "inputs of rank 4 ([batch, rows, cols, channels])");
  const int64_t c = input_channels(*this, s, options_.groups, filters_);
  kernel_ = add_weight("kernel", {kernel_size_.first, kernel_size_.second, c / options_.groups, filters_},
                       detail::canonical_initializer(options_.kernel_initializer), true, options_.kernel_regularizer);
  if (options_.use_bias)
    bias_ = add_weight("bias", {filters_}, detail::canonical_initializer(options_.bias_initializer), true,
                       options_.bias_regularizer);
}

Tensor Conv2DLayer::call(const Tensor& input) {
  Tensor x = detail::to_dtype(input, dtype_);
  detail::check_rank(*this, x.shape(), 4, 4, "inputs of rank 4 ([batch, rows, cols, channels])");
  check_channels(*this, x.shape(), kernel_, options_.groups);
  Tensor y = conv2d(x, kernel_,
                    {.strides = options_.strides.vec(), .padding = options_.padding,
                     .dilation = options_.dilation_rate.vec(), .groups = options_.groups});
  return detail::bias_activation(y, bias_, options_.activation, activation_);
}

Json Conv2DLayer::get_config() const {
  Json c = Layer::get_config();
  c["filters"] = filters_;
  c["kernel_size"] = detail::int2_config(kernel_size_);
  c["data_format"] = "channels_last";
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<Conv2DLayer> Conv2DLayer::from_config(const Json& c) {
  Conv2DOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  return std::make_shared<Conv2DLayer>(detail::required_field(c, "filters", "Conv2D").get<int64_t>(),
                                       detail::int2_from_config(detail::required_field(c, "kernel_size", "Conv2D")), o);
}

LayerRef<Conv2DLayer> Conv2D(int64_t filters, Int2 kernel_size, Conv2DOptions options) {
  return make_layer<Conv2DLayer>(filters, kernel_size, std::move(options));
}

// Conv1D ------------------------------------------------------------------------------------------

Conv1DLayer::Conv1DLayer(int64_t filters, int64_t kernel_size, Conv1DOptions options)
    : Layer(common_options(options), "Conv1D"), filters_(filters), kernel_size_(kernel_size),
      options_(std::move(options)) {
  MF_CHECK(filters > 0, "Conv1D: filters must be positive, got ", filters);
  MF_CHECK(kernel_size > 0, "Conv1D: kernel_size must be positive, got ", kernel_size);
  MF_CHECK(options_.groups > 0, "Conv1D: groups must be positive, got ", options_.groups);
  check_padding(options_.padding, true, "Conv1D");
  activation_ = activations::get(options_.activation);
}

void Conv1DLayer::build(const Shape& s) {
  detail::check_rank(*this, s, 3, 3, "inputs of rank 3 ([batch, steps, channels])");
  const int64_t c = input_channels(*this, s, options_.groups, filters_);
  kernel_ = add_weight("kernel", {kernel_size_, c / options_.groups, filters_},
                       detail::canonical_initializer(options_.kernel_initializer), true, options_.kernel_regularizer);
  if (options_.use_bias)
    bias_ = add_weight("bias", {filters_}, detail::canonical_initializer(options_.bias_initializer), true,
                       options_.bias_regularizer);
}

Tensor Conv1DLayer::call(const Tensor& input) {
  Tensor x = detail::to_dtype(input, dtype_);
  detail::check_rank(*this, x.shape(), 3, 3, "inputs of rank 3 ([batch, steps, channels])");
  check_channels(*this, x.shape(), kernel_, options_.groups);
  std::string padding = options_.padding;
  if (padding == "causal") {
    // Causal: pad only on the left, so output t sees inputs <= t (Keras's WaveNet-style padding).
    x = pad(x, {{0, 0}, {options_.dilation_rate * (kernel_size_ - 1), 0}, {0, 0}});
    padding = "valid";
  }
  Tensor y = conv1d(x, kernel_,
                    {.stride = options_.strides, .padding = padding, .dilation = options_.dilation_rate,
                     .groups = options_.groups});
  return detail::bias_activation(y, bias_, options_.activation, activation_);
}

Json Conv1DLayer::get_config() const {
  Json c = Layer::get_config();
  c["filters"] = filters_;
  c["kernel_size"] = Json::array({kernel_size_});
  c["data_format"] = "channels_last";
  detail::write_fields(c, options_);
  return c;
}

std::shared_ptr<Conv1DLayer> Conv1DLayer::from_config(const Json& c) {
  Conv1DOptions o;
  read_common(c, o);
  detail::read_fields(c, o);
  return std::make_shared<Conv1DLayer>(detail::required_field(c, "filters", "Conv1D").get<int64_t>(),
                                       detail::int1_from_config(detail::required_field(c, "kernel_size", "Conv1D")), o);
}

LayerRef<Conv1DLayer> Conv1D(int64_t filters, int64_t kernel_size, Conv1DOptions options) {
  return make_layer<Conv1DLayer>(filters, kernel_size, std::move(options));
}

MF_REGISTER_LAYER(Conv2DLayer, "Conv2D");
MF_REGISTER_LAYER(Conv1DLayer, "Conv1D");

}  // namespace meshflow::layers
