// ONNX mappings of the sequence layers: SimpleRNN, LSTM and GRU as ONNX's RNN, LSTM and GRU ops
// (weights reordered into ONNX's gate order), and MultiHeadAttention as MatMul/Softmax nodes.
#include <cmath>
#include <limits>

#include "onnx_builder.h"

namespace meshflow::onnx_export {
namespace {

std::vector<float> host_floats(const Tensor& t) {
  return t.detach().to(Device()).to(DType::F32).contiguous().to_vector<float>();
}

std::string onnx_activation(LayerCall& c, const std::string& name) {
  if (name == "tanh") return "Tanh";
  if (name == "sigmoid") return "Sigmoid";
  if (name == "relu") return "Relu";
  c.fail("the recurrent activation '" + name + "' has no mapping to ONNX's recurrent ops (tanh, sigmoid, relu)");
}

// A Keras kernel [rows, gates * units] as ONNX's [1, gates * units, rows], gate blocks taken in
// `order` (Keras gate index for each ONNX gate).
std::vector<float> gate_matrix(const Tensor& kernel, int64_t units, const std::vector<int>& order) {
  const int64_t rows = kernel.size(0), cols = kernel.size(1);
  std::vector<float> k = host_floats(kernel), out(static_cast<size_t>(rows * cols));
  for (size_t g = 0; g < order.size(); ++g)
    for (int64_t u = 0; u < units; ++u)
      for (int64_t r = 0; r < rows; ++r)
        out[static_cast<size_t>((static_cast<int64_t>(g) * units + u) * rows + r)] =
            k[static_cast<size_t>(r * cols + order[g] * units + u)];
  return out;
}

std::vector<float> gate_vector(const std::vector<float>& b, int64_t units, const std::vector<int>& order) {
  std::vector<float> out;
  for (int g : order) out.insert(out.end(), b.begin() + g * units, b.begin() + (g + 1) * units);
  return out;
}

std::vector<std::string> recurrent(LayerCall& c, const std::string& op_type, int64_t gates,
                                   const std::vector<int>& order) {
  if (c.inputs.size() != 1)
    c.fail("initial states passed as inputs are not exported; call it on the sequence alone");
  if (c.inputs[0].shape.size() != 3) c.fail("expected an input [batch, steps, features]");
  c.refuse_masks("masked steps (which keep the previous state) have no ONNX recurrent-op equivalent");
  const int64_t units = c.config.at("units").get<int64_t>(), features = c.inputs[0].shape[2];
  const std::string n = c.layer.name();
  std::string x = c.b.node1("Transpose", {c.inputs[0].name}, c.hint("time_major"),
                            {{"perm", std::vector<int64_t>{1, 0, 2}}});
  // go_backwards reads the steps from the last and returns outputs in reading order: the forward op
  // on the reversed sequence computes exactly that.
  if (c.config.value("go_backwards", false))
    x = c.b.node1("Slice", {x, c.b.ints(c.hint("start"), {-1}), c.b.ints(c.hint("end"), {std::numeric_limits<int64_t>::min()}),
                            c.b.ints(c.hint("axis"), {0}), c.b.ints(c.hint("step"), {-1})},
                  c.hint("reverse"));
  std::string w = c.b.floats(n + "/kernel:onnx", gate_matrix(c.weight("kernel"), units, order), {1, gates * units, features});
  std::string r = c.b.floats(n + "/recurrent_kernel:onnx", gate_matrix(c.weight("recurrent_kernel"), units, order),
                             {1, gates * units, units});
  std::string bias_name;
  Tensor bias = c.weight("bias", true);
  if (bias.defined()) {
    std::vector<float> b = host_floats(bias), onnx_b;
    if (bias.numel() == 2 * gates * units) {  // GRU reset_after: input and recurrent biases
      std::vector<float> wb(b.begin(), b.begin() + gates * units), rb(b.begin() + gates * units, b.end());
      onnx_b = gate_vector(wb, units, order);
      auto rb2 = gate_vector(rb, units, order);
      onnx_b.insert(onnx_b.end(), rb2.begin(), rb2.end());
    } else {
      onnx_b = gate_vector(b, units, order);
      onnx_b.resize(static_cast<size_t>(2 * gates * units), 0.0f);
    }
    bias_name = c.b.floats(n + "/bias:onnx", onnx_b, {1, 2 * gates * units});
  }
  std::vector<std::string> acts;
  if (op_type != "RNN") acts.push_back(onnx_activation(c, c.config.value("recurrent_activation", "sigmoid")));
  acts.push_back(onnx_activation(c, c.config.value("activation", "tanh")));
  if (op_type == "LSTM") acts.push_back(acts.back());
  NodeAttrs attrs{{"hidden_size", units}, {"activations", acts}};
  if (op_type == "GRU") attrs.push_back({"linear_before_reset", int64_t{c.config.value("reset_after", true) ? 1 : 0}});
  const int outputs = op_type == "LSTM" ? 3 : 2;
  auto y = c.b.node(op_type, {x, w, r, bias_name}, c.hint("rnn"), attrs, outputs);
  auto squeeze = [&](const std::string& v, int64_t axis) {
    return c.b.node1("Squeeze", {v, c.b.ints(c.hint("axes"), {axis})}, c.hint("squeeze"));
  };
  std::vector<std::string> out;
  if (c.config.value("return_sequences", false))  // Y [steps, 1, batch, units] -> [batch, steps, units]
    out.push_back(c.b.node1("Transpose", {squeeze(y[0], 1)}, c.hint("batch_major"),
                            {{"perm", std::vector<int64_t>{1, 0, 2}}}));
  else
    out.push_back(squeeze(y[1], 0));
  if (c.config.value("return_state", false)) {
    out.push_back(squeeze(y[1], 0));
    if (op_type == "LSTM") out.push_back(squeeze(y[2], 0));
  }
  return out;
}

// x [batch, len, dim] through kernel [dim, heads, d] and bias [heads, d] -> [batch, heads, len, d].
std::string project(LayerCall& c, const std::string& x, const std::string& which, float scale) {
  Tensor k = c.weight(which + "/kernel");
  const int64_t dim = k.size(0), heads = k.size(1), d = k.size(2);
  std::string y = c.b.node1("MatMul", {x, c.b.weight(c.layer.name() + "/" + which + "/kernel:2d",
                                                     k.detach().reshape({dim, heads * d}))},
                            c.hint(which));
  Tensor bias = c.weight(which + "/bias", true);
  if (bias.defined())
    y = c.b.node1("Add", {y, c.b.weight(c.layer.name() + "/" + which + "/bias:1d", bias.detach().reshape({heads * d}))},
                  c.hint(which));
  if (scale != 1.0f) y = c.b.node1("Mul", {y, c.b.scalar(c.hint(which + "/scale"), scale)}, c.hint(which));
  y = c.b.node1("Reshape", {y, c.b.ints(c.hint("heads"), {0, 0, heads, d})}, c.hint(which));
  return c.b.node1("Transpose", {y}, c.hint(which), {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
}

}  // namespace

std::vector<std::string> multi_head_attention(LayerCall& c) {
  std::vector<const Value*> features;
  const Value* mask = nullptr;
  for (const auto& v : c.inputs) {
    if (v.dtype == DType::Bool) mask = &v;
    else features.push_back(&v);
  }
  if (features.size() != 2 && features.size() != 3) c.fail("expected inputs {query, value} or {query, value, key}");
  const Value &query = *features[0], &value = *features[1], &key = features.size() == 3 ? *features[2] : value;
  const int64_t key_dim = c.config.at("key_dim").get<int64_t>();
  std::string q = project(c, query.name, "query", static_cast<float>(1.0 / std::sqrt(static_cast<double>(key_dim))));
  std::string k = project(c, key.name, "key", 1.0f), v = project(c, value.name, "value", 1.0f);
  std::string kt = c.b.node1("Transpose", {k}, c.hint("key"), {{"perm", std::vector<int64_t>{0, 1, 3, 2}}});
  std::string logits = c.b.node1("MatMul", {q, kt}, c.hint("logits"));  // [batch, heads, T, S]
  // Keras's rule: query mask [B, T, 1] & value mask [B, 1, S] & key mask [B, 1, S] & causal
  // [1, T, S] & the attention mask, one for every head.
  std::string attend;
  size_t rank = 3;
  auto both = [&](const std::string& m) { attend = attend.empty() ? m : c.b.node1("And", {attend, m}, c.hint("mask")); };
  auto unsqueeze = [&](const std::string& m, int64_t axis) {
    return c.b.node1("Unsqueeze", {m, c.b.ints(c.hint("axes"), {axis})}, c.hint("mask"));
  };
  if (mask) {
    both(mask->name);
    rank = mask->shape.size();
  }
  if (!query.mask.empty()) both(unsqueeze(query.mask, 2));
  if (!value.mask.empty()) both(unsqueeze(value.mask, 1));
  if (key.name != value.name && !key.mask.empty()) both(unsqueeze(key.mask, 1));
  if (c.config.value("use_causal_mask", false)) {
    const int64_t t = query.shape.size() == 3 ? query.shape[1] : -1, s = value.shape.size() == 3 ? value.shape[1] : -1;
    if (t < 0 || s < 0) c.fail("use_causal_mask needs the query and value lengths, unknown in the trace");
    std::vector<float> band(static_cast<size_t>(t * s));
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < s; ++j) band[static_cast<size_t>(i * s + j)] = i >= j ? 1.0f : 0.0f;
    both(c.b.node1("Cast", {c.b.floats(c.layer.name() + "/causal_band", band, {1, t, s})}, c.hint("causal"),
                   {{"to", int64_t{onnx::TensorProto::BOOL}}}));
  }
  if (!attend.empty() && rank == 3) attend = unsqueeze(attend, 1);
  if (!attend.empty()) {
    std::string penalty = c.b.node1("Where", {attend, c.b.scalar(c.hint("zero"), 0.0f), c.b.scalar(c.hint("masked"), -1e9f)},
                                    c.hint("mask"));
    logits = c.b.node1("Add", {logits, penalty}, c.hint("mask"));
  }
  std::string probs = c.b.node1("Softmax", {logits}, c.hint("softmax"), {{"axis", int64_t{-1}}});
  std::string ctx = c.b.node1("MatMul", {probs, v}, c.hint("context"));
  ctx = c.b.node1("Transpose", {ctx}, c.hint("context"), {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  Tensor wo = c.weight("attention_output/kernel");
  const int64_t heads = wo.size(0), vd = wo.size(1), out_dim = wo.size(2);
  ctx = c.b.node1("Reshape", {ctx, c.b.ints(c.hint("merge_heads"), {0, 0, heads * vd})}, c.hint("context"));
  std::string y = c.b.node1(
      "MatMul", {ctx, c.b.weight(c.layer.name() + "/attention_output/kernel:2d", wo.detach().reshape({heads * vd, out_dim}))},
      c.hint("output"));
  Tensor bo = c.weight("attention_output/bias", true);
  if (bo.defined()) y = c.b.node1("Add", {y, c.b.weight(c.layer.name() + "/attention_output/bias", bo)}, c.hint("output"));
  std::vector<std::string> out{y};
  if (c.config.value("return_attention_scores", false)) out.push_back(probs);
  c.output_masks.assign(out.size(), "");
  c.output_masks[0] = query.mask;  // the output carries the query's mask
  return out;
}

namespace {

const bool kRegistered = [] {
  // ONNX gate orders: LSTM i, o, f, c (Keras i, f, c, o); GRU z, r, h (as Keras).
  register_mapping("SimpleRNN", {13, [](LayerCall& c) { return recurrent(c, "RNN", 1, {0}); }, ""});
  register_mapping("LSTM", {13, [](LayerCall& c) { return recurrent(c, "LSTM", 4, {0, 3, 1, 2}); }, ""});
  register_mapping("GRU", {13, [](LayerCall& c) { return recurrent(c, "GRU", 3, {0, 1, 2}); }, ""});
  register_mapping("MultiHeadAttention", {13, multi_head_attention, ""});
  return true;
}();

}  // namespace
}  // namespace meshflow::onnx_export
