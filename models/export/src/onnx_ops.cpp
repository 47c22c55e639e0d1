// ONNX nodes for the elementwise ops a model may apply outside its layers.
#include "onnx_ops.h"

#include <map>
#include <utility>

#include "meshflow/core/error.h"

namespace meshflow::onnx_export {

std::vector<std::string> op_node(GraphBuilder& b, const Graph::Node& n, const std::string& where,
                                 const std::vector<Value>& inputs) {
  static const std::map<std::string, std::string> kDirect = {
      {"add", "Add"},   {"sub", "Sub"},         {"mul", "Mul"},   {"div", "Div"},         {"maximum", "Max"},
      {"minimum", "Min"}, {"relu", "Relu"},     {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"}, {"exp", "Exp"},
      {"log", "Log"},   {"neg", "Neg"},         {"sqrt", "Sqrt"}, {"abs", "Abs"},         {"softplus", "Softplus"}};
  const std::string op = Graph::node_label(n);
  std::vector<std::string> names;
  for (const auto& v : inputs) names.push_back(v.name);
  const std::string hint = where + "/" + op;
  auto it = kDirect.find(op);
  if (n.op && it != kDirect.end()) return {b.node1(it->second, names, hint)};
  if (n.op && op == "bias_relu") return {b.node1("Relu", {b.node1("Add", names, hint)}, hint)};
  if (n.op && op == "softmax") return {b.node1("Softmax", names, hint, {{"axis", n.attrs.i("axis")}})};
  if (n.op && op == "matmul") {  // transposes swap the last two axes (a tied output head: x @ table^T)
    for (int k = 0; k < 2; ++k) {
      if (!n.attrs.i(k == 0 ? "transpose_a" : "transpose_b")) continue;
      const int64_t rank = static_cast<int64_t>(inputs[static_cast<size_t>(k)].shape.size());
      std::vector<int64_t> perm;
      for (int64_t d = 0; d < rank; ++d) perm.push_back(d);
      std::swap(perm[static_cast<size_t>(rank - 1)], perm[static_cast<size_t>(rank - 2)]);
      names[static_cast<size_t>(k)] = b.node1("Transpose", {names[static_cast<size_t>(k)]}, hint, {{"perm", perm}});
    }
    return {b.node1("MatMul", names, hint)};
  }
  if (n.op && op == "embedding")  // (ids, table) -> table rows
    return {b.node1("Gather", {names[1], names[0]}, hint, {{"axis", int64_t{0}}})};
  MF_THROW("ONNX export: op '", op, "' applied in '", where, "' outside a layer has no ONNX mapping; the ops that ",
           "export outside layers are the elementwise ones (add, sub, mul, div, maximum, minimum, relu, sigmoid, ",
           "tanh, exp, log, neg, sqrt, abs, softplus, bias_relu), softmax, matmul and embedding; wrap the rest in a layer");
}

}  // namespace meshflow::onnx_export
