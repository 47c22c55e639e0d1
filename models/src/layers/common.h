// Helpers the built-in layers share: options <-> LayerOptions, config fields, dtype and rank checks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/models/layer.h"
#include "meshflow/models/layers/activations.h"
#include "meshflow/models/layers/conv.h"
#include "meshflow/models/regularizers.h"

namespace meshflow::layers::detail {

// The fields every options struct has (name, trainable, dtype), as the Layer constructor takes them.
template <typename O>
LayerOptions common_options(const O& o) {
  return LayerOptions{.name = o.name, .trainable = o.trainable, .dtype = o.dtype};
}

// Reads name, trainable and dtype from a config into an options struct.
template <typename O>
void read_common(const Json& c, O& o) {
  if (c.contains("name") && c["name"].is_string()) o.name = c["name"].get<std::string>();
  if (c.contains("trainable") && c["trainable"].is_boolean()) o.trainable = c["trainable"].get<bool>();
  if (c.contains("dtype") && c["dtype"].is_string()) o.dtype = dtype_from_name(c["dtype"].get<std::string>());
}

// As read_common, but a field of the wrong type throws instead of being skipped.
template <typename O>
void read_common_strict(const Json& c, O& o) {
  o.name = c.value("name", o.name);
  o.trainable = c.value("trainable", o.trainable);
  o.dtype = dtype_from_name(c.value("dtype", std::string(dtype_name(o.dtype))));
}

// Keras's initializer aliases ("uniform", "normal", "zero", "one") as init::by_name knows them.
std::string canonical_initializer(const std::string& name);

// A regularizer as Keras writes it ({"class_name", "config"}), or null; and back.
Json regularizer_config(const std::shared_ptr<Regularizer>& r);
std::shared_ptr<Regularizer> regularizer_from_config(const Json& c);

Json int2_config(const Int2& v);
Int2 int2_from_config(const Json& c);
// Keras writes 1-D sizes as one-element lists ("kernel_size": [3]); this reads 3 or [3].
int64_t int1_from_config(const Json& c);
// A required field of a config, with an error naming the layer class and the field.
const Json& required_field(const Json& c, const char* field, const char* class_name);

// Checks the input rank against what the layer needs, naming the layer and the shape.
void check_rank(const Layer& l, const Shape& s, int64_t min_rank, int64_t max_rank, const char* what);
// Casts floating inputs to the layer's dtype (Keras's autocast); other dtypes are cast too.
Tensor to_dtype(const Tensor& x, DType dtype);
// activation(y + bias) for Dense and Conv (bias may be undefined): relu(y + bias) is the one fused
// op bias_relu (one pass forward, one backward); every other activation runs after the add.
Tensor bias_activation(const Tensor& y, const Tensor& bias, const std::string& activation,
                       const activations::ActivationFn& fn);

}  // namespace meshflow::layers::detail
