// The autograd engine: nodes recorded by call_op, run in reverse creation order.
#include "meshflow/core/autograd.h"

#include <atomic>
#include <queue>
#include <unordered_map>

#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/reduce.h"

namespace meshflow {
namespace {

[[gnu::tls_model("initial-exec")]] thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_next_sequence{1};

struct OpNode final : Node {
  const OpDef* op = nullptr;
  Attrs attrs;
  std::vector<Tensor> inputs;
  std::vector<Tensor> outputs;
  std::vector<bool> needs_input_grad;
  bool released = false;

  std::string name() const override { return op->name; }

  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    MF_CHECK(!released, "backward: op ", op->name,
             " was already differentiated and its saved tensors freed; call backward(grad, /*retain_graph=*/true)"
             " the first time to run backward twice over the same graph");
    for (size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined())
        grads[i] = zeros(output_meta[i].shape, {.dtype = output_meta[i].dtype, .device = output_meta[i].device});
    BackwardContext ctx{inputs, outputs, attrs, needs_input_grad};
    std::vector<Tensor> result = op->backward(ctx, grads);
    MF_CHECK(result.size() == inputs.size(), "internal: backward of ", op->name, " returned ", result.size(),
             " gradients for ", inputs.size(), " inputs");
    for (size_t i = 0; i < result.size(); ++i) {
      if (!result[i].defined() || !needs_input_grad[i]) {
        result[i] = Tensor();
        continue;
      }
      MF_CHECK(result[i].shape() == inputs[i].shape(), "internal: backward of ", op->name, " gave input ", i,
               " a gradient of shape ", shape_str(result[i].shape()), ", expected ", shape_str(inputs[i].shape()));
      if (result[i].dtype() != inputs[i].dtype()) result[i] = cast(result[i], inputs[i].dtype());
    }
    return result;
  }

  void release() override {
    inputs.clear();
    outputs.clear();
    released = true;
  }
};

struct AccumulateGrad final : Node {
  std::weak_ptr<TensorImpl> leaf;
  std::string name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    auto impl = leaf.lock();
    if (!impl || !grads[0].defined()) return {};
    Tensor g = grads[0];
    if (g.dtype() != impl->dtype) g = cast(g, impl->dtype);
    auto& meta = *impl->autograd;
    if (meta.grad) {
      meta.grad = std::make_shared<Tensor>(add(*meta.grad, g));
    } else {
      meta.grad = std::make_shared<Tensor>(g.detach());
    }
    for (const auto& hook : meta.grad_ready_hooks) hook(*meta.grad);
    return {};
  }
};

Edge edge_for(const Tensor& t) {
  if (!t.requires_grad()) return {};
  auto& meta = *t.impl()->autograd;
  if (meta.grad_fn) return {meta.grad_fn, meta.output_nr};
  auto acc = meta.grad_accumulator.lock();
  if (!acc) {
    auto a = std::make_shared<AccumulateGrad>();
    a->leaf = t.impl_ptr();
    a->output_meta = {{t.shape(), t.dtype(), t.device()}};
    a->sequence_nr = UINT64_MAX;  // gradients land in .grad as soon as they are complete
    meta.grad_accumulator = a;
    acc = a;
  }
  return {acc, 0};
}

Tensor add_grads(const Tensor& a, const Tensor& b) { return a.defined() ? add(a, b) : b; }

// capture: when non-null, gradients arriving at these (node, slot) pairs are returned instead of
// being accumulated into leaves' .grad (autograd::grad).
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                                 bool retain_graph, const std::vector<Edge>* capture) {
  MF_CHECK(grad_roots.empty() || grad_roots.size() == roots.size(), "backward: ", roots.size(), " roots but ",
           grad_roots.size(), " gradients");
  NoGradGuard no_grad;
  // Everything the pass tracks per node, in one map entry (one allocation per node).
  struct Pending {
    int deps = 0;          // edges from nodes not yet run
    bool seen = false;     // reached by the dependency count
    bool queued = false;   // already run
    std::vector<Tensor> grads;  // gradients arrived so far, one per output
  };
  std::unordered_map<Node*, Pending> state;
  state.reserve(64);
  std::vector<std::shared_ptr<Node>> root_nodes;

  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    MF_CHECK(r.defined(), "backward: root ", i, " is undefined");
    MF_CHECK(r.requires_grad(), "backward: the tensor ", dtype_name(r.dtype()), shape_str(r.shape()),
             " does not require grad: no input of the computation had requires_grad set (or it ran under NoGradGuard)");
    Tensor g = i < grad_roots.size() ? grad_roots[i] : Tensor();
    if (!g.defined()) {
      MF_CHECK(r.numel() == 1, "backward: a gradient can be implied only for a scalar, but the output has shape ",
               shape_str(r.shape()), "; pass backward(gradient) with that shape");
      g = ones(r.shape(), {.dtype = r.dtype(), .device = r.device()});
    }
    MF_CHECK(g.shape() == r.shape(), "backward: gradient shape ", shape_str(g.shape()),
             " differs from the output shape ", shape_str(r.shape()));
    Edge e = edge_for(r);
    auto& buf = state[e.node.get()].grads;
    if (buf.empty()) buf.resize(e.node->output_meta.size());
    buf[e.input_nr] = add_grads(buf[e.input_nr], g);
    root_nodes.push_back(e.node);
  }

  // Count, for every node reachable from the roots, how many edges point at it.
  std::vector<Node*> stack;
  std::vector<std::shared_ptr<Node>> all;  // keeps nodes alive through the pass
  for (auto& n : root_nodes) {
    Pending& st = state[n.get()];
    if (!st.seen) {
      st.seen = true;
      stack.push_back(n.get());
      all.push_back(n);
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& e : n->next_edges) {
      if (!e.node) continue;
      Pending& st = state[e.node.get()];
      st.deps++;
      if (!st.seen) {
        st.seen = true;
        stack.push_back(e.node.get());
        all.push_back(e.node);
      }
    }
  }

  std::vector<Tensor> captured;
  std::unordered_map<Node*, std::vector<std::pair<int, size_t>>> capture_at;
  if (capture) {
    captured.resize(capture->size());
    for (size_t i = 0; i < capture->size(); ++i)
      if ((*capture)[i].node) capture_at[(*capture)[i].node.get()].push_back({(*capture)[i].input_nr, i});
  }

  auto later_first = [](Node* a, Node* b) { return a->sequence_nr < b->sequence_nr; };
  std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
  for (auto& n : root_nodes)
    if (state[n.get()].deps == 0) ready.push(n.get());
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    Pending& st = state[n];  // references into the map stay valid while it grows
    if (st.queued) continue;
    st.queued = true;
    std::vector<Tensor> buf = std::move(st.grads);
    if (buf.empty()) buf.resize(n->output_meta.size());
    if (capture) {
      auto it = capture_at.find(n);
      if (it != capture_at.end())
        for (auto [slot, idx] : it->second) captured[idx] = buf[slot];
    }
    bool any = false;
    for (const auto& g : buf) any = any || g.defined();
    std::vector<Tensor> grads;
    bool is_leaf_acc = dynamic_cast<AccumulateGrad*>(n) != nullptr;
    if (any && !(capture && is_leaf_acc)) grads = n->apply(std::move(buf));
    buf = {};
    for (size_t i = 0; i < n->next_edges.size(); ++i) {
      const Edge& e = n->next_edges[i];
      if (!e.node) continue;
      Pending& next = state[e.node.get()];
      if (i < grads.size() && grads[i].defined()) {
        auto& nb = next.grads;
        if (nb.empty()) nb.resize(e.node->output_meta.size());
        nb[e.input_nr] = add_grads(nb[e.input_nr], grads[i]);
      }
      if (--next.deps == 0) ready.push(e.node.get());
    }
  }
  if (!retain_graph)
    for (auto& n : all) n->release();
  return captured;
}

}  // namespace

bool GradMode::is_enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool enabled) { t_grad_enabled = enabled; }

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots, bool retain_graph) {
  run_backward(roots, grad_roots, retain_graph, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph) {
  std::vector<Edge> capture;
  for (size_t i = 0; i < inputs.size(); ++i) {
    MF_CHECK(inputs[i].defined() && inputs[i].requires_grad(), "grad: input ", i,
             " does not require grad, so no gradient can flow to it");
    capture.push_back(edge_for(inputs[i]));
  }
  auto result = run_backward(outputs, grad_outputs, retain_graph, &capture);
  for (size_t i = 0; i < result.size(); ++i)
    if (!result[i].defined()) result[i] = zeros_like(inputs[i]);
  return result;
}

namespace autograd {

void record(const OpDef& op, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs, const Attrs& attrs) {
  auto node = std::make_shared<OpNode>();
  node->op = &op;
  node->attrs = attrs;
  node->sequence_nr = g_next_sequence.fetch_add(1);
  node->inputs.reserve(inputs.size());
  node->needs_input_grad.reserve(inputs.size());
  node->next_edges.reserve(inputs.size());
  for (const auto& t : inputs) {
    // A tensor with no autograd state (data, constants) is kept as is: detaching it would only
    // copy its shape and strides into a new impl.
    node->inputs.push_back(t.impl()->autograd ? t.detach() : t);
    node->needs_input_grad.push_back(t.requires_grad());
    node->next_edges.push_back(edge_for(t));
  }
  if (op.save_outputs)
    for (const auto& o : outputs) node->outputs.push_back(o.detach());
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor& o = outputs[i];
    node->output_meta.push_back({o.shape(), o.dtype(), o.device()});
    if (!is_floating(o.dtype())) continue;
    auto* impl = o.impl();
    if (!impl->autograd) impl->autograd = std::make_unique<AutogradMeta>();
    impl->autograd->requires_grad = true;
    impl->autograd->grad_fn = node;
    impl->autograd->output_nr = static_cast<int>(i);
  }
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  MF_CHECK(lead >= 0, "internal: sum_to from ", shape_str(grad.shape()), " to the larger shape ", shape_str(shape));
  std::vector<int64_t> axes;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i < lead) axes.push_back(i);
    else if (shape[i - lead] == 1 && grad.shape()[i] != 1) axes.push_back(i);
  }
  Tensor s = axes.empty() ? grad : sum(grad, axes, /*keepdims=*/true);
  return s.reshape(shape);
}

}  // namespace autograd
}  // namespace meshflow
