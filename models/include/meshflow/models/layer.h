// Layer: the Keras building block. Weights are created in build() on the first call; call()
// computes the forward pass with Meshflow ops, eagerly on real tensors or recorded into a
// functional graph when called on symbolic ones (Input()).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "meshflow/core/op.h"
#include "meshflow/core/tensor.h"
#include "meshflow/models/tensors.h"

namespace meshflow {

using Json = nlohmann::json;
class Regularizer;

// A weight: a leaf tensor that requires grad (when trainable), with a name and the layer's
// regularizer. Copies share the same tensor.
class Variable : public Tensor {
 public:
  Variable() = default;
  Variable(Tensor value, std::string name, bool trainable, std::shared_ptr<Regularizer> regularizer = nullptr);
  bool trainable() const;
  void set_trainable(bool trainable);
  const std::shared_ptr<Regularizer>& regularizer() const;
  // Writes new values in place (outside autograd), keeping the identity optimizers refer to.
  void assign(const Tensor& value);
  // A 1-D slice of a weight (ZeRO, Note [ZeRO] in parallel/): elements [offset, offset + numel())
  // of a weight of `whole_shape`, flattened. Optimizer slots saved for the whole weight load into
  // it sliced.
  void set_slice_of(const Shape& whole_shape, int64_t offset);
  bool is_slice() const { return info_ && info_->slice_offset >= 0; }
  const Shape& whole_shape() const;  // of a slice or a part
  int64_t slice_offset() const { return info_ ? info_->slice_offset : -1; }
  // This device's part of a weight split by tensor parallelism (Note [Partitioned programs] in
  // parallel/partitioner.h): `take` cuts the part from a whole tensor of `whole_shape`, `gather`
  // makes the whole tensor from every device's part (a collective). Optimizer slots saved whole
  // load into it cut; saving gathers them whole.
  void set_part_of(const Shape& whole_shape, std::function<Tensor(const Tensor&)> take,
                   std::function<Tensor(const Tensor&)> gather);
  bool is_part() const { return info_ && info_->take_part != nullptr; }
  // How tensor parallelism lays this weight out over a mesh (docs/sharding.md), when its layer was
  // told (Dense's kernel_layout); a ShardedStrategy's own annotate() wins over it.
  void set_layout(const Layout& layout);
  const std::optional<Layout>& layout() const;
  Tensor take_part(const Tensor& whole) const;
  Tensor gather_part(const Tensor& part) const;

 private:
  struct Info {
    bool trainable = true;
    std::shared_ptr<Regularizer> regularizer;
    Shape whole_shape;
    int64_t slice_offset = -1;
    std::function<Tensor(const Tensor&)> take_part, gather_part;
    std::optional<Layout> layout;
  };
  std::shared_ptr<Info> info_;
};

struct LayerOptions {
  std::string name;         // default: the snake_case class name, numbered (dense, dense_1, ...)
  bool trainable = true;
  DType dtype = DType::F32;
};

class Layer : public std::enable_shared_from_this<Layer> {
 public:
  // Built-in layers pass their Keras class name; custom layers may leave it empty (the C++
  // class name is used).
  explicit Layer(LayerOptions options = {}, std::string class_name = "");
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // Creates weights once, from the input shapes (the batch dim is -1 when unknown).
  virtual void build(const Shape& input_shape);
  virtual void build(const std::vector<Shape>& input_shapes);
  // The forward pass: override the one-tensor form, or the Tensors form for several inputs or
  // outputs (the default Tensors form calls the one-tensor form).
  virtual Tensor call(const Tensor& x);
  virtual Tensors call(const Tensors& inputs);

  // Calls the layer: builds it on first use, then runs call(). On symbolic inputs, records one
  // node in the functional graph (the layer must then be owned by a shared_ptr: make_layer).
  Tensor operator()(const Tensor& x);
  Tensors operator()(const Tensors& inputs);

  Variable add_weight(const std::string& name, const Shape& shape, const std::string& initializer = "glorot_uniform",
                      bool trainable = true, std::shared_ptr<Regularizer> regularizer = nullptr);
  Variable add_weight(const std::string& name, const Tensor& initial_value, bool trainable = true,
                      std::shared_ptr<Regularizer> regularizer = nullptr);
  // Registers a sub-layer, so its weights are this layer's too. Layers called inside call() are
  // tracked automatically; tracking them when constructed keeps summary() order stable.
  template <typename L>
  std::shared_ptr<L> track(std::shared_ptr<L> layer) {
    track_layer(layer);
    return layer;
  }
  void track_layer(const std::shared_ptr<Layer>& layer);

  // Weights in creation order, own then sub-layers' (each once, even when shared).
  std::vector<Variable> weights() const;
  std::vector<Variable> trainable_weights() const;
  std::vector<Variable> non_trainable_weights() const;
  std::vector<Tensor> get_weights() const;                  // copies
  void set_weights(const std::vector<Tensor>& values);      // checks count and shapes
  int64_t count_params() const;
  const std::vector<std::shared_ptr<Layer>>& sublayers() const { return sublayers_; }

  // Losses added during call() (activity regularization), cleared at each call of the outer model.
  void add_loss(const Tensor& loss);
  std::vector<Tensor> losses() const;
  void clear_losses();

  const std::string& name() const;
  std::string class_name() const;
  bool trainable() const { return trainable_; }
  virtual void set_trainable(bool trainable);
  bool built() const { return built_; }
  DType dtype() const { return dtype_; }
  // Shapes seen at the first call (batch dim -1), for summary().
  const std::vector<Shape>& input_shapes() const { return input_shapes_; }
  const std::vector<Shape>& output_shapes() const { return output_shapes_; }

  // Keras-style config: {"name", "trainable", "dtype"} plus each layer's own fields.
  virtual Json get_config() const;

  // The Keras masks of call()'s outputs (undefined where none), read from the inputs' masks with
  // keras_mask() (masking.h); operator() attaches them to the outputs, eager and symbolic alike.
  // By default a layer that supports masking passes its first input's mask to every output and
  // any other layer drops it (as Keras). Embedding(mask_zero) makes one; merge layers combine them.
  virtual Tensors compute_mask(const Tensors& inputs, const Tensors& outputs);
  bool supports_masking() const { return supports_masking_; }

  // The training flag layers read in call() (Dropout, BatchNormalization); fit() sets it.
  static bool training();

  // Note [Layer placement]
  // Where the layer creates its weights and runs: the DeviceScope open at its first call (as
  // tf.device around a Keras layer call), or set_device(). Every later call, including the
  // replays of a functional graph inside fit(), runs under that device; inputs from elsewhere
  // are copied to it and their gradients copied back (call_op), and the optimizer updates each
  // weight where it lives. Unset: the layer follows the current scope and its inputs.
  const std::optional<Device>& device() const { return device_; }
  void set_device(std::optional<Device> device) { device_ = device; }

 protected:
  // Called by operator() before the first call; the default calls build(input shapes).
  void maybe_build(const Tensors& inputs);
  DType dtype_;
  bool supports_masking_ = false;  // set by layers that keep the time axis (Dense, Dropout, ...)

 private:
  Tensors call_symbolic(const Tensors& inputs);
  void attach_masks(const Tensors& inputs, const Tensors& computed, const Tensors& outputs);
  void collect_weights(std::vector<Variable>& out, std::vector<const Layer*>& seen) const;

  mutable std::string name_;
  std::string class_name_;
  bool trainable_ = true;
  bool built_ = false;
  std::vector<Variable> weights_;
  std::vector<std::shared_ptr<Layer>> sublayers_;
  std::vector<Tensor> losses_;
  std::vector<Shape> input_shapes_, output_shapes_;
  int64_t symbolic_calls_ = 0;  // numbers the layer's nodes in functional graphs ("dense[1][0]")
  std::optional<Device> device_;  // Note [Layer placement]
};

// Sets the training flag for the calls inside it (thread-local).
class TrainingScope {
 public:
  explicit TrainingScope(bool training);
  ~TrainingScope();
  TrainingScope(const TrainingScope&) = delete;
  TrainingScope& operator=(const TrainingScope&) = delete;

 private:
  bool previous_;
};

// A shared handle to a layer: copies refer to the same layer (shared weights), and calling it
// calls the layer. layers::Dense(...) and make_layer<MyLayer>(...) return one.
template <typename L>
class LayerRef {
 public:
  LayerRef() = default;
  LayerRef(std::shared_ptr<L> layer) : layer_(std::move(layer)) {}  // NOLINT
  Tensor operator()(const Tensor& x) const { return (*layer_)(x); }
  Tensors operator()(const Tensors& xs) const { return (*layer_)(xs); }
  L* operator->() const { return layer_.get(); }
  L& operator*() const { return *layer_; }
  const std::shared_ptr<L>& ptr() const { return layer_; }
  operator std::shared_ptr<Layer>() const { return layer_; }  // NOLINT
  template <typename U>
  operator LayerRef<U>() const { return LayerRef<U>(layer_); }  // NOLINT: upcast

 private:
  std::shared_ptr<L> layer_;
};

template <typename L, typename... Args>
LayerRef<L> make_layer(Args&&... args) {
  return LayerRef<L>(std::make_shared<L>(std::forward<Args>(args)...));
}

// The layer registry: from_config rebuilds layers, built-in and custom, by class name.
using LayerFactory = std::function<std::shared_ptr<Layer>(const Json& config)>;
void register_layer(const std::string& class_name, LayerFactory factory);
// A config's "device" (Note [Layer placement]) places the layer it makes, unless a LoadDevice is
// open: then every layer goes to that device.
std::shared_ptr<Layer> layer_from_config(const std::string& class_name, const Json& config);
bool layer_registered(const std::string& class_name);

namespace detail {
// RAII: while alive, layer_from_config places every layer on `device` (nullopt: as saved).
class LoadDevice {
 public:
  explicit LoadDevice(std::optional<Device> device);
  ~LoadDevice();
  LoadDevice(const LoadDevice&) = delete;
  LoadDevice& operator=(const LoadDevice&) = delete;
  static const Device* current();

 private:
  Device device_;
  const Device* outer_;
};
}  // namespace detail

// Keras's automatic names: "Dense" -> "dense", "dense_1", ...; "MultiHeadAttention" ->
// "multi_head_attention". reset_layer_names() restarts the counters (Keras's clear_session).
std::string to_snake_case(const std::string& class_name);
std::string unique_layer_name(const std::string& prefix);
void reset_layer_names();

}  // namespace meshflow

// MF_REGISTER_LAYER(Class, "Name"): registers Class::from_config(const Json&) under "Name".
#define MF_REGISTER_LAYER(Class, Name)                                                             \
  static const bool MF_CONCAT(mf_layer_registered_, __LINE__) = [] {                               \
    ::meshflow::register_layer(Name, [](const ::meshflow::Json& c) -> std::shared_ptr<::meshflow::Layer> { \
      return Class::from_config(c);                                                                \
    });                                                                                            \
    return true;                                                                                   \
  }()
