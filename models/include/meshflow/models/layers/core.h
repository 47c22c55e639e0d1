// The core Keras layers: Dense, Activation, Dropout, Flatten, Reshape. Each options struct lists the
// layer's own fields first and then name, trainable and dtype, in Keras's argument order, so
// layers::Dense(5, {.activation = "softmax", .name = "classification"}) reads as in Keras.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "meshflow/core/random.h"
#include "meshflow/models/layer.h"
#include "meshflow/models/layers/activations.h"
#include "meshflow/models/regularizers.h"

namespace meshflow::layers {

struct DenseOptions {
  std::string activation;  // "" is linear
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  std::shared_ptr<Regularizer> kernel_regularizer;
  std::shared_ptr<Regularizer> bias_regularizer;
  std::string name;
  bool trainable = true;
  DType dtype = DType::F32;
  // Tensor parallelism (docs/sharding.md): how a ShardedStrategy lays the kernel [in, units] and
  // the bias [units] out over its mesh, e.g. mf::layout({mf::Replicated, "model"}) and
  // mf::layout({"model"}) for a column-parallel Dense. Empty: whole (unless the strategy annotates).
  Layout kernel_layout;
  Layout bias_layout;
};

// y = activation(x @ kernel + bias) over the last axis of an input of rank >= 2 (as Keras: a
// [batch, time, features] input gives [batch, time, units]).
class DenseLayer : public Layer {
 public:
  DenseLayer(int64_t units, DenseOptions options = {});
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x) override;
  Json get_config() const override;
  static std::shared_ptr<DenseLayer> from_config(const Json& config);

  int64_t units() const { return units_; }
  const Variable& kernel() const { return kernel_; }
  const Variable& bias() const { return bias_; }  // undefined without use_bias

 private:
  int64_t units_;
  DenseOptions options_;
  activations::ActivationFn activation_;
  Variable kernel_, bias_;
};
LayerRef<DenseLayer> Dense(int64_t units, DenseOptions options = {});

struct ActivationOptions {
  std::string name;
  bool trainable = true;
  DType dtype = DType::F32;
};

class ActivationLayer : public Layer {
 public:
  explicit ActivationLayer(std::string activation, ActivationOptions options = {});
  Tensor call(const Tensor& x) override;
  Json get_config() const override;
  static std::shared_ptr<ActivationLayer> from_config(const Json& config);

 private:
  std::string activation_name_;
  activations::ActivationFn activation_;
};
LayerRef<ActivationLayer> Activation(std::string activation, ActivationOptions options = {});

struct DropoutOptions {
  std::optional<uint64_t> seed;  // default: the global generator
  std::string name;
  bool trainable = true;
  DType dtype = DType::F32;
};

// Inverted dropout while training (Layer::training(), which fit() sets); the identity otherwise.
class DropoutLayer : public Layer {
 public:
  explicit DropoutLayer(double rate, DropoutOptions options = {});
  Tensor call(const Tensor& x) override;
  Json get_config() const override;
  static std::shared_ptr<DropoutLayer> from_config(const Json& config);
  double rate() const { return rate_; }

 private:
  double rate_;
  DropoutOptions options_;
  std::shared_ptr<Generator> generator_;  // set when a seed is given
};
LayerRef<DropoutLayer> Dropout(double rate, DropoutOptions options = {});

struct FlattenOptions {
  std::string name;
  bool trainable = true;
  DType dtype = DType::F32;
};

// [batch, d1, d2, ...] -> [batch, d1 * d2 * ...].
class FlattenLayer : public Layer {
 public:
  explicit FlattenLayer(FlattenOptions options = {});
  Tensor call(const Tensor& x) override;
  Json get_config() const override;
  static std::shared_ptr<FlattenLayer> from_config(const Json& config);
};
LayerRef<FlattenLayer> Flatten(FlattenOptions options = {});

struct ReshapeOptions {
  std::string name;
  bool trainable = true;
  DType dtype = DType::F32;
};

// [batch, ...] -> [batch, target_shape...]; target_shape excludes the batch and may hold one -1.
class ReshapeLayer : public Layer {
 public:
  explicit ReshapeLayer(Shape target_shape, ReshapeOptions options = {});
  Tensor call(const Tensor& x) override;
  Json get_config() const override;
  static std::shared_ptr<ReshapeLayer> from_config(const Json& config);
  const Shape& target_shape() const { return target_shape_; }

 private:
  Shape target_shape_;
};
LayerRef<ReshapeLayer> Reshape(Shape target_shape, ReshapeOptions options = {});

}  // namespace meshflow::layers
