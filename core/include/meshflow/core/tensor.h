// Tensor: a shape, strides and dtype over reference-counted storage on a device, with
// autograd metadata; a tensor with no storage is symbolic (shape and dtype only, for tracing).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshflow/core/allocator.h"
#include "meshflow/core/device.h"
#include "meshflow/core/dtype.h"
#include "meshflow/core/shape.h"

namespace meshflow {

class Tensor;
struct Node;
struct SymValue;

// Raw memory on one device, freed through the allocator that made it.
struct Storage {
  Storage(size_t bytes, Device device);
  // Memory owned elsewhere (borrow_host): never freed here.
  Storage(void* borrowed, size_t n_bytes, Device dev) : data(borrowed), bytes(n_bytes), device(dev) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  Allocator* allocator = nullptr;

  // Weights sharded between uses (ZeRO-3, Note [ZeRO] in parallel/src/sharded.cpp): release()
  // gives the bytes back but keeps the Storage, so tensors and autograd's saved copies still point
  // at it; the next read or write through Tensor::raw_data() calls `refill`, which must restore()
  // the bytes and fill them. Writes through in-place ops are refused while `refill` is set (the
  // owner's shards hold the values; a write here would be lost at the next release).
  void release();
  void restore();
  bool is_released() const { return data == nullptr && bytes > 0; }
  std::function<void(Storage&)> refill;
};

using GradHook = std::function<void(const Tensor& grad)>;

struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;            // the node that made this tensor; null for leaves
  int output_nr = 0;                        // which output of grad_fn this is
  std::shared_ptr<Tensor> grad;             // accumulated gradient of a leaf
  std::weak_ptr<Node> grad_accumulator;     // a leaf's accumulator, shared by the nodes using it
  std::vector<GradHook> grad_ready_hooks;   // run once the leaf's gradient is complete
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;  // null: symbolic
  int64_t offset = 0;                // in elements
  Shape shape;
  Strides strides;
  DType dtype = DType::F32;
  Device device;
  std::unique_ptr<AutogradMeta> autograd;
  std::shared_ptr<SymValue> sym;     // where a symbolic tensor comes from
  std::string name;
};

struct TensorOptions {
  DType dtype = DType::F32;
  std::optional<Device> device = std::nullopt;  // unset: the current DeviceScope's device, else cpu
  bool requires_grad = false;
  Device resolved_device() const { return device ? *device : current_device(); }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const;
  const Strides& strides() const;
  int64_t offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  bool is_symbolic() const;
  const std::string& name() const;
  Tensor& set_name(std::string name);

  // Pointer to the first element (storage + offset); throws on symbolic tensors.
  void* raw_data() const;
  template <typename T>
  T* data() const {
    check_dtype_(dtype_of<T>::value, "data<T>()");
    return static_cast<T*>(raw_data());
  }

  // Element access on host tensors (any strides), converting through double.
  double item() const;
  double at(std::initializer_list<int64_t> index) const;
  double at(const std::vector<int64_t>& index) const;
  void set(std::initializer_list<int64_t> index, double value);
  template <typename T>
  std::vector<T> to_vector() const;  // T matches the dtype; elements in row-major order

  // Views share storage; each is an op, so it is differentiable and traceable.
  Tensor reshape(const Shape& shape) const;      // a view when the strides allow, else a copy
  Tensor permute(const std::vector<int64_t>& axes) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor t() const;                              // 2-D transpose
  Tensor slice(int64_t axis, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor expand(const Shape& shape) const;       // broadcast to shape, stride 0 on new dims
  Tensor squeeze(int64_t axis) const;
  Tensor unsqueeze(int64_t axis) const;
  Tensor flatten(int64_t start_axis = 0, int64_t end_axis = -1) const;
  Tensor contiguous() const;                     // itself when already contiguous
  Tensor clone() const;
  Tensor to(Device device) const;                // explicit copy across devices
  Tensor to(DType dtype) const;                  // cast
  // Moves a leaf's storage to `device` in place, keeping its identity (layers and optimizers that
  // hold it see the move), like module.to() in PyTorch; its gradient moves too. Not recorded.
  Tensor& to_(Device device);

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool requires_grad = true);
  bool is_leaf() const;
  Tensor grad() const;                           // undefined until a backward reaches this leaf
  void set_grad(const Tensor& grad);
  void zero_grad();
  // Backward from a scalar (gradient may be omitted) or with a gradient of the same shape.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;                         // same storage, no history
  std::shared_ptr<Node> grad_fn() const;
  // Called with the leaf's gradient as soon as it is complete during a backward pass.
  void on_grad_ready(GradHook hook);

  // In place, outside autograd (optimizers, loading weights): copies src (broadcast) into this.
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double value);

  std::string str() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  void check_dtype_(DType expected, const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Factories.
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor scalar_tensor(double value, TensorOptions options = {});
Tensor arange(int64_t n, TensorOptions options = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// A tensor holding a copy of the given values (row-major), converted to options.dtype.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions options = {});
Tensor from_vector(const std::vector<float>& values, const Shape& shape, TensorOptions options = {});
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape, TensorOptions options = {.dtype = DType::I64});
// Wraps or copies raw host memory of the given dtype.
Tensor from_blob_copy(const void* data, const Shape& shape, DType dtype, Device device = Device());
// A contiguous cpu:0 tensor over host memory owned by the caller, who keeps it alive (and unchanged
// by others) while the tensor is in use; nothing is copied or freed. For library code that hands
// foreign buffers (an MPI reduction's) to ops.
Tensor borrow_host(void* data, const Shape& shape, DType dtype);
// A view of an existing tensor's storage with new geometry (no checks beyond bounds).
Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset);

}  // namespace meshflow
