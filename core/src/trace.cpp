// Symbolic tensors, the graph IR built from them, and replaying it on real tensors.
#include "meshflow/core/trace.h"

#include <sstream>
#include <unordered_map>

#include "meshflow/core/error.h"

namespace meshflow {

namespace {
[[gnu::tls_model("initial-exec")]] thread_local bool t_trace_weights = false;
}  // namespace

std::atomic<int> TraceWeightsScope::open_scopes_{0};

TraceWeightsScope::TraceWeightsScope() : previous_(t_trace_weights) {
  t_trace_weights = true;
  open_scopes_.fetch_add(1);
}
TraceWeightsScope::~TraceWeightsScope() {
  t_trace_weights = previous_;
  open_scopes_.fetch_sub(1);
}
bool TraceWeightsScope::active_here() { return t_trace_weights; }


namespace {
thread_local std::vector<std::string> t_scopes;
}

NameScope::NameScope(const std::string& name) { t_scopes.push_back(name); }
NameScope::~NameScope() { t_scopes.pop_back(); }
std::string NameScope::current() {
  std::string s;
  for (const auto& n : t_scopes) s += (s.empty() ? "" : "/") + n;
  return s;
}

Tensor symbolic(const Shape& shape, DType dtype, const std::string& name) {
  for (int64_t d : shape)
    MF_CHECK(d >= -1, "symbolic: dimension ", d, " in shape ", shape_str(shape), " is invalid (use -1 for unknown)");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  impl->sym = std::make_shared<SymValue>();
  impl->name = name;
  return Tensor(std::move(impl));
}

Graph Graph::from(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, bool expand_composites) {
  Graph g;
  std::unordered_map<const SymValue*, int> sym_ids;       // symbolic values seen
  std::unordered_map<const SymNode*, int> node_ids;
  std::unordered_map<const TensorImpl*, int> const_ids;   // concrete tensors used as constants

  auto add_value = [&](Value v) {
    g.values_.push_back(std::move(v));
    return static_cast<int>(g.values_.size()) - 1;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    MF_CHECK(t.defined() && t.is_symbolic() && t.impl()->sym && !t.impl()->sym->producer, "Graph: input ", i,
             " is not a symbolic placeholder (create inputs with symbolic() or Input())");
    Value v;
    v.kind = Value::Kind::Input;
    v.meta = {t.shape(), t.dtype(), t.device()};
    v.name = t.name().empty() ? "input_" + std::to_string(i) : t.name();
    MF_CHECK(!sym_ids.count(t.impl()->sym.get()), "Graph: input '", v.name, "' is listed twice");
    sym_ids[t.impl()->sym.get()] = add_value(v);
    g.inputs_.push_back(sym_ids[t.impl()->sym.get()]);
  }

  // Iterative post-order walk from the outputs.
  std::function<int(const Tensor&, const std::string&)> visit;
  std::function<void(const std::shared_ptr<SymNode>&)> visit_node;
  visit = [&](const Tensor& t, const std::string& needed_by) -> int {
    if (!t.is_symbolic()) {
      auto it = const_ids.find(t.impl());
      if (it != const_ids.end()) return it->second;
      Value v;
      v.kind = Value::Kind::Constant;
      v.meta = {t.shape(), t.dtype(), t.device()};
      v.name = t.name();
      v.constant = t;
      return const_ids[t.impl()] = add_value(v);
    }
    const SymValue* sv = t.impl()->sym.get();
    auto it = sym_ids.find(sv);
    if (it != sym_ids.end()) return it->second;
    if (!sv->producer) {
      std::string name = t.name().empty() ? "an unnamed placeholder" : "'" + t.name() + "'";
      MF_THROW("Graph disconnected: cannot reach the value of input ", name, " (", dtype_name(t.dtype()),
               shape_str(t.shape()), "), needed by ", needed_by,
               ", from the model's inputs; add it to the inputs list");
    }
    const SymNode& producer = *sv->producer;
    if (expand_composites && !producer.op && !producer.expansion.empty()) {
      MF_CHECK(producer.expansion.size() == producer.outputs.size(), "Graph: the expansion of ",
               producer.composite_kind, " '", producer.scope, "' has ", producer.expansion.size(),
               " values for ", producer.outputs.size(), " outputs");
      return sym_ids[sv] = visit(producer.expansion[static_cast<size_t>(sv->output_index)], needed_by);
    }
    visit_node(sv->producer);
    return g.nodes_[node_ids.at(sv->producer.get())].outputs[sv->output_index];
  };
  visit_node = [&](const std::shared_ptr<SymNode>& n) {
    if (node_ids.count(n.get())) return;
    std::string who = (n->op ? "op " + n->op->name : n->composite_kind) + (n->scope.empty() ? "" : " '" + n->scope + "'");
    std::vector<int> ins;
    for (const auto& in : n->inputs) ins.push_back(visit(in, who));
    Node node;
    node.op = n->op;
    node.composite = n->composite;
    node.composite_kind = n->composite_kind;
    node.payload = n->payload;
    node.attrs = n->attrs;
    node.inputs = ins;
    node.scope = n->scope;
    int id = static_cast<int>(g.nodes_.size());
    node_ids[n.get()] = id;
    g.nodes_.push_back(node);
    for (size_t k = 0; k < n->outputs.size(); ++k) {
      Value v;
      v.kind = Value::Kind::OpResult;
      v.meta = n->outputs[k];
      v.producer = id;
      v.output_index = static_cast<int>(k);
      g.nodes_[id].outputs.push_back(add_value(v));
    }
  };
  for (size_t i = 0; i < outputs.size(); ++i) {
    MF_CHECK(outputs[i].defined(), "Graph: output ", i, " is undefined");
    g.outputs_.push_back(visit(outputs[i], "model output " + std::to_string(i)));
  }
  return g;
}

std::vector<Tensor> Graph::run(const std::vector<Tensor>& inputs) const {
  MF_CHECK(inputs.size() == inputs_.size(), "Graph::run: expected ", inputs_.size(), " inputs, got ", inputs.size());
  std::vector<Tensor> env(values_.size());
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const Value& v = values_[inputs_[i]];
    const Tensor& t = inputs[i];
    MF_CHECK(t.defined(), "Graph::run: input '", v.name, "' is undefined");
    bool ok = t.dim() == static_cast<int64_t>(v.meta.shape.size());
    for (size_t d = 0; ok && d < v.meta.shape.size(); ++d)
      ok = v.meta.shape[d] < 0 || v.meta.shape[d] == t.shape()[d];
    MF_CHECK(ok, "Graph::run: input '", v.name, "' expects shape ", shape_str(v.meta.shape), ", got ",
             shape_str(t.shape()));
    env[inputs_[i]] = t;
  }
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].kind == Value::Kind::Constant) env[i] = values_[i].constant;
  run_nodes(env, 0, nodes_.size());
  std::vector<Tensor> result;
  for (int id : outputs_) result.push_back(env[id]);
  return result;
}

void Graph::run_nodes(std::vector<Tensor>& env, size_t first, size_t end) const {
  MF_CHECK(env.size() == values_.size() && first <= end && end <= nodes_.size(), "Graph::run_nodes: nodes [", first,
           ", ", end, ") of ", nodes_.size(), " over ", env.size(), " values (the graph has ", values_.size(), ")");
  for (size_t i = first; i < end; ++i) {
    const Node& n = nodes_[i];
    std::vector<Tensor> ins;
    ins.reserve(n.inputs.size());
    for (int id : n.inputs) ins.push_back(env[id]);
    std::vector<Tensor> outs;
    if (n.composite) {
      outs = n.composite(ins);
      MF_CHECK(outs.size() == n.outputs.size(), n.composite_kind, " '", n.scope, "' returned ", outs.size(),
               " outputs when run, but ", n.outputs.size(), " when traced");
    } else if (n.scope.empty()) {
      outs = call_op(*n.op, ins, n.attrs);
    } else {
      NameScope scope(n.scope);
      outs = call_op(*n.op, ins, n.attrs);
    }
    for (size_t k = 0; k < n.outputs.size(); ++k) env[n.outputs[k]] = outs[k];
  }
}

std::string Graph::str() const {
  std::ostringstream os;
  auto val = [&](int id) {
    const Value& v = values_[id];
    if (v.kind == Value::Kind::Constant && !v.name.empty()) return "%" + v.name;
    return "%" + std::to_string(id);
  };
  auto type = [&](int id) {
    return std::string(dtype_name(values_[id].meta.dtype)) + shape_str(values_[id].meta.shape);
  };
  os << "graph(";
  for (size_t i = 0; i < inputs_.size(); ++i)
    os << (i ? ", " : "") << val(inputs_[i]) << ": " << type(inputs_[i]);
  os << ") {\n";
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].kind == Value::Kind::Constant)
      os << "  " << val(static_cast<int>(i)) << " = constant : " << type(static_cast<int>(i)) << "\n";
  for (const Node& n : nodes_) {
    os << "  ";
    for (size_t k = 0; k < n.outputs.size(); ++k) os << (k ? ", " : "") << val(n.outputs[k]);
    os << " = " << node_label(n) << "(";
    for (size_t k = 0; k < n.inputs.size(); ++k) os << (k ? ", " : "") << val(n.inputs[k]);
    os << ")";
    if (!n.attrs.items().empty()) os << " {" << n.attrs.str() << "}";
    os << " : ";
    for (size_t k = 0; k < n.outputs.size(); ++k) os << (k ? ", " : "") << type(n.outputs[k]);
    if (!n.scope.empty()) os << "  # " << n.scope;
    os << "\n";
  }
  os << "  return ";
  for (size_t i = 0; i < outputs_.size(); ++i) os << (i ? ", " : "") << val(outputs_[i]);
  os << "\n}\n";
  return os.str();
}

std::vector<Tensor> record_composite(const std::string& kind, CompositeFn fn, const std::vector<Tensor>& inputs,
                                     const std::vector<TensorMeta>& outputs, std::shared_ptr<void> payload,
                                     Attrs attrs, std::vector<Tensor> expansion) {
  auto node = std::make_shared<SymNode>();
  node->expansion = std::move(expansion);
  node->composite = std::move(fn);
  node->payload = std::move(payload);
  node->attrs = std::move(attrs);
  node->composite_kind = kind;
  node->inputs = inputs;
  node->outputs = outputs;
  node->scope = NameScope::current();
  std::vector<Tensor> outs;
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto impl = std::make_shared<TensorImpl>();
    impl->shape = outputs[i].shape;
    impl->strides = contiguous_strides(outputs[i].shape);
    impl->dtype = outputs[i].dtype;
    impl->device = outputs[i].device;
    impl->sym = std::make_shared<SymValue>();
    impl->sym->producer = node;
    impl->sym->output_index = static_cast<int>(i);
    outs.emplace_back(std::move(impl));
  }
  return outs;
}

Graph trace(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
            const std::vector<TensorMeta>& input_specs) {
  std::vector<Tensor> ins;
  for (size_t i = 0; i < input_specs.size(); ++i)
    ins.push_back(symbolic(input_specs[i].shape, input_specs[i].dtype, "x" + std::to_string(i)));
  std::vector<Tensor> outs = fn(ins);
  return Graph::from(ins, outs);
}

}  // namespace meshflow
