// The op registry, attributes, and call_op: the one path every op takes.
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/trace.h"

namespace meshflow {

// Attrs -----------------------------------------------------------------------------------------

void Attrs::missing_(std::string_view key) const {
  MF_THROW("op attribute '", key, "' is missing (have: ", str(), ")");
}

void Attrs::wrong_type_(std::string_view key, const char* type) const {
  MF_THROW("op attribute '", key, "' is not of type ", type);
}

Attrs& Attrs::set(const std::string& key, AttrValue value) {
  for (auto& [k, v] : items_)
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  items_.emplace_back(key, std::move(value));
  return *this;
}

std::string Attrs::str() const {
  std::ostringstream os;
  bool first = true;
  for (const auto& [k, v] : items_) {
    if (!first) os << ", ";
    first = false;
    os << k << "=";
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, std::vector<int64_t>>) os << shape_str(x);
          else if constexpr (std::is_same_v<X, bool>) os << (x ? "true" : "false");
          else if constexpr (std::is_same_v<X, std::string>) os << '"' << x << '"';
          else os << x;
        },
        v);
  }
  return os.str();
}

// Execution context ----------------------------------------------------------------------------

// Note [Execution context]: the stream comes from the device type's provider when the context is
// made (call_op makes one per kernel call), so CPU kernels pay one table read. Workspace is plain
// Storage from the device's allocator, which caches; the CUDA allocator reuses a block only in
// its stream's order, so freeing scratch right after an asynchronous launch is safe.
namespace {
StreamFn g_stream_providers[kNumDeviceTypes] = {};
}

void register_stream_provider(DeviceType type, StreamFn fn) { g_stream_providers[static_cast<int>(type)] = fn; }

ExecContext::ExecContext(Device device) : device_(device) {
  if (StreamFn f = g_stream_providers[static_cast<int>(device.type)]) stream_ = f(device.index);
}
ExecContext::~ExecContext() = default;

void* ExecContext::workspace(size_t bytes) const {
  scratch_.push_back(std::make_shared<Storage>((bytes + 255) / 256 * 256, device_));
  return scratch_.back()->data;
}

// Registry --------------------------------------------------------------------------------------

namespace {
struct OpTable {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<OpDef>> ops;
};
OpTable& table() {
  static OpTable* t = new OpTable();
  return *t;
}
}  // namespace

OpDef& define_op(const std::string& name) {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto& slot = t.ops[name];
  if (!slot) {
    slot = std::make_unique<OpDef>();
    slot->name = name;
  }
  return *slot;
}

const OpDef& get_op(const std::string& name) {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.ops.find(name);
  MF_CHECK(it != t.ops.end() && it->second->infer, "unknown op '", name, "' (not registered)");
  return *it->second;
}

void register_kernel(const std::string& op, DeviceType device, KernelFn kernel) {
  define_op(op).kernels[static_cast<int>(device)] = kernel;
}

ShardingRuleFn sharding_rule(const OpDef& op) {
  MF_CHECK(op.sharding != nullptr, "op ", op.name, " has no sharding rule: it cannot run on sharded tensors yet");
  return op.sharding;
}

std::vector<std::string> registered_ops() {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  std::vector<std::string> names;
  for (const auto& [n, def] : t.ops)
    if (def->infer) names.push_back(n);
  return names;
}

std::vector<std::string> kernels_without_definition() {
  auto& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  std::vector<std::string> names;
  for (const auto& [n, def] : t.ops)
    if (!def->infer) names.push_back(n);
  return names;
}

std::string metas_str(const std::vector<TensorMeta>& metas) {
  std::string s;
  for (size_t i = 0; i < metas.size(); ++i) {
    if (i) s += ", ";
    s += std::string(dtype_name(metas[i].dtype)) + shape_str(metas[i].shape);
  }
  return s;
}

// Note [Hot thread-locals]: the thread-locals every op reads (this one, the current device, grad
// mode, the trace flag, the allocator cache) use the initial-exec TLS model. Meshflow's libraries
// are linked, never dlopen'd, so the variables sit in the static TLS block and a read is one
// %fs-relative load instead of a __tls_get_addr call (bench_fit's tiny_b32 makes ~150 per step).
namespace {
[[gnu::tls_model("initial-exec")]] thread_local const OpDef* t_current_op = nullptr;
}

const char* current_op_name() { return t_current_op ? t_current_op->name.c_str() : "op"; }

// Dispatch --------------------------------------------------------------------------------------

namespace {

std::vector<Tensor> record_symbolic(const OpDef& op, const std::vector<Tensor>& inputs, const Attrs& attrs,
                                    std::vector<TensorMeta>&& metas) {
  auto node = std::make_shared<SymNode>();
  node->op = &op;
  node->attrs = attrs;
  node->inputs = inputs;
  node->outputs = metas;
  node->scope = NameScope::current();
  std::vector<Tensor> outs;
  outs.reserve(metas.size());
  for (size_t i = 0; i < metas.size(); ++i) {
    auto impl = std::make_shared<TensorImpl>();
    impl->shape = metas[i].shape;
    impl->strides = contiguous_strides(metas[i].shape);
    impl->dtype = metas[i].dtype;
    impl->device = metas[i].device;
    impl->sym = std::make_shared<SymValue>();
    impl->sym->producer = node;
    impl->sym->output_index = static_cast<int>(i);
    outs.emplace_back(std::move(impl));
  }
  return outs;
}

}  // namespace

namespace {

// Note [Mixed devices]: an op runs on the current DeviceScope's device when one is open, else on
// its first input on an accelerator, else on its first input's device. Inputs that live elsewhere
// are copied there with Tensor::to, which records the copy on the tape, so their gradients travel
// back to where they came from. Views (reshape, slice, ...) never copy: they alias their input.
std::vector<Tensor> placed_inputs(const OpDef& op, const std::vector<Tensor>& inputs, Device device) {
  std::vector<Tensor> moved;
  moved.reserve(inputs.size());
  for (const Tensor& t : inputs) moved.push_back(t.is_symbolic() || t.device() == device ? t : t.to(device));
  return moved;
}

}  // namespace

// Note [Per-op cost]
// A tiny model's training step is a few hundred op calls on tensors of a few dozen elements, so
// what an op costs besides its kernel (meta vectors, outputs, the tape, attribute look-ups) is the
// step's cost: bench_fit's tiny_b32 measures it. The dispatch path therefore allocates only what
// it hands on, opens a DeviceScope only when the device changes, and reads attributes through
// inline look-ups by string_view.
std::vector<Tensor> call_op(const OpDef& op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  std::vector<TensorMeta> in_meta;
  in_meta.reserve(inputs.size());
  bool symbolic = false;
  const Tensor* first_real = nullptr;
  bool mixed = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    MF_CHECK(t.defined(), op.name, ": input ", i, " is an undefined tensor");
    in_meta.push_back({t.shape(), t.dtype(), t.device()});
    if (t.is_symbolic()) {
      symbolic = true;
    } else if (!first_real) {
      first_real = &t;
    } else if (t.device() != first_real->device()) {
      mixed = true;
    }
  }
  if (!symbolic && TraceWeightsScope::active())
    for (const Tensor& t : inputs) symbolic = symbolic || t.requires_grad();
  const Device* scoped = DeviceScope::current();
  if (!symbolic && first_real && !op.view) {
    Device target = scoped ? *scoped : first_real->device();
    if (!scoped && mixed) {
      // Without a scope, an accelerator wins over the host: a model's weights on cuda:0 meet a
      // batch on the host, and the batch moves, never the weights.
      for (const Tensor& t : inputs)
        if (!t.is_symbolic() && !t.device().is_cpu()) {
          target = t.device();
          break;
        }
    }
    if (mixed || target != first_real->device()) {
      std::vector<Tensor> moved = placed_inputs(op, inputs, target);
      return call_op(op, moved, attrs);
    }
  }
  const OpDef* outer = t_current_op;
  t_current_op = &op;
  std::vector<TensorMeta> out_meta;
  try {
    out_meta = op.infer(in_meta, attrs);
  } catch (...) {
    t_current_op = outer;
    throw;
  }
  t_current_op = outer;
  if (symbolic) return record_symbolic(op, inputs, attrs, std::move(out_meta));

  std::vector<Tensor> outputs;
  outputs.reserve(out_meta.size());
  if (op.view) {
    outputs.push_back(op.view(inputs[0], out_meta[0], attrs));
  } else {
    Device device = first_real ? first_real->device() : (out_meta.empty() ? Device() : out_meta[0].device);
    KernelFn kernel = op.kernels[static_cast<int>(device.type)];
    MF_CHECK(kernel != nullptr, "op ", op.name, " has no kernel for ", device_type_name(device.type),
             " (inputs on ", device.str(), ")");
    for (const auto& m : out_meta) outputs.push_back(empty(m.shape, {.dtype = m.dtype, .device = device}));
    // Temporaries a kernel makes (scratch tensors, constants) land on its own device; the scope is
    // opened only when the current device is another (the common case needs none: per-op cost).
    std::optional<DeviceScope> on;
    if (scoped ? *scoped != device : device != Device()) on.emplace(device);
    ExecContext ctx(device);
    kernel(ctx, inputs, outputs, attrs);
  }
  if (op.backward && GradMode::is_enabled()) {
    for (const auto& t : inputs) {
      if (t.requires_grad()) {
        autograd::record(op, inputs, outputs, attrs);
        break;
      }
    }
  }
  return outputs;
}

void run_inplace(const OpDef& op, const std::vector<Tensor>& operands, const Attrs& attrs) {
  MF_CHECK(!operands.empty() && operands[0].defined(), op.name, ": needs at least one defined operand");
  if (const auto& st = operands[0].impl()->storage; st && st->refill) [[unlikely]]
    MF_THROW(op.name, ": cannot write tensor ", shape_str(operands[0].shape()), ": it is a weight sharded between uses ",
             "(ZeRO stage 3), whose values live in the ranks' shards; load or set weights before the first step, ",
             "or under a stage below 3");
  const Device device = operands[0].device();
  KernelFn kernel = op.kernels[static_cast<int>(device.type)];
  MF_CHECK(kernel != nullptr, "op ", op.name, " has no kernel for ", device_type_name(device.type), " (operands on ",
           device.str(), ")");
  const Device* scoped = DeviceScope::current();
  std::optional<DeviceScope> on;
  if (scoped ? *scoped != device : device != Device()) on.emplace(device);
  ExecContext ctx(device);
  std::vector<Tensor> no_outputs;
  kernel(ctx, operands, no_outputs, attrs);
}

Tensor call_op1(const OpDef& op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  auto outs = call_op(op, inputs, attrs);
  return std::move(outs[0]);
}

// Typed handles (op_list.h) ---------------------------------------------------------------------

#define MF_DEFINE_OP_HANDLE(name)                 \
  const OpDef& ops::name() {                      \
    static const OpDef& def = get_op(#name);      \
    return def;                                   \
  }
MF_OPS(MF_DEFINE_OP_HANDLE)
#undef MF_DEFINE_OP_HANDLE

const std::vector<std::string>& ops::listed_names() {
#define MF_OP_NAME(name) #name,
  static const std::vector<std::string> names = {MF_OPS(MF_OP_NAME)};
#undef MF_OP_NAME
  return names;
}

}  // namespace meshflow
