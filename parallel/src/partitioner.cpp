// SpmdProgram: layout propagation over a traced forward, the collectives it implies, and the
// partitioned run (Note [Partitioned programs] in partitioner.h).
#include "meshflow/parallel/partitioner.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "conversion.h"
#include "spmd_ops.h"

namespace meshflow {

using spmd::after;
using spmd::conversion;
using spmd::convert;
using spmd::cut;
using spmd::Step;

namespace {

struct InputPlan {
  Layout need;
  std::vector<Step> steps;
  std::vector<std::string> syncs;  // axes whose gradient is all-reduced (Megatron's f)
};

struct NodePlan {
  std::vector<InputPlan> inputs;
  bool rescale_mean = false;  // mean over a split dimension: local count over global count
};

std::string describe(const Graph& g, int node) {
  const Graph::Node& n = g.nodes()[static_cast<size_t>(node)];
  return (n.scope.empty() ? std::string() : n.scope + ": ") + Graph::node_label(n);
}

}  // namespace

// Bound state: the device's communicators and parts of weights, shared by programs bound alike.
struct SpmdBinding {
  std::shared_ptr<distributed::Communicator> comm;
  std::map<std::string, int64_t> axis_comm;       // axis -> spmd handle
  std::map<const TensorImpl*, Tensor> parts;      // whole weight -> this device's part
  std::vector<Tensor> keep;                       // the whole weights the keys point at
  ~SpmdBinding() {
    for (auto& [axis, h] : axis_comm) spmd::unregister_comm(h);
  }
};

struct SpmdProgram::Impl {
  SpmdOptions options;
  std::vector<bool> requires_grad;       // per value
  std::vector<NodePlan> nodes;
  std::vector<InputPlan> outputs;        // converting the graph's outputs
  std::vector<InputPlan> inputs;         // whole inputs to their layouts (slices only)
  std::map<const TensorImpl*, int> constant_of;  // weight -> value id
  std::shared_ptr<SpmdBinding> binding;    // null until bind()
  std::map<int, Tensor> local_constants;     // value id -> this rank's part (split weights)
  int rank = -1;
};

SpmdProgram::SpmdProgram(const Fn& fn, std::vector<TensorMeta> input_specs, Mesh mesh,
                         const std::vector<std::pair<Tensor, Layout>>& annotations, SpmdOptions options)
    : mesh_(std::move(mesh)), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  // Trace with every layer call expanded into its ops.
  std::vector<Tensor> ins;
  for (size_t i = 0; i < input_specs.size(); ++i)
    ins.push_back(symbolic(input_specs[i].shape, input_specs[i].dtype, "x" + std::to_string(i)));
  std::vector<Tensor> outs;
  {
    TraceWeightsScope weights;  // what layers do to their weights is part of the graph
    outs = fn(ins);
  }
  graph_ = Graph::from(ins, outs, /*expand_composites=*/true);
  const auto& values = graph_.values();
  layouts_.resize(values.size());
  m.requires_grad.assign(values.size(), false);

  MF_CHECK(options.inputs.empty() || options.inputs.size() == ins.size(), "SpmdProgram: ", options.inputs.size(),
           " input layouts for ", ins.size(), " inputs");
  MF_CHECK(options.outputs.empty() || options.outputs.size() == outs.size(), "SpmdProgram: ", options.outputs.size(),
           " output layouts for ", outs.size(), " outputs");
  for (size_t i = 0; i < values.size(); ++i) {
    const auto& v = values[i];
    layouts_[i] = sharding::replicated(v.meta.shape.size());
    if (v.kind == Graph::Value::Kind::Constant) {
      m.constant_of[v.constant.impl()] = static_cast<int>(i);
      m.requires_grad[i] = v.constant.requires_grad();
    }
  }
  for (size_t k = 0; k < graph_.inputs().size(); ++k) {
    const int v = graph_.inputs()[k];
    InputPlan p;
    p.need = options.inputs.empty() ? sharding::replicated(values[v].meta.shape.size()) : options.inputs[k];
    check_layout(p.need, values[v].meta, mesh_, "input " + std::to_string(k));
    MF_CHECK(!sharding::has_partial(p.need), "SpmdProgram: input ", k, " cannot be a pending sum (layout ",
             sharding::str(p.need), ")");
    p.steps = conversion(sharding::replicated(p.need.dims.size()), p.need, "input " + std::to_string(k));
    layouts_[v] = p.need;
    MF_CHECK(options.input_requires_grad.empty() || options.input_requires_grad.size() == ins.size(), "SpmdProgram: ",
             options.input_requires_grad.size(), " input_requires_grad flags for ", ins.size(), " inputs");
    m.requires_grad[v] = !options.input_requires_grad.empty() && options.input_requires_grad[k];
    m.inputs.push_back(std::move(p));
  }
  for (const auto& [t, l] : annotations) {
    MF_CHECK(t.defined(), "SpmdProgram: an annotated tensor is undefined");
    const std::string what = "'" + (t.name().empty() ? std::string("unnamed") : t.name()) + "'";
    TensorMeta meta{t.shape(), t.dtype(), t.device()};
    check_layout(l, meta, mesh_, what);
    MF_CHECK(!sharding::has_partial(l), "SpmdProgram: weight ", what, " cannot be annotated as a pending sum (",
             sharding::str(l), ")");
    auto it = m.constant_of.find(t.impl());
    MF_CHECK(it != m.constant_of.end(), "SpmdProgram: annotated tensor ", what, " (layout ", sharding::str(l),
             ") is not used by the traced function");
    layouts_[static_cast<size_t>(it->second)] = l;
  }

  // Propagate, node by node (the graph is in execution order).
  const auto& nodes = graph_.nodes();
  m.nodes.resize(nodes.size());
  for (size_t n = 0; n < nodes.size(); ++n) {
    const Graph::Node& node = nodes[n];
    MF_CHECK(node.op != nullptr, "SpmdProgram: layer call '", node.scope, "' (", node.composite_kind,
             ") was not expanded into ops, so it cannot be partitioned");
    ShardingRuleFn rule = sharding_rule(*node.op);
    std::vector<TensorMeta> metas;
    std::vector<Layout> current;
    bool grad = false;
    for (int v : node.inputs) {
      metas.push_back(values[static_cast<size_t>(v)].meta);
      current.push_back(layouts_[static_cast<size_t>(v)]);
      grad = grad || m.requires_grad[static_cast<size_t>(v)];
    }
    // Rules that must know whether a split divides evenly read the axes' sizes (Note [reshape sharding]).
    Attrs rule_attrs = node.attrs;
    for (const auto& axis : mesh_.axes()) rule_attrs.set("mesh_axis_size:" + axis.name, static_cast<int64_t>(axis.size));
    ShardingDecision d = rule(metas, current, rule_attrs);
    const std::string where = describe(graph_, static_cast<int>(n));
    MF_CHECK(d.inputs.size() == node.inputs.size() && d.outputs.size() == node.outputs.size(), "sharding rule of ",
             node.op->name, " returned ", d.inputs.size(), " input and ", d.outputs.size(), " output layouts for ",
             node.inputs.size(), " and ", node.outputs.size());
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      const int v = node.outputs[o];
      check_layout(d.outputs[o], values[static_cast<size_t>(v)].meta, mesh_, "output of " + where);
      layouts_[static_cast<size_t>(v)] = d.outputs[o];
      m.requires_grad[static_cast<size_t>(v)] = grad && node.op->backward != nullptr;
    }
    NodePlan& plan = m.nodes[n];
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const int v = node.inputs[i];
      check_layout(d.inputs[i], metas[i], mesh_, "input " + std::to_string(i) + " of " + where);
      InputPlan p;
      p.need = d.inputs[i];
      p.steps = conversion(current[i], p.need, "input " + std::to_string(i) + " of " + where);
      if (m.requires_grad[static_cast<size_t>(v)] && node.op->backward != nullptr)
        for (const MeshAxis& axis : mesh_.axes()) {
          if (axis.size == 1 || sharding::mentions(p.need, axis.name)) continue;
          bool out_uses = false;
          for (const Layout& o : d.outputs) out_uses = out_uses || sharding::mentions(o, axis.name);
          if (out_uses) p.syncs.push_back(axis.name);
        }
      plan.inputs.push_back(std::move(p));
    }
    if (node.op->name == "mean")
      for (const auto& dim : plan.inputs[0].need.dims) plan.rescale_mean = plan.rescale_mean || !dim.axes.empty();
  }
  for (size_t k = 0; k < graph_.outputs().size(); ++k) {
    const int v = graph_.outputs()[k];
    InputPlan p;
    p.need = options.outputs.empty() ? sharding::replicated(values[v].meta.shape.size()) : options.outputs[k];
    check_layout(p.need, values[v].meta, mesh_, "output " + std::to_string(k));
    p.steps = conversion(layouts_[static_cast<size_t>(v)], p.need, "output " + std::to_string(k));
    m.outputs.push_back(std::move(p));
  }
}

SpmdProgram::~SpmdProgram() = default;

Layout SpmdProgram::layout_of(const Tensor& weight) const {
  auto it = impl_->constant_of.find(weight.impl());
  MF_CHECK(it != impl_->constant_of.end(), "SpmdProgram: tensor '", weight.name(), "' is not used by the traced function");
  return layouts_[static_cast<size_t>(it->second)];
}

namespace {

// The collectives of converting one value (and, when it needs a gradient, their transposes).
void add_conversion(std::vector<Collective>& fwd, std::vector<Collective>& bwd, const TensorMeta& meta, Layout l,
                    const InputPlan& p, bool grad, const Mesh& mesh, int rank, const std::string& where, int node) {
  for (const Step& s : p.steps) {
    const Shape before = local_shape(meta.shape, l, mesh, rank);
    l = after(l, s);
    const Shape now = local_shape(meta.shape, l, mesh, rank);
    auto add = [&](std::vector<Collective>& to, Collective::Kind kind, bool backward, const Shape& shape,
                   const Shape& counted) {
      to.push_back({kind, s.axis, backward, where, node, shape, meta.dtype, spmd::wire_bytes(counted, meta.dtype)});
    };
    switch (s.kind) {
      case Step::Kind::AllReduce: add(fwd, Collective::Kind::AllReduce, false, now, now); break;
      case Step::Kind::ReduceScatter:
        add(fwd, Collective::Kind::ReduceScatter, false, before, before);
        if (grad) add(bwd, Collective::Kind::AllGather, true, before, before);
        break;
      case Step::Kind::AllGather: add(fwd, Collective::Kind::AllGather, false, now, now); break;
      case Step::Kind::Split:
        if (grad) add(bwd, Collective::Kind::AllGather, true, before, before);
        break;
    }
  }
  for (const std::string& axis : p.syncs) {
    const Shape s = local_shape(meta.shape, l, mesh, rank);
    bwd.push_back({Collective::Kind::AllReduce, axis, true, where, node, s, meta.dtype, spmd::wire_bytes(s, meta.dtype)});
  }
}

}  // namespace

std::vector<Collective> SpmdProgram::collectives(int rank) const {
  MF_CHECK(rank >= 0 && rank < mesh_.size(), "SpmdProgram::collectives: rank ", rank, " is not a device of ", mesh_.str());
  const Impl& m = *impl_;
  const auto& values = graph_.values();
  // An input's gradient comes back only through ops that pass gradients on.
  std::vector<bool> fed_back(values.size(), false);
  for (const auto& node : graph_.nodes())
    for (int v : node.inputs) fed_back[static_cast<size_t>(v)] = fed_back[static_cast<size_t>(v)] || node.op->backward;
  std::vector<Collective> fwd, bwd_inputs;
  for (size_t k = 0; k < graph_.inputs().size(); ++k) {
    const size_t v = static_cast<size_t>(graph_.inputs()[k]);
    add_conversion(fwd, bwd_inputs, values[v].meta, sharding::replicated(values[v].meta.shape.size()), m.inputs[k],
                   m.requires_grad[v] && fed_back[v], mesh_, rank, "input " + std::to_string(k), -1);
  }
  std::vector<std::vector<Collective>> bwd_per_node;
  for (size_t n = 0; n < graph_.nodes().size(); ++n) {
    const Graph::Node& node = graph_.nodes()[n];
    std::vector<Collective> bwd;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const size_t v = static_cast<size_t>(node.inputs[i]);
      // A gradient comes back through the conversion only when the op passes one to this input.
      const bool grad = m.requires_grad[v] && node.op->backward != nullptr;
      add_conversion(fwd, bwd, values[v].meta, layouts_[v], m.nodes[n].inputs[i], grad, mesh_, rank,
                     describe(graph_, static_cast<int>(n)) + ", input " + std::to_string(i), static_cast<int>(n));
    }
    bwd_per_node.push_back(std::move(bwd));
  }
  std::vector<Collective> bwd_out;
  for (size_t k = 0; k < graph_.outputs().size(); ++k) {
    const size_t v = static_cast<size_t>(graph_.outputs()[k]);
    add_conversion(fwd, bwd_out, values[v].meta, layouts_[v], m.outputs[k], m.requires_grad[v], mesh_, rank,
                   "output " + std::to_string(k), -1);
  }
  std::vector<Collective> all = fwd;
  all.insert(all.end(), bwd_out.begin(), bwd_out.end());
  for (size_t n = bwd_per_node.size(); n > 0; --n) all.insert(all.end(), bwd_per_node[n - 1].begin(), bwd_per_node[n - 1].end());
  all.insert(all.end(), bwd_inputs.begin(), bwd_inputs.end());
  return all;
}

int64_t SpmdProgram::bytes_per_step(int rank) const {
  int64_t total = 0;
  for (const Collective& c : collectives(rank)) total += c.bytes;
  return total;
}

std::string SpmdProgram::explain(int rank) const {
  const auto& values = graph_.values();
  const Impl& m = *impl_;
  std::ostringstream os;
  os << "SpmdProgram over " << mesh_.str() << ", as device " << rank << " runs it\n";
  auto value_str = [&](int v) {
    const auto& val = values[static_cast<size_t>(v)];
    std::string name = val.name.empty() ? "%" + std::to_string(v) : val.name;
    return name + " " + sharding::str(layouts_[static_cast<size_t>(v)]);
  };
  os << "weights:\n";
  for (size_t i = 0; i < values.size(); ++i) {
    const auto& v = values[i];
    if (v.kind != Graph::Value::Kind::Constant || v.meta.shape.empty()) continue;
    if (!v.constant.requires_grad() && sharding::is_replicated(layouts_[i])) continue;  // masks, constants
    os << "  " << (v.name.empty() ? "%" + std::to_string(i) : v.name) << " " << dtype_name(v.meta.dtype)
       << shape_str(v.meta.shape) << " " << sharding::str(layouts_[i]) << " -> local "
       << shape_str(local_shape(v.meta.shape, layouts_[i], mesh_, rank)) << "\n";
  }
  os << "inputs:\n";
  for (int v : graph_.inputs()) os << "  " << value_str(v) << "\n";
  os << "ops:\n";
  const auto all = collectives(rank);
  for (size_t n = 0; n < graph_.nodes().size(); ++n) {
    const Graph::Node& node = graph_.nodes()[n];
    const std::string where = describe(graph_, static_cast<int>(n));
    os << "  " << where << "(";
    for (size_t i = 0; i < node.inputs.size(); ++i) os << (i ? ", " : "") << sharding::str(m.nodes[n].inputs[i].need);
    os << ") -> ";
    for (size_t o = 0; o < node.outputs.size(); ++o)
      os << (o ? ", " : "") << sharding::str(layouts_[static_cast<size_t>(node.outputs[o])]);
    os << "\n";
    for (const Collective& c : all)
      if (c.node == static_cast<int>(n))
        os << "      " << collective_name(c.kind) << " over " << c.axis << " of " << dtype_name(c.dtype)
           << shape_str(c.shape) << ": " << c.bytes << " B " << (c.backward ? "(backward)" : "(forward)") << "\n";
  }
  os << "outputs:\n";
  for (size_t k = 0; k < graph_.outputs().size(); ++k) os << "  " << sharding::str(m.outputs[k].need) << "\n";
  for (const Collective& c : all)
    if (c.node < 0)
      os << "  " << c.where << ": " << collective_name(c.kind) << " over " << c.axis << " of " << dtype_name(c.dtype)
         << shape_str(c.shape) << ": " << c.bytes << " B " << (c.backward ? "(backward)" : "(forward)") << "\n";
  int64_t fb = 0, bb = 0, fc = 0, bc = 0;
  for (const Collective& c : all) (c.backward ? bb : fb) += c.bytes, (c.backward ? bc : fc) += 1;
  os << "per step: " << fc << " collectives forward (" << fb << " B), " << bc << " backward (" << bb << " B)\n";
  return os.str();
}

void SpmdProgram::bind(std::shared_ptr<distributed::Communicator> comm) {
  Impl& m = *impl_;
  MF_CHECK(comm != nullptr, "SpmdProgram::bind: the communicator is null");
  MF_CHECK(comm->size() == mesh_.size(), "SpmdProgram: ", mesh_.str(), " has ", mesh_.size(),
           " devices but the job has ", comm->size(), " ranks");
  MF_CHECK(m.binding == nullptr, "SpmdProgram::bind: already bound (rank ", m.rank, ")");
  auto b = std::make_shared<SpmdBinding>();
  b->comm = comm;
  const std::vector<int> coords = mesh_.coords(comm->rank());
  for (size_t a = 0; a < mesh_.axes().size(); ++a) {
    std::vector<int> c = coords;
    c[a] = 0;
    auto sub = mesh_.axes()[a].size == 1 ? nullptr : comm->split(mesh_.rank_of(c), coords[a]);
    if (sub) b->axis_comm[mesh_.axes()[a].name] = spmd::register_comm(sub);
  }
  attach(b);
}

void SpmdProgram::bind_like(const SpmdProgram& other) {
  MF_CHECK(other.impl_->binding != nullptr, "SpmdProgram::bind_like: the other program is not bound");
  MF_CHECK(impl_->binding == nullptr, "SpmdProgram::bind_like: already bound (rank ", impl_->rank, ")");
  MF_CHECK(other.mesh_.str() == mesh_.str(), "SpmdProgram::bind_like: ", mesh_.str(), " vs ", other.mesh_.str());
  attach(other.impl_->binding);
}

void SpmdProgram::attach(const std::shared_ptr<SpmdBinding>& b) {
  Impl& m = *impl_;
  m.binding = b;
  m.rank = b->comm->rank();
  // This rank's parts of the split weights (made once per binding).
  NoGradGuard no_grad;
  const auto& values = graph_.values();
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].kind != Graph::Value::Kind::Constant) continue;
    if (sharding::is_replicated(layouts_[i]) && !(m.options.private_weights && values[i].constant.requires_grad()))
      continue;
    auto known = b->parts.find(values[i].constant.impl());
    if (known != b->parts.end()) {
      MF_CHECK(known->second.shape() == local_shape(values[i].meta.shape, layouts_[i], mesh_, m.rank),
               "SpmdProgram::bind_like: weight '", values[i].name, "' is laid out differently in the two programs");
      m.local_constants[static_cast<int>(i)] = known->second;
      continue;
    }
    Tensor leaf = cut(values[i].constant, layouts_[i], mesh_, m.rank).clone().detach();
    leaf.set_name(values[i].name + "@" + std::to_string(m.rank));
    if (values[i].constant.requires_grad()) leaf.set_requires_grad(true);
    m.local_constants[static_cast<int>(i)] = leaf;
    b->parts[values[i].constant.impl()] = leaf;
    b->keep.push_back(values[i].constant);
  }
}

int SpmdProgram::rank() const { return impl_->rank; }

std::vector<Tensor> SpmdProgram::run(const std::vector<Tensor>& inputs) {
  Impl& m = *impl_;
  MF_CHECK(m.binding != nullptr, "SpmdProgram::run: call bind(communicator) first");
  const auto& values = graph_.values();
  MF_CHECK(inputs.size() == graph_.inputs().size(), "SpmdProgram::run: ", inputs.size(), " inputs for a program of ",
           graph_.inputs().size());
  auto run_steps = [&](const Tensor& x, const TensorMeta& meta, const Layout& l, const InputPlan& p, bool syncs) {
    Tensor t = convert(x, meta.shape, l, p.steps, m.binding->axis_comm, mesh_, m.rank);
    if (syncs)
      for (const std::string& axis : p.syncs) t = spmd::grad_sync(t, m.binding->axis_comm.at(axis));
    return t;
  };
  std::vector<Tensor> env(values.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const size_t v = static_cast<size_t>(graph_.inputs()[k]);
    MF_CHECK(inputs[k].defined() && inputs[k].shape() == values[v].meta.shape, "SpmdProgram::run: input ", k, " is ",
             inputs[k].defined() ? shape_str(inputs[k].shape()) : std::string("undefined"), " but the program was traced for ",
             shape_str(values[v].meta.shape));
    env[v] = run_steps(inputs[k], values[v].meta, sharding::replicated(values[v].meta.shape.size()), m.inputs[k], false);
  }
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].kind == Graph::Value::Kind::Constant) {
      auto it = m.local_constants.find(static_cast<int>(i));
      env[i] = it != m.local_constants.end() ? it->second : values[i].constant;
    }
  const auto& nodes = graph_.nodes();
  for (size_t n = 0; n < nodes.size(); ++n) {
    const Graph::Node& node = nodes[n];
    const NodePlan& plan = m.nodes[n];
    std::vector<Tensor> ins;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const size_t v = static_cast<size_t>(node.inputs[i]);
      ins.push_back(run_steps(env[v], values[v].meta, layouts_[v], plan.inputs[i], true));
    }
    Attrs attrs = node.attrs;
    std::vector<Shape> expect;
    for (int o : node.outputs)
      expect.push_back(local_shape(values[static_cast<size_t>(o)].meta.shape, layouts_[static_cast<size_t>(o)], mesh_, m.rank));
    if (node.op->name == "reshape" || node.op->name == "expand") attrs.set("shape", expect[0]);
    if (node.op->name == "dropout") {
      // The part's place in the whole, so it draws the mask one device draws there.
      const size_t o = static_cast<size_t>(node.outputs[0]);
      const Shape& whole = values[o].meta.shape;
      std::vector<int64_t> start(whole.size(), 0);
      for (size_t d = 0; d < whole.size() && d < layouts_[o].dims.size(); ++d)
        start[d] = local_range(whole[d], layouts_[o].dims[d].axes, mesh_, m.rank).first;
      attrs.set("global_shape", whole).set("shard_start", start);
      auto it = counters_.find({static_cast<uint64_t>(attrs.i("seed")), static_cast<uint64_t>(attrs.i("counter"))});
      if (it != counters_.end()) attrs.set("counter", static_cast<int64_t>(it->second));
    }
    std::vector<Tensor> outs = call_op(*node.op, ins, attrs);
    if (plan.rescale_mean) {
      // The kernel divided by the local count of reduced elements; the mean is over the global count.
      auto numel = [](const Shape& sh) {
        double k = 1;
        for (int64_t d : sh) k *= static_cast<double>(d);
        return k;
      };
      const double local = static_cast<double>(ins[0].numel()) / std::max<double>(static_cast<double>(outs[0].numel()), 1);
      const double global = numel(values[static_cast<size_t>(node.inputs[0])].meta.shape) /
                            std::max(numel(values[static_cast<size_t>(node.outputs[0])].meta.shape), 1.0);
      outs[0] = outs[0] * (local / global);
    }
    for (size_t o = 0; o < outs.size(); ++o) {
      MF_CHECK(outs[o].shape() == expect[o], "SpmdProgram: ", describe(graph_, static_cast<int>(n)), " gave ",
               shape_str(outs[o].shape()), " on device ", m.rank, " but its layout ",
               sharding::str(layouts_[static_cast<size_t>(node.outputs[o])]), " over ", mesh_.str(), " needs ",
               shape_str(expect[o]), " (a split that does not divide evenly where the op needs it to)");
      env[static_cast<size_t>(node.outputs[o])] = outs[o];
    }
  }
  std::vector<Tensor> result;
  for (size_t k = 0; k < graph_.outputs().size(); ++k) {
    const size_t v = static_cast<size_t>(graph_.outputs()[k]);
    result.push_back(run_steps(env[v], values[v].meta, layouts_[v], m.outputs[k], false));
  }
  return result;
}

Tensor SpmdProgram::local(const Tensor& weight) const {
  auto it = impl_->constant_of.find(weight.impl());
  MF_CHECK(it != impl_->constant_of.end(), "SpmdProgram: tensor '", weight.name(), "' is not used by the traced function");
  auto lc = impl_->local_constants.find(it->second);
  if (lc != impl_->local_constants.end()) return lc->second;
  MF_CHECK(impl_->binding != nullptr || sharding::is_replicated(layouts_[static_cast<size_t>(it->second)]),
           "SpmdProgram::local: weight '", weight.name(), "' is split; call bind() first");
  return weight;
}

std::vector<Tensor> SpmdProgram::local_weights() const {
  std::vector<Tensor> trainable, other;
  for (const auto& v : graph_.values())
    if (v.kind == Graph::Value::Kind::Constant && !v.meta.shape.empty()) {
      Tensor t = local(v.constant);
      (t.requires_grad() ? trainable : other).push_back(t);
    }
  trainable.insert(trainable.end(), other.begin(), other.end());
  return trainable;
}

Tensor SpmdProgram::part_of(const Tensor& whole, const Tensor& weight) const {
  const Layout l = layout_of(weight);
  MF_CHECK(whole.shape() == weight.shape(), "SpmdProgram::part_of: '", weight.name(), "' is ", shape_str(weight.shape()),
           " but the tensor is ", shape_str(whole.shape()));
  MF_CHECK(impl_->binding != nullptr, "SpmdProgram::part_of: call bind(communicator) first");
  NoGradGuard no_grad;
  return cut(whole, l, mesh_, impl_->rank).contiguous().clone();
}

Tensor SpmdProgram::gather(const Tensor& part, const Tensor& weight) const {
  const Impl& m = *impl_;
  MF_CHECK(m.binding != nullptr, "SpmdProgram::gather: call bind(communicator) first");
  const Layout from = layout_of(weight);
  const Shape want = local_shape(weight.shape(), from, mesh_, m.rank);
  MF_CHECK(part.shape() == want, "SpmdProgram::gather: this device's part of '", weight.name(), "' is ",
           shape_str(want), " but the tensor is ", shape_str(part.shape()));
  NoGradGuard no_grad;
  const auto steps = conversion(from, sharding::replicated(from.dims.size()), "'" + weight.name() + "'");
  return convert(part, weight.shape(), from, steps, m.binding->axis_comm, mesh_, m.rank);
}

void SpmdProgram::gather_weights() {
  Impl& m = *impl_;
  MF_CHECK(m.binding != nullptr, "SpmdProgram::gather_weights: call bind(communicator) first");
  NoGradGuard no_grad;
  const auto& values = graph_.values();
  for (auto& [v, part] : m.local_constants) {
    if (sharding::is_replicated(layouts_[static_cast<size_t>(v)])) continue;  // a private copy stays the device's
    Tensor whole = values[static_cast<size_t>(v)].constant;
    whole.copy_(gather(part, whole));
  }
}

}  // namespace meshflow
