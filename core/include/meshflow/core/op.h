// The op registry: one definition per op (shape/dtype inference, backward, kernels per device),
// read by eager execution, autograd and tracing alike. See Note [One op definition].
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow {

using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>>;

// A small ordered map of named attributes (axis, stride, epsilon, ...).
class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<std::string, AttrValue>> items) : items_(items) {}
  // Kernels read attributes on every call: the look-ups are inline and take the key as a view,
  // so a literal key costs no std::string (Note [Per-op cost] in op.cpp).
  bool has(std::string_view key) const { return find_(key) != nullptr; }
  int64_t i(std::string_view key) const {
    const AttrValue& v = get_(key);
    if (const int64_t* x = std::get_if<int64_t>(&v)) return *x;
    if (const bool* x = std::get_if<bool>(&v)) return *x;
    wrong_type_(key, "int");
  }
  double f(std::string_view key) const {
    const AttrValue& v = get_(key);
    if (const double* x = std::get_if<double>(&v)) return *x;
    if (const int64_t* x = std::get_if<int64_t>(&v)) return static_cast<double>(*x);
    wrong_type_(key, "float");
  }
  bool b(std::string_view key) const { return as_<bool>(key, "bool"); }
  const std::string& s(std::string_view key) const { return as_<std::string>(key, "string"); }
  const std::vector<int64_t>& ints(std::string_view key) const { return as_<std::vector<int64_t>>(key, "int list"); }
  Attrs& set(const std::string& key, AttrValue value);
  std::string str() const;  // "axis=1, keepdims=true"
  const std::vector<std::pair<std::string, AttrValue>>& items() const { return items_; }

 private:
  const AttrValue* find_(std::string_view key) const {
    for (const auto& [k, v] : items_)
      if (k == key) return &v;
    return nullptr;
  }
  const AttrValue& get_(std::string_view key) const {
    if (const AttrValue* v = find_(key)) return *v;
    missing_(key);
  }
  template <typename T>
  const T& as_(std::string_view key, const char* type) const {
    if (const T* x = std::get_if<T>(&get_(key))) return *x;
    wrong_type_(key, type);
  }
  [[noreturn]] void missing_(std::string_view key) const;
  [[noreturn]] void wrong_type_(std::string_view key, const char* type) const;
  std::vector<std::pair<std::string, AttrValue>> items_;
};

struct TensorMeta {
  Shape shape;
  DType dtype = DType::F32;
  Device device;
};

struct BackwardContext {
  const std::vector<Tensor>& inputs;   // as the forward saw them (detached)
  const std::vector<Tensor>& outputs;  // detached; empty unless the op sets save_outputs
  const Attrs& attrs;
  const std::vector<bool>& needs_input_grad;
};

// What a kernel runs on: the device, its stream (a cudaStream_t on cuda; null on the host) and
// scratch memory that lives until the kernel returns. Every kernel, CPU or CUDA, takes one, so a
// kernel never asks a global for its stream. See Note [Execution context].
class ExecContext {
 public:
  explicit ExecContext(Device device);
  ~ExecContext();
  ExecContext(const ExecContext&) = delete;
  ExecContext& operator=(const ExecContext&) = delete;

  Device device() const { return device_; }
  void* stream() const { return stream_; }
  // Scratch bytes on the context's device (aligned to 256), freed when the context ends: on cuda,
  // in stream order, so a kernel may leave work queued on them.
  void* workspace(size_t bytes) const;

 private:
  Device device_;
  void* stream_ = nullptr;
  mutable std::vector<std::shared_ptr<Storage>> scratch_;
};

// A device type that has streams registers how to find a device's current one (core: none).
using StreamFn = void* (*)(int device_index);
void register_stream_provider(DeviceType type, StreamFn fn);

using InferFn = std::vector<TensorMeta> (*)(const std::vector<TensorMeta>& inputs, const Attrs& attrs);
using KernelFn = void (*)(const ExecContext& ctx, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
                          const Attrs& attrs);
// Returns one gradient per input (undefined where none flows), written with other ops.
using BackwardFn = std::vector<Tensor> (*)(const BackwardContext& ctx, const std::vector<Tensor>& grad_outputs);
// For ops whose output aliases the input (reshape, permute, slice, expand): builds the view.
using ViewFn = Tensor (*)(const Tensor& input, const TensorMeta& out, const Attrs& attrs);

// Note [Sharding rules]
// How an op's outputs are laid out over a device mesh given its inputs' layouts. A layout says,
// per tensor dimension, which mesh axes split it (none: replicated), plus the mesh axes over which
// the tensor is a pending sum (partial: a row-parallel matmul's output before its all-reduce).
// The rule sits beside the op's shape inference; the sharded strategy (parallel/) propagates
// layouts with it and inserts the collectives it asks for. An op without a rule cannot be
// sharded, and asking for one fails naming the op (sharding_rule()): never a silent gather.
struct DimLayout {
  std::vector<std::string> axes;  // mesh axes splitting this dimension, major first; empty: replicated
};
struct Layout {
  std::vector<DimLayout> dims;             // one per tensor dimension
  std::vector<std::string> partial_axes;   // mesh axes over which the values are partial sums
};
// What a rule decides: the layouts the inputs must have (the partitioner converts them when they
// differ from what they are) and the layouts of the outputs.
struct ShardingDecision {
  std::vector<Layout> inputs;
  std::vector<Layout> outputs;
};
using ShardingRuleFn = ShardingDecision (*)(const std::vector<TensorMeta>& inputs, const std::vector<Layout>& layouts,
                                            const Attrs& attrs);

struct OpDef {
  std::string name;
  InferFn infer = nullptr;
  BackwardFn backward = nullptr;  // null: not differentiable (comparisons, argmax)
  ViewFn view = nullptr;
  KernelFn kernels[kNumDeviceTypes] = {};
  ShardingRuleFn sharding = nullptr;  // null: the op cannot be sharded yet (Note [Sharding rules])
  bool save_outputs = false;      // backward reads the outputs (exp, sigmoid, softmax)
};

// The op's sharding rule; throws "op X has no sharding rule" when it has none.
ShardingRuleFn sharding_rule(const OpDef& op);

// Ops are defined and kernels registered from static initializers next to their code.
OpDef& define_op(const std::string& name);         // creates or returns the entry
const OpDef& get_op(const std::string& name);      // throws naming the op if unknown
void register_kernel(const std::string& op, DeviceType device, KernelFn kernel);
std::vector<std::string> registered_ops();
// Names that have kernels but no definition: a misspelt register_kernel (tests check it is empty).
std::vector<std::string> kernels_without_definition();

// Runs an op: infers shapes (errors name the op and shapes), records symbolic graph nodes when an
// input is symbolic, else allocates outputs and runs the device's kernel, then records autograd.
std::vector<Tensor> call_op(const OpDef& op, const std::vector<Tensor>& inputs, const Attrs& attrs = {});
Tensor call_op1(const OpDef& op, const std::vector<Tensor>& inputs, const Attrs& attrs = {});

// Runs an in-place op (optimizer updates, Tensor::copy_, bucket packing): the kernel of the first
// operand's device writes into the operands themselves; no allocation, no tape, no tracing. The
// caller has checked shapes, dtypes and devices (its errors name the user-facing function).
void run_inplace(const OpDef& op, const std::vector<Tensor>& operands, const Attrs& attrs = {});

// The name of the op whose infer function is running (shared infer functions name their op).
const char* current_op_name();

// Helpers for infer functions.
std::string metas_str(const std::vector<TensorMeta>& metas);  // "f32[2, 3], f32[3]"

struct OpRegistrar {
  explicit OpRegistrar(void (*fn)()) { fn(); }
};

}  // namespace meshflow

#define MF_CONCAT_INNER(a, b) a##b
#define MF_CONCAT(a, b) MF_CONCAT_INNER(a, b)
// MF_STATIC_INIT { ... } runs the block once at load time (op definitions, kernel registration).
#define MF_STATIC_INIT                                                              \
  static void MF_CONCAT(mf_static_init_, __LINE__)();                              \
  static ::meshflow::OpRegistrar MF_CONCAT(mf_static_reg_, __LINE__)(              \
      &MF_CONCAT(mf_static_init_, __LINE__));                                      \
  static void MF_CONCAT(mf_static_init_, __LINE__)()
