// ONNX mappings of the channels-last convolution and pooling layers (Conv1D, Conv2D, MaxPooling2D,
// AveragePooling2D, the global poolings) and of BatchNormalization and LayerNormalization in their
// inference form.
//
// Note [Channels-last in ONNX]: ONNX's Conv and pooling ops read channels first, so each such layer
// is Transpose (NHWC -> NCHW), the op, Transpose back. Kernels are transposed once, at export, into
// initializers named "<weight>:oihw". ONNX Runtime's layout optimizer removes the transposes that
// cancel between consecutive layers.
#include <cmath>

#include "onnx_builder.h"

namespace meshflow::onnx_export {
namespace {

std::vector<int64_t> json_ints(const Json& j) {
  if (j.is_number_integer()) return {j.get<int64_t>()};
  std::vector<int64_t> v;
  for (const auto& x : j) v.push_back(x.get<int64_t>());
  return v;
}

// Keras's "same" padding (TensorFlow's rule, the odd element after) for one spatial axis of known
// size, or "valid"; `pads` gets (begin, end) for the axis.
void window_pads(LayerCall& c, const std::string& padding, int64_t in, int64_t kernel, int64_t stride,
                 int64_t dilation, int64_t& begin, int64_t& end) {
  begin = end = 0;
  if (padding == "valid") return;
  if (padding != "same") c.fail("padding '" + padding + "' has no ONNX mapping");
  if (in < 0) c.fail("padding 'same' needs the spatial size, which is unknown in the trace");
  const int64_t extent = (kernel - 1) * dilation + 1;
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + extent - in, 0);
  begin = total / 2;
  end = total - begin;
}

std::string single_input(LayerCall& c) {
  if (c.inputs.size() != 1) c.fail("expected one input, got " + std::to_string(c.inputs.size()));
  return c.inputs[0].name;
}

// Conv1D and Conv2D: rank 3 or 4, kernel [k..., in/groups, filters].
std::vector<std::string> conv(LayerCall& c, int spatial) {
  std::string x = single_input(c);
  const Shape& s = c.inputs[0].shape;
  if (static_cast<int>(s.size()) != spatial + 2) c.fail("expected an input of rank " + std::to_string(spatial + 2));
  auto kernel = json_ints(c.config.at("kernel_size")), strides = json_ints(c.config.at("strides")),
       dilation = json_ints(c.config.at("dilation_rate"));
  const std::string padding = c.config.value("padding", "valid");
  std::vector<int64_t> begins(spatial), ends(spatial);
  for (int i = 0; i < spatial; ++i) {
    if (padding == "causal") {
      begins[i] = dilation[i] * (kernel[i] - 1);
      ends[i] = 0;
    } else {
      window_pads(c, padding, s[i + 1], kernel[i], strides[i], dilation[i], begins[i], ends[i]);
    }
  }
  std::vector<int64_t> pads = begins;
  pads.insert(pads.end(), ends.begin(), ends.end());
  std::vector<int64_t> to_first = spatial == 2 ? std::vector<int64_t>{0, 3, 1, 2} : std::vector<int64_t>{0, 2, 1};
  std::vector<int64_t> to_last = spatial == 2 ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1};
  std::vector<int64_t> kernel_perm = spatial == 2 ? std::vector<int64_t>{3, 2, 0, 1} : std::vector<int64_t>{2, 1, 0};
  Tensor w = c.weight("kernel").detach().permute(kernel_perm).contiguous();
  std::vector<std::string> ins{c.b.node1("Transpose", {x}, c.hint("to_channels_first"), {{"perm", to_first}}),
                               c.b.weight(c.layer.name() + "/kernel:oihw", w)};
  Tensor bias = c.weight("bias", true);
  if (bias.defined()) ins.push_back(c.b.weight(c.layer.name() + "/bias", bias));
  std::string y = c.b.node1("Conv", ins, c.hint("conv"),
                            {{"kernel_shape", kernel}, {"strides", strides}, {"dilations", dilation}, {"pads", pads},
                             {"group", c.config.value("groups", int64_t{1})}});
  y = c.b.node1("Transpose", {y}, c.hint("to_channels_last"), {{"perm", to_last}});
  return {activation(c, c.config.value("activation", "linear"), y)};
}

std::vector<std::string> pool2d(LayerCall& c, const char* op_type) {
  std::string x = single_input(c);
  const Shape& s = c.inputs[0].shape;
  if (s.size() != 4) c.fail("expected an input of rank 4");
  auto pool = json_ints(c.config.at("pool_size")), strides = json_ints(c.config.at("strides"));
  const std::string padding = c.config.value("padding", "valid");
  std::vector<int64_t> pads(4);
  for (int i = 0; i < 2; ++i) window_pads(c, padding, s[i + 1], pool[i], strides[i], 1, pads[i], pads[i + 2]);
  NodeAttrs attrs{{"kernel_shape", pool}, {"strides", strides}, {"pads", pads}};
  // Keras's average over "same" windows counts only the real elements (ONNX's default, 0).
  if (std::string(op_type) == "AveragePool") attrs.push_back({"count_include_pad", int64_t{0}});
  std::string y = c.b.node1("Transpose", {x}, c.hint("to_channels_first"), {{"perm", std::vector<int64_t>{0, 3, 1, 2}}});
  y = c.b.node1(op_type, {y}, c.hint("pool"), attrs);
  return {c.b.node1("Transpose", {y}, c.hint("to_channels_last"), {{"perm", std::vector<int64_t>{0, 2, 3, 1}}})};
}

std::vector<std::string> global_pool(LayerCall& c, const char* op_type, std::vector<int64_t> axes) {
  const int64_t keepdims = c.config.value("keepdims", false) ? 1 : 0;
  std::string x = single_input(c);
  if (!c.inputs[0].mask.empty()) {
    if (std::string(op_type) != "ReduceMean" || axes.size() != 1)
      c.refuse_masks("only GlobalAveragePooling1D applies masks");
    // The mean over the kept steps only: sum(x * m) / sum(m), as GlobalAveragePooling1D computes it.
    std::string m = c.b.node1("Cast", {c.inputs[0].mask}, c.hint("mask"), {{"to", int64_t{onnx::TensorProto::FLOAT}}});
    m = c.b.node1("Unsqueeze", {m, c.b.ints(c.hint("axes"), {-1})}, c.hint("mask"));
    std::string num = c.b.node1("ReduceSum", {c.b.node1("Mul", {x, m}, c.hint("masked")), c.b.ints(c.hint("axes"), axes)},
                                c.hint("sum"), {{"keepdims", keepdims}});
    std::string den = c.b.node1("ReduceSum", {m, c.b.ints(c.hint("axes"), axes)}, c.hint("count"), {{"keepdims", keepdims}});
    return {c.b.node1("Div", {num, den}, c.hint("mean"))};
  }
  return {c.b.node1(op_type, {x}, c.hint("global_pool"), {{"axes", axes}, {"keepdims", keepdims}})};
}

// Inference form: y = x * scale + shift over the last axis, with scale = gamma / sqrt(var + eps)
// and shift = beta - mean * scale computed in double, as Meshflow's kernel computes them.
std::vector<std::string> batch_norm(LayerCall& c) {
  std::string x = single_input(c);
  auto values = [&](const char* suffix, double fallback, int64_t n) {
    Tensor t = c.weight(suffix, true);
    if (!t.defined()) return std::vector<double>(static_cast<size_t>(n), fallback);
    return t.detach().to(Device()).to(DType::F64).contiguous().to_vector<double>();
  };
  auto mean = values("moving_mean", 0.0, 0);
  const int64_t n = static_cast<int64_t>(mean.size());
  auto var = values("moving_variance", 1.0, n), gamma = values("gamma", 1.0, n), beta = values("beta", 0.0, n);
  const double eps = c.config.value("epsilon", 1e-3);
  std::vector<float> scale(mean.size()), shift(mean.size());
  for (size_t j = 0; j < mean.size(); ++j) {
    const double s = gamma[j] / std::sqrt(var[j] + eps);
    scale[j] = static_cast<float>(s);
    shift[j] = static_cast<float>(beta[j] - mean[j] * s);
  }
  std::string y = c.b.node1("Mul", {x, c.b.floats(c.layer.name() + "/scale", scale, {n})}, c.hint("bn"));
  return {c.b.node1("Add", {y, c.b.floats(c.layer.name() + "/shift", shift, {n})}, c.hint("bn"))};
}

std::vector<std::string> layer_norm(LayerCall& c) {
  std::string x = single_input(c);
  const int64_t rank = static_cast<int64_t>(c.inputs[0].shape.size());
  Json axis_json = c.config.value("axis", Json::array({-1}));
  int64_t first = rank;
  for (int64_t a : json_ints(axis_json)) first = std::min(first, a < 0 ? a + rank : a);
  Shape param(c.inputs[0].shape.begin() + first, c.inputs[0].shape.end());
  int64_t numel = 1;
  for (int64_t d : param) numel *= d;
  auto param_or = [&](const char* suffix, float fallback) {
    Tensor t = c.weight(suffix, true);
    if (t.defined()) return c.b.weight(c.layer.name() + "/" + suffix, t);
    return c.b.floats(c.layer.name() + "/" + suffix + ":const", std::vector<float>(static_cast<size_t>(numel), fallback),
                      param);
  };
  return {c.b.node1("LayerNormalization", {x, param_or("gamma", 1.0f), param_or("beta", 0.0f)}, c.hint("ln"),
                    {{"axis", first}, {"epsilon", static_cast<float>(c.config.value("epsilon", 1e-3))}})};
}

const bool kRegistered = [] {
  register_mapping("Conv2D", {13, [](LayerCall& c) { return conv(c, 2); }, ""});
  register_mapping("Conv1D", {13, [](LayerCall& c) { return conv(c, 1); }, ""});
  register_mapping("MaxPooling2D", {13, [](LayerCall& c) { return pool2d(c, "MaxPool"); }, ""});
  register_mapping("AveragePooling2D", {13, [](LayerCall& c) { return pool2d(c, "AveragePool"); }, ""});
  register_mapping("GlobalAveragePooling1D", {13, [](LayerCall& c) { return global_pool(c, "ReduceMean", {1}); }, ""});
  register_mapping("GlobalAveragePooling2D",
                   {13, [](LayerCall& c) { return global_pool(c, "ReduceMean", {1, 2}); }, ""});
  register_mapping("GlobalMaxPooling2D", {13, [](LayerCall& c) { return global_pool(c, "ReduceMax", {1, 2}); }, ""});
  register_mapping("BatchNormalization", {13, batch_norm, ""});
  register_mapping("LayerNormalization", {17, layer_norm, "the ONNX LayerNormalization op"});
  return true;
}();

}  // namespace
}  // namespace meshflow::onnx_export
