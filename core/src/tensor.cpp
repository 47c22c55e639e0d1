// Tensor: storage, geometry, element access, factories and printing.
#include "meshflow/core/op_list.h"
#include "meshflow/core/tensor.h"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "internal/copy.h"
#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  allocator = &allocator_for(dev);
  data = allocator->allocate(nbytes);
}

Storage::~Storage() {
  if (allocator && data) allocator->deallocate(data, bytes);
}

void Storage::release() {
  MF_CHECK(allocator != nullptr, "Storage::release: the memory is borrowed, not owned");
  if (data) allocator->deallocate(data, bytes);
  data = nullptr;
}

void Storage::restore() {
  MF_CHECK(allocator != nullptr, "Storage::restore: the memory is borrowed, not owned");
  if (!data) data = allocator->allocate(bytes);
}

namespace {
// The message is built out of line so that checked() inlines into every accessor as one test.
[[noreturn, gnu::noinline, gnu::cold]] void throw_undefined(const char* what) {
  MF_THROW(what, ": the tensor is undefined (default-constructed)");
}
// A released storage (Storage::release) asks its owner for the bytes back.
[[gnu::noinline, gnu::cold]] void refill(Storage& s, const Shape& shape) {
  MF_CHECK(s.refill != nullptr, "raw_data(): tensor ", shape_str(shape), "'s memory was released and nothing can ",
           "bring it back");
  s.refill(s);
  MF_CHECK(s.data != nullptr, "raw_data(): tensor ", shape_str(shape), "'s memory was released and its owner did ",
           "not bring it back");
}
inline const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl, const char* what) {
  if (impl == nullptr) [[unlikely]] throw_undefined(what);
  return *impl;
}
}  // namespace

const Shape& Tensor::shape() const { return checked(impl_, "shape()").shape; }
const Strides& Tensor::strides() const { return checked(impl_, "strides()").strides; }
int64_t Tensor::offset() const { return checked(impl_, "offset()").offset; }
DType Tensor::dtype() const { return checked(impl_, "dtype()").dtype; }
Device Tensor::device() const { return checked(impl_, "device()").device; }
bool Tensor::is_symbolic() const { return checked(impl_, "is_symbolic()").storage == nullptr; }
const std::string& Tensor::name() const { return checked(impl_, "name()").name; }
Tensor& Tensor::set_name(std::string n) {
  checked(impl_, "set_name()");
  impl_->name = std::move(n);
  return *this;
}

int64_t Tensor::size(int64_t axis) const {
  int64_t a = normalize_axis(axis, dim(), "size()");
  return shape()[a];
}

int64_t Tensor::numel() const { return shape_numel(shape()); }

bool Tensor::is_contiguous() const {
  const auto& s = shape();
  const auto& st = strides();
  int64_t expected = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    if (s[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= s[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const auto& impl = checked(impl_, "raw_data()");
  MF_CHECK(impl.storage != nullptr, "raw_data(): tensor ", shape_str(impl.shape),
           " is symbolic (it has a shape but no data; it was made for tracing)");
  if (impl.storage->data == nullptr && impl.storage->bytes > 0) [[unlikely]] refill(*impl.storage, impl.shape);
  return static_cast<char*>(impl.storage->data) + impl.offset * static_cast<int64_t>(dtype_size(impl.dtype));
}

void Tensor::check_dtype_(DType expected, const char* what) const {
  MF_CHECK(dtype() == expected, what, ": the tensor holds ", dtype_name(dtype()), ", not ", dtype_name(expected));
}

namespace {
int64_t element_offset(const Tensor& t, const std::vector<int64_t>& index, const char* what) {
  MF_CHECK(static_cast<int64_t>(index.size()) == t.dim(), what, ": ", index.size(), " indices for a tensor of rank ",
           t.dim(), " ", shape_str(t.shape()));
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    int64_t n = t.shape()[i];
    int64_t ix = index[i] < 0 ? index[i] + n : index[i];
    MF_CHECK(ix >= 0 && ix < n, what, ": index ", index[i], " is out of range for dimension ", i, " of size ", n,
             " (shape ", shape_str(t.shape()), ")");
    off += ix * t.strides()[i];
  }
  return off;
}

Tensor host_view(const Tensor& t) { return t.device().is_cpu() ? t : t.to(cpu()); }

// A contiguous host copy (or t itself): the strided copy runs where t lives, whatever the current
// DeviceScope says, so host-side readers never get a device pointer.
Tensor host_contiguous(const Tensor& t) {
  DeviceScope here(t.device());
  Tensor c = t.contiguous();
  return c.device().is_cpu() ? c : c.to(cpu());
}
}  // namespace

double Tensor::at(const std::vector<int64_t>& index) const {
  Tensor h = host_view(*this);
  int64_t off = element_offset(h, index, "at()");
  const char* p = static_cast<const char*>(h.raw_data()) + off * static_cast<int64_t>(dtype_size(h.dtype()));
  return internal::load_as_double(p, h.dtype());
}

double Tensor::at(std::initializer_list<int64_t> index) const { return at(std::vector<int64_t>(index)); }

void Tensor::set(std::initializer_list<int64_t> index, double value) {
  MF_CHECK(device().is_cpu(), "set(): element writes need a host tensor, this one is on ", device().str());
  int64_t off = element_offset(*this, std::vector<int64_t>(index), "set()");
  char* p = static_cast<char*>(raw_data()) + off * static_cast<int64_t>(dtype_size(dtype()));
  internal::store_from_double(p, dtype(), value);
}

double Tensor::item() const {
  MF_CHECK(numel() == 1, "item(): expected a tensor with one element, got shape ", shape_str(shape()));
  return host_contiguous(*this).at(std::vector<int64_t>(static_cast<size_t>(dim()), 0));
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  check_dtype_(dtype_of<T>::value, "to_vector<T>()");
  Tensor c = host_contiguous(*this);
  const T* p = static_cast<const T*>(c.raw_data());
  return std::vector<T>(p, p + c.numel());
}
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<bf16> Tensor::to_vector<bf16>() const;
template std::vector<f16> Tensor::to_vector<f16>() const;

Tensor Tensor::reshape(const Shape& s) const { return meshflow::reshape(*this, s); }
Tensor Tensor::permute(const std::vector<int64_t>& axes) const { return meshflow::permute(*this, axes); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return meshflow::transpose(*this, a, b); }
Tensor Tensor::t() const {
  MF_CHECK(dim() == 2, "t(): expects a 2-D tensor, got shape ", shape_str(shape()), "; use transpose(a, b)");
  return transpose(0, 1);
}
Tensor Tensor::slice(int64_t axis, int64_t start, int64_t end, int64_t step) const {
  return meshflow::slice(*this, axis, start, end, step);
}
Tensor Tensor::expand(const Shape& s) const { return meshflow::expand(*this, s); }
Tensor Tensor::squeeze(int64_t axis) const { return meshflow::squeeze(*this, axis); }
Tensor Tensor::unsqueeze(int64_t axis) const { return meshflow::unsqueeze(*this, axis); }
Tensor Tensor::flatten(int64_t start_axis, int64_t end_axis) const {
  if (dim() == 0) return reshape({1});
  int64_t a = normalize_axis(start_axis, dim(), "flatten");
  int64_t b = normalize_axis(end_axis, dim(), "flatten");
  MF_CHECK(a <= b, "flatten: start axis ", start_axis, " comes after end axis ", end_axis);
  Shape s(shape().begin(), shape().begin() + a);
  int64_t n = 1;
  bool unknown = false;
  for (int64_t i = a; i <= b; ++i) {
    if (shape()[i] < 0) unknown = true;
    n *= shape()[i];
  }
  s.push_back(unknown ? -1 : n);
  s.insert(s.end(), shape().begin() + b + 1, shape().end());
  return reshape(s);
}
Tensor Tensor::contiguous() const { return is_contiguous() ? *this : meshflow::contiguous(*this); }
Tensor Tensor::clone() const { return meshflow::contiguous(*this); }
Tensor Tensor::to(DType t) const { return t == dtype() ? *this : cast(*this, t); }

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  MF_CHECK(!is_symbolic(), "to(", d.str(), "): a symbolic tensor has no data to copy");
  Tensor src;
  {
    NoGradGuard no_grad;           // the copy below is recorded as one to_device node
    DeviceScope here(device());    // the strided copy runs where the source lives
    src = contiguous();
  }
  Tensor out = empty(shape(), {.dtype = dtype(), .device = d});
  copy_bytes(out.raw_data(), d, src.raw_data(), src.device(), static_cast<size_t>(numel()) * dtype_size(dtype()));
  // The copy is differentiable: the gradient goes back to the source device.
  if (GradMode::is_enabled() && requires_grad()) {
    std::vector<Tensor> outs{out};
    autograd::record(ops::to_device(), {*this}, outs, Attrs{{"device", d.str()}, {"src_device", device().str()}});
    return outs[0];
  }
  return out;
}

Tensor& Tensor::to_(Device d) {
  const auto& impl = checked(impl_, "to_()");
  MF_CHECK(!is_symbolic(), "to_(", d.str(), "): a symbolic tensor has no data to move");
  MF_CHECK(is_leaf(), "to_(", d.str(), "): only a leaf (a weight, a buffer) moves in place; use to() for results");
  if (d == impl.device) return *this;
  Tensor moved;
  {
    NoGradGuard no_grad;
    moved = detach().to(d);
  }
  impl_->storage = moved.impl()->storage;
  impl_->offset = 0;
  impl_->strides = contiguous_strides(impl_->shape);
  impl_->device = d;
  if (impl_->autograd && impl_->autograd->grad) *impl_->autograd->grad = impl_->autograd->grad->to(d);
  return *this;
}

bool Tensor::requires_grad() const {
  const auto& impl = checked(impl_, "requires_grad()");
  return impl.autograd && impl.autograd->requires_grad;
}

Tensor& Tensor::set_requires_grad(bool r) {
  checked(impl_, "set_requires_grad()");
  if (r) {
    MF_CHECK(is_floating(dtype()), "set_requires_grad: only floating tensors can require gradients, this one is ",
             dtype_name(dtype()));
    MF_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be marked; use detach() for a new leaf");
  }
  if (!impl_->autograd) {
    if (!r) return *this;
    impl_->autograd = std::make_unique<AutogradMeta>();
  }
  impl_->autograd->requires_grad = r;
  return *this;
}

bool Tensor::is_leaf() const {
  const auto& impl = checked(impl_, "is_leaf()");
  return !impl.autograd || !impl.autograd->grad_fn;
}

std::shared_ptr<Node> Tensor::grad_fn() const {
  const auto& impl = checked(impl_, "grad_fn()");
  return impl.autograd ? impl.autograd->grad_fn : nullptr;
}

Tensor Tensor::grad() const {
  const auto& impl = checked(impl_, "grad()");
  if (!impl.autograd || !impl.autograd->grad) return Tensor();
  return *impl.autograd->grad;
}

void Tensor::set_grad(const Tensor& g) {
  checked(impl_, "set_grad()");
  if (g.defined())
    MF_CHECK(g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()), " differs from the tensor's ",
             shape_str(shape()));
  if (!impl_->autograd) impl_->autograd = std::make_unique<AutogradMeta>();
  impl_->autograd->grad = g.defined() ? std::make_shared<Tensor>(g) : nullptr;
}

void Tensor::zero_grad() {
  if (impl_ && impl_->autograd) impl_->autograd->grad.reset();
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  meshflow::backward({*this}, {gradient}, retain_graph);
}

Tensor Tensor::detach() const {
  const auto& impl = checked(impl_, "detach()");
  auto d = std::make_shared<TensorImpl>();
  d->storage = impl.storage;
  d->offset = impl.offset;
  d->shape = impl.shape;
  d->strides = impl.strides;
  d->dtype = impl.dtype;
  d->device = impl.device;
  d->sym = impl.sym;
  d->name = impl.name;
  return Tensor(std::move(d));
}

void Tensor::on_grad_ready(GradHook hook) {
  checked(impl_, "on_grad_ready()");
  MF_CHECK(requires_grad() && is_leaf(), "on_grad_ready: the hook needs a leaf tensor that requires grad");
  impl_->autograd->grad_ready_hooks.push_back(std::move(hook));
}

Tensor& Tensor::copy_(const Tensor& src) {
  MF_CHECK(defined() && src.defined(), "copy_: both tensors must be defined");
  MF_CHECK(!is_symbolic() && !src.is_symbolic(), "copy_: cannot copy into or from a symbolic tensor");
  MF_CHECK(broadcast_shapes(shape(), src.shape(), "copy_") == shape(), "copy_: source shape ", shape_str(src.shape()),
           " does not broadcast to the destination shape ", shape_str(shape()));
  Tensor s = src;
  if (s.device() != device()) s = s.to(device());
  static const OpDef& op = ops::assign();
  run_inplace(op, {*this, s});
  return *this;
}

Tensor& Tensor::fill_(double value) {
  Tensor v = full({}, value, {.dtype = dtype(), .device = cpu()});
  return copy_(v);
}

// Printing -------------------------------------------------------------------------------------

namespace {
void print_rec(std::ostream& os, const Tensor& t, std::vector<int64_t>& idx, int64_t d, int indent) {
  const int64_t n = t.shape()[d];
  const int64_t edge = 3;
  const bool cut = n > 2 * edge + 1;
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (cut && i == edge) {
      os << (d + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge;
    }
    idx[d] = i;
    if (d + 1 == t.dim()) {
      double v = t.at(idx);
      if (is_floating(t.dtype())) os << std::fixed << std::setprecision(4) << v;
      else if (t.dtype() == DType::Bool) os << (v != 0 ? "true" : "false");
      else os << static_cast<int64_t>(v);
    } else {
      print_rec(os, t, idx, d + 1, indent + 1);
    }
    if (i + 1 < n) os << (d + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}
}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(" << dtype_name(dtype()) << shape_str(shape()) << ", " << device().str();
  if (requires_grad()) os << ", requires_grad";
  if (is_symbolic()) {
    os << ", symbolic)";
    return os.str();
  }
  os << ")\n";
  Tensor h = host_view(*this);
  if (h.dim() == 0) {
    os << h.item();
  } else if (h.numel() == 0) {
    os << "[]";
  } else {
    std::vector<int64_t> idx(static_cast<size_t>(h.dim()), 0);
    print_rec(os, h, idx, 0, 0);
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

// Factories ------------------------------------------------------------------------------------

Tensor empty(const Shape& shape, TensorOptions o) {
  for (int64_t d : shape)
    MF_CHECK(d >= 0, "empty: shape ", shape_str(shape), " has a negative or unknown dimension");
  auto impl = std::make_shared<TensorImpl>();
  int64_t n = shape_numel(shape);
  const Device device = o.resolved_device();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(n) * dtype_size(o.dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = o.dtype;
  impl->device = device;
  Tensor t(std::move(impl));
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions o) {
  Tensor t = empty(shape, {.dtype = o.dtype, .device = cpu()});
  int64_t n = t.numel();
  char* p = static_cast<char*>(t.raw_data());
  size_t es = dtype_size(o.dtype);
  if (n > 0) {
    internal::store_from_double(p, o.dtype, value);
    for (int64_t i = 1; i < n; ++i) std::memcpy(p + i * es, p, es);
  }
  const Device device = o.resolved_device();
  if (device != Device()) t = t.to(device);
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions o) {
  const Device device = o.resolved_device();
  Tensor t = empty(shape, {.dtype = o.dtype, .device = device});
  if (device.is_cpu()) std::memset(t.raw_data(), 0, static_cast<size_t>(t.numel()) * dtype_size(o.dtype));
  else t.fill_(0.0);
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor ones(const Shape& shape, TensorOptions o) { return full(shape, 1.0, o); }
Tensor scalar_tensor(double value, TensorOptions o) { return full({}, value, o); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }

Tensor arange(int64_t n, TensorOptions o) {
  MF_CHECK(n >= 0, "arange: n must be non-negative, got ", n);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return from_vector(v, {n}, o);
}

namespace {
template <typename T>
Tensor from_typed(const std::vector<T>& values, const Shape& shape, TensorOptions o, const char* what) {
  int64_t n = shape_numel(shape);
  MF_CHECK(n >= 0 && static_cast<size_t>(n) == values.size(), what, ": ", values.size(),
           " values do not fill shape ", shape_str(shape), " (", n, " elements)");
  Tensor src = from_blob_copy(values.data(), shape, dtype_of<T>::value);
  Tensor t = src.to(o.dtype).to(o.resolved_device());
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}
}  // namespace

Tensor from_vector(const std::vector<double>& v, const Shape& s, TensorOptions o) { return from_typed(v, s, o, "from_vector"); }
Tensor from_vector(const std::vector<float>& v, const Shape& s, TensorOptions o) { return from_typed(v, s, o, "from_vector"); }
Tensor from_vector(const std::vector<int64_t>& v, const Shape& s, TensorOptions o) { return from_typed(v, s, o, "from_vector"); }

Tensor borrow_host(void* data, const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    MF_CHECK(d >= 0, "borrow_host: shape ", shape_str(shape), " has a negative or unknown dimension");
  const int64_t n = shape_numel(shape);
  MF_CHECK(data != nullptr || n == 0, "borrow_host: null data for ", n, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(data, static_cast<size_t>(n) * dtype_size(dtype), cpu());
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  impl->device = cpu();
  return Tensor(std::move(impl));
}

Tensor from_blob_copy(const void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, {.dtype = dtype, .device = Device()});
  size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(dtype);
  if (bytes) std::memcpy(t.raw_data(), data, bytes);
  return device == Device() ? t : t.to(device);
}

Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = base.dtype();
  impl->device = base.device();
  if (impl->storage && shape_numel(shape) > 0) {
    int64_t lo = offset, hi = offset;
    for (size_t i = 0; i < shape.size(); ++i) {
      int64_t span = (shape[i] - 1) * strides[i];
      if (span < 0) lo += span; else hi += span;
    }
    int64_t cap = static_cast<int64_t>(impl->storage->bytes / dtype_size(base.dtype()));
    MF_CHECK(lo >= 0 && hi < cap, "view ", shape_str(shape), " at offset ", offset,
             " reaches outside its storage of ", cap, " elements");
  }
  return Tensor(std::move(impl));
}

}  // namespace meshflow
