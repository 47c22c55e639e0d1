// Layer: building, calling (eager or symbolic), weights, tracking of sub-layers, names, registry.
#include "meshflow/models/layer.h"

#include <cxxabi.h>

#include <cctype>
#include <map>
#include <mutex>

#include "meshflow/core/autograd.h"
#include "meshflow/core/error.h"
#include "meshflow/core/init.h"
#include "meshflow/core/trace.h"
#include "meshflow/models/masking.h"

namespace meshflow {

// Variable ----------------------------------------------------------------------------------------

Variable::Variable(Tensor value, std::string name, bool trainable, std::shared_ptr<Regularizer> regularizer)
    : Tensor(value.detach()), info_(std::make_shared<Info>()) {
  info_->trainable = trainable;
  info_->regularizer = std::move(regularizer);
  set_name(std::move(name));
  if (trainable) set_requires_grad(true);
}

void Variable::set_slice_of(const Shape& whole_shape, int64_t offset) {
  MF_CHECK(info_, "Variable::set_slice_of: the variable is empty");
  MF_CHECK(dim() == 1 && offset >= 0 && offset + numel() <= shape_numel(whole_shape), "Variable::set_slice_of: '",
           name(), "' (", shape_str(shape()), ") cannot be elements [", offset, ", ", offset + numel(),
           ") of a weight of shape ", shape_str(whole_shape));
  info_->whole_shape = whole_shape;
  info_->slice_offset = offset;
}

const Shape& Variable::whole_shape() const {
  MF_CHECK(is_slice() || is_part(), "Variable::whole_shape: '", name(), "' is not a slice or part of another weight");
  return info_->whole_shape;
}

void Variable::set_part_of(const Shape& whole_shape, std::function<Tensor(const Tensor&)> take,
                           std::function<Tensor(const Tensor&)> gather) {
  MF_CHECK(info_, "Variable::set_part_of: the variable is empty");
  MF_CHECK(take && gather, "Variable::set_part_of: '", name(), "' needs both a take and a gather function");
  info_->whole_shape = whole_shape;
  info_->take_part = std::move(take);
  info_->gather_part = std::move(gather);
}

void Variable::set_layout(const Layout& layout) {
  MF_CHECK(info_, "Variable::set_layout: the variable is empty");
  MF_CHECK(layout.dims.size() == shape().size(), "Variable::set_layout: '", name(), "' has shape ", shape_str(shape()),
           " but the layout has ", layout.dims.size(), " dimensions");
  info_->layout = layout;
}

const std::optional<Layout>& Variable::layout() const {
  static const std::optional<Layout> none;
  return info_ ? info_->layout : none;
}

Tensor Variable::take_part(const Tensor& whole) const {
  MF_CHECK(is_part(), "Variable::take_part: '", name(), "' is not a part of another weight");
  MF_CHECK(whole.shape() == info_->whole_shape, "Variable::take_part: '", name(), "' is a part of a ",
           shape_str(info_->whole_shape), " weight, given ", shape_str(whole.shape()));
  return info_->take_part(whole);
}

Tensor Variable::gather_part(const Tensor& part) const {
  MF_CHECK(is_part(), "Variable::gather_part: '", name(), "' is not a part of another weight");
  return info_->gather_part(part);
}

bool Variable::trainable() const { return info_ && info_->trainable; }
void Variable::set_trainable(bool t) {
  MF_CHECK(info_, "Variable::set_trainable: the variable is empty");
  info_->trainable = t;
  set_requires_grad(t);
}
const std::shared_ptr<Regularizer>& Variable::regularizer() const {
  static const std::shared_ptr<Regularizer> none;
  return info_ ? info_->regularizer : none;
}
void Variable::assign(const Tensor& value) {
  MF_CHECK(value.shape() == shape(), "Variable '", name(), "': cannot assign a value of shape ",
           shape_str(value.shape()), " to a variable of shape ", shape_str(shape()));
  copy_(value);
}

// Names and registry --------------------------------------------------------------------------------

namespace {
std::mutex g_names_mu;
std::map<std::string, int>& name_counters() {
  static std::map<std::string, int> m;
  return m;
}
std::map<std::string, LayerFactory>& layer_registry() {
  static std::map<std::string, LayerFactory> r;
  return r;
}
[[gnu::tls_model("initial-exec")]] thread_local bool t_training = false;  // Note [Hot thread-locals] (core/src/op.cpp)
// The layers whose call() is running on this thread: a layer called inside another's call()
// becomes its sub-layer.
thread_local std::vector<Layer*> t_call_stack;

struct CallFrame {
  explicit CallFrame(Layer* l) { t_call_stack.push_back(l); }
  ~CallFrame() { t_call_stack.pop_back(); }
};

std::shared_ptr<Layer> non_owning(Layer* l) { return std::shared_ptr<Layer>(std::shared_ptr<Layer>(), l); }
}  // namespace

std::string to_snake_case(const std::string& n) {
  // Keras: "(.)([A-Z][a-z]+)" -> "\1_\2", then "([a-z])([A-Z])" -> "\1_\2", lower-cased.
  std::string a;
  for (size_t i = 0; i < n.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(n[i])) && i + 1 < n.size() &&
        std::islower(static_cast<unsigned char>(n[i + 1])))
      a += '_';
    a += n[i];
  }
  std::string b;
  for (size_t i = 0; i < a.size(); ++i) {
    if (i > 0 && std::islower(static_cast<unsigned char>(a[i - 1])) && std::isupper(static_cast<unsigned char>(a[i])))
      b += '_';
    b += static_cast<char>(std::tolower(static_cast<unsigned char>(a[i])));
  }
  // The first rule can put '_' after an existing '_' or at the start.
  std::string c;
  for (char ch : b)
    if (!(ch == '_' && (c.empty() || c.back() == '_'))) c += ch;
  return c;
}

std::string unique_layer_name(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(g_names_mu);
  int n = name_counters()[prefix]++;
  return n == 0 ? prefix : prefix + "_" + std::to_string(n);
}

void reset_layer_names() {
  std::lock_guard<std::mutex> lock(g_names_mu);
  name_counters().clear();
}

void register_layer(const std::string& class_name, LayerFactory factory) {
  std::lock_guard<std::mutex> lock(g_names_mu);
  layer_registry()[class_name] = std::move(factory);
}

bool layer_registered(const std::string& class_name) {
  std::lock_guard<std::mutex> lock(g_names_mu);
  return layer_registry().count(class_name) > 0;
}

std::shared_ptr<Layer> layer_from_config(const std::string& class_name, const Json& config) {
  LayerFactory f;
  {
    std::lock_guard<std::mutex> lock(g_names_mu);
    auto it = layer_registry().find(class_name);
    if (it == layer_registry().end()) {
      std::string known;
      for (const auto& [k, v] : layer_registry()) known += (known.empty() ? "" : ", ") + k;
      MF_THROW("unknown layer class '", class_name, "' in the model config; register custom layers with ",
               "MF_REGISTER_LAYER before loading (known: ", known, ")");
    }
    f = it->second;
  }
  auto layer = f(config);
  // Note [Layer placement]: a saved placement comes back unless load_model was given a device.
  if (const Device* d = detail::LoadDevice::current()) {
    layer->set_device(*d);
  } else if (config.is_object() && config.contains("device")) {
    layer->set_device(Device(config["device"].get<std::string>()));
  }
  return layer;
}

namespace detail {
namespace {
[[gnu::tls_model("initial-exec")]] thread_local const Device* t_load_device = nullptr;
}
LoadDevice::LoadDevice(std::optional<Device> device) : device_(device.value_or(Device())), outer_(t_load_device) {
  if (device) t_load_device = &device_;
}
LoadDevice::~LoadDevice() { t_load_device = outer_; }
const Device* LoadDevice::current() { return t_load_device; }
}  // namespace detail

// Layer -------------------------------------------------------------------------------------------

Layer::Layer(LayerOptions options, std::string class_name)
    : dtype_(options.dtype), class_name_(std::move(class_name)), trainable_(options.trainable) {
  if (!options.name.empty()) name_ = options.name;
  else if (!class_name_.empty()) name_ = unique_layer_name(to_snake_case(class_name_));
}

std::string Layer::class_name() const {
  if (!class_name_.empty()) return class_name_;
  int status = 0;
  const char* mangled = typeid(*this).name();
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string full = status == 0 && d ? d : mangled;
  std::free(d);
  auto pos = full.rfind("::");
  return pos == std::string::npos ? full : full.substr(pos + 2);
}

const std::string& Layer::name() const {
  if (name_.empty()) name_ = unique_layer_name(to_snake_case(class_name()));
  return name_;
}

void Layer::build(const Shape&) {}
void Layer::build(const std::vector<Shape>& shapes) {
  if (shapes.size() == 1) build(shapes[0]);
}

Tensor Layer::call(const Tensor&) {
  MF_THROW("layer '", name(), "' (", class_name(), ") implements no call(): override call(const Tensor&) or ",
           "call(const Tensors&)");
}

Tensors Layer::call(const Tensors& inputs) {
  MF_CHECK(inputs.size() == 1, "layer '", name(), "' (", class_name(), ") takes one input but got ", inputs.size(),
           "; override call(const Tensors&) for several inputs");
  return Tensors(call(inputs[0]));
}

void Layer::maybe_build(const Tensors& inputs) {
  if (built_) return;
  std::vector<Shape> shapes;
  for (const auto& t : inputs) shapes.push_back(t.shape());
  NameScope scope(name());
  build(shapes);
  built_ = true;
}

Tensor Layer::operator()(const Tensor& x) {
  Tensors out = (*this)(Tensors(x));
  MF_CHECK(out.size() == 1, "layer '", name(), "' returned ", out.size(), " outputs; call it with Tensors to get them all");
  return out[0];
}

Tensors Layer::operator()(const Tensors& inputs) {
  MF_CHECK(!inputs.empty(), "layer '", name(), "' was called with no inputs");
  bool symbolic = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    MF_CHECK(inputs[i].defined(), "layer '", name(), "': input ", i, " is an undefined tensor");
    symbolic = symbolic || inputs[i].is_symbolic();
  }
  if (!t_call_stack.empty() && t_call_stack.back() != this) {
    Layer* parent = t_call_stack.back();
    auto self = weak_from_this().lock();
    parent->track_layer(self ? self : non_owning(this));
  }
  // Note [Layer placement]: the scope of the first call places the layer for good.
  if (!device_ && !built_)
    if (const Device* d = DeviceScope::current()) device_ = *d;
  std::optional<DeviceScope> on;
  if (device_) on.emplace(*device_);
  if (symbolic) return call_symbolic(inputs);
  maybe_build(inputs);
  CallFrame frame(this);
  Tensors out = call(inputs);
  attach_masks(inputs, out, out);
  if (output_shapes_.empty()) {
    for (const auto& t : inputs) {
      Shape s = t.shape();
      if (!s.empty()) s[0] = -1;
      input_shapes_.push_back(s);
    }
    for (const auto& t : out) {
      Shape s = t.shape();
      if (!s.empty()) s[0] = -1;
      output_shapes_.push_back(s);
    }
  }
  return out;
}

Tensors Layer::call_symbolic(const Tensors& inputs) {
  auto self = weak_from_this().lock();
  MF_CHECK(self != nullptr, "layer '", name(), "' is called on symbolic inputs (building a functional model) but ",
           "is not owned by a shared_ptr; create it with make_layer<", class_name(), ">(...) or std::make_shared");
  maybe_build(inputs);
  Tensors traced;
  {
    NameScope scope(name());
    CallFrame frame(this);
    traced = call(inputs);
  }
  std::vector<TensorMeta> metas;
  for (size_t i = 0; i < traced.size(); ++i) {
    MF_CHECK(traced[i].defined(), "layer '", name(), "': output ", i, " of call() is undefined");
    metas.push_back({traced[i].shape(), traced[i].dtype(), traced[i].device()});
  }
  if (output_shapes_.empty()) {
    for (const auto& t : inputs) input_shapes_.push_back(t.shape());
    for (const auto& m : metas) output_shapes_.push_back(m.shape);
  }
  std::vector<Tensor> outs;
  {
    NameScope scope(name());
    // The graph owns its layers: a model keeps working after the caller drops its handles.
    outs = record_composite(class_name(), [self](const std::vector<Tensor>& ins) {
      return (*self)(Tensors(ins)).list();
    }, inputs.list(), metas, self, Attrs{{"call_index", symbolic_calls_++}}, traced.list());
  }
  Tensors result;
  for (size_t i = 0; i < outs.size(); ++i) result.push_back(outs[i], traced.names()[i]);
  // The recorded outputs get the masks computed from the traced ones; when the graph runs, the
  // eager calls attach the real masks.
  attach_masks(inputs, traced, result);
  return result;
}

Tensors Layer::compute_mask(const Tensors& inputs, const Tensors& outputs) {
  Tensors masks;
  Tensor first = supports_masking_ ? keras_mask(inputs[0]) : Tensor();
  for (size_t i = 0; i < outputs.size(); ++i) masks.push_back(first);
  return masks;
}

// `computed` are call()'s outputs and `outputs` the tensors the caller gets: the same on eager
// calls, the recorded graph outputs on symbolic ones. A mask call() attached itself is kept too.
void Layer::attach_masks(const Tensors& inputs, const Tensors& computed, const Tensors& outputs) {
  Tensors masks = compute_mask(inputs, computed);
  const bool recorded = &computed != &outputs;
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor m = i < masks.size() ? masks[i] : Tensor();
    if (!m.defined() && recorded && i < computed.size()) m = keras_mask(computed[i]);
    if (m.defined()) set_keras_mask(outputs[i], m);
  }
}

Variable Layer::add_weight(const std::string& wname, const Shape& shape, const std::string& initializer,
                           bool trainable, std::shared_ptr<Regularizer> regularizer) {
  for (int64_t d : shape)
    MF_CHECK(d >= 0, "layer '", name(), "': weight '", wname, "' has an unknown or negative dimension in ",
             shape_str(shape), " (is the input's feature dimension unknown?)");
  Tensor value = init::by_name(initializer, shape, nullptr, dtype_);
  return add_weight(wname, value, trainable, std::move(regularizer));
}

Variable Layer::add_weight(const std::string& wname, const Tensor& initial_value, bool trainable,
                           std::shared_ptr<Regularizer> regularizer) {
  MF_CHECK(initial_value.defined() && !initial_value.is_symbolic(), "layer '", name(), "': weight '", wname,
           "' needs a real initial value");
  Variable v(initial_value.contiguous().clone(), name() + "/" + wname, trainable, std::move(regularizer));
  if (!trainable_) v.set_requires_grad(false);
  weights_.push_back(v);
  return v;
}

void Layer::track_layer(const std::shared_ptr<Layer>& layer) {
  MF_CHECK(layer != nullptr, "layer '", name(), "': cannot track a null layer");
  MF_CHECK(layer.get() != this, "layer '", name(), "' cannot track itself");
  for (const auto& l : sublayers_)
    if (l.get() == layer.get()) return;
  sublayers_.push_back(layer);
}

void Layer::collect_weights(std::vector<Variable>& out, std::vector<const Layer*>& seen) const {
  for (const Layer* l : seen)
    if (l == this) return;
  seen.push_back(this);
  for (const auto& w : weights_) {
    bool dup = false;
    for (const auto& o : out) dup = dup || o.is_same(w);
    if (!dup) out.push_back(w);
  }
  for (const auto& l : sublayers_) l->collect_weights(out, seen);
}

std::vector<Variable> Layer::weights() const {
  std::vector<Variable> out;
  std::vector<const Layer*> seen;
  collect_weights(out, seen);
  return out;
}

std::vector<Variable> Layer::trainable_weights() const {
  std::vector<Variable> out;
  if (!trainable_) return out;
  for (const auto& w : weights())
    if (w.trainable() && w.requires_grad()) out.push_back(w);
  return out;
}

std::vector<Variable> Layer::non_trainable_weights() const {
  std::vector<Variable> out;
  for (const auto& w : weights())
    if (!trainable_ || !w.trainable() || !w.requires_grad()) out.push_back(w);
  return out;
}

std::vector<Tensor> Layer::get_weights() const {
  std::vector<Tensor> out;
  for (const auto& w : weights()) out.push_back(w.detach().clone());
  return out;
}

void Layer::set_weights(const std::vector<Tensor>& values) {
  auto ws = weights();
  MF_CHECK(values.size() == ws.size(), "layer '", name(), "': set_weights got ", values.size(), " arrays for ",
           ws.size(), " weights");
  for (size_t i = 0; i < ws.size(); ++i) {
    MF_CHECK(values[i].shape() == ws[i].shape(), "layer '", name(), "': set_weights: weight '", ws[i].name(),
             "' has shape ", shape_str(ws[i].shape()), " but the value has shape ", shape_str(values[i].shape()));
    ws[i].assign(values[i]);
  }
}

int64_t Layer::count_params() const {
  int64_t n = 0;
  for (const auto& w : weights()) n += w.numel();
  return n;
}

void Layer::set_trainable(bool t) {
  trainable_ = t;
  for (auto& w : weights_) {
    bool want = t && w.trainable();
    if (w.requires_grad() != want) w.set_requires_grad(want);
  }
  for (auto& l : sublayers_) l->set_trainable(t);
}

void Layer::add_loss(const Tensor& loss) {
  MF_CHECK(loss.defined() && loss.numel() == 1, "layer '", name(), "': add_loss needs a scalar tensor");
  losses_.push_back(loss);
}

std::vector<Tensor> Layer::losses() const {
  std::vector<Tensor> out = losses_;
  std::vector<const Layer*> seen{this};
  std::function<void(const Layer&)> walk = [&](const Layer& l) {
    for (const auto& s : l.sublayers_) {
      bool dup = false;
      for (const Layer* x : seen) dup = dup || x == s.get();
      if (dup) continue;
      seen.push_back(s.get());
      out.insert(out.end(), s->losses_.begin(), s->losses_.end());
      walk(*s);
    }
  };
  walk(*this);
  return out;
}

void Layer::clear_losses() {
  losses_.clear();
  for (auto& s : sublayers_) s->clear_losses();
}

Json Layer::get_config() const {
  Json c{{"name", name()}, {"trainable", trainable_}, {"dtype", dtype_name(dtype_)}};
  if (device_) c["device"] = device_->str();  // only placed layers: Keras configs have no device
  return c;
}

bool Layer::training() { return t_training; }

TrainingScope::TrainingScope(bool training) : previous_(t_training) { t_training = training; }
TrainingScope::~TrainingScope() { t_training = previous_; }

}  // namespace meshflow
