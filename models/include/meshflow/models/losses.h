// Losses: per-sample values reduced over the batch (Keras's SUM_OVER_BATCH_SIZE by default).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "meshflow/core/tensor.h"
#include "meshflow/models/layer.h"

namespace meshflow {

enum class Reduction { SumOverBatchSize, Sum, None };

class Loss {
 public:
  explicit Loss(std::string name, Reduction reduction = Reduction::SumOverBatchSize)
      : name_(std::move(name)), reduction_(reduction) {}
  virtual ~Loss() = default;
  // Per-sample losses, shape [batch] (averaged over the last axis where Keras does, e.g. mse).
  virtual Tensor call(const Tensor& y_true, const Tensor& y_pred) const = 0;
  // The reduced loss (a scalar unless Reduction::None); sample_weight [batch] is optional.
  // Checks that y_true and y_pred fit, naming the loss and both shapes.
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = Tensor()) const;
  const std::string& name() const { return name_; }
  Reduction reduction() const { return reduction_; }
  virtual Json get_config() const { return Json{{"name", name_}}; }

 private:
  std::string name_;
  Reduction reduction_;
};

namespace losses {
struct CrossentropyOptions {
  bool from_logits = false;
  double label_smoothing = 0.0;
  int64_t axis = -1;
};
std::shared_ptr<Loss> MeanSquaredError();
std::shared_ptr<Loss> MeanAbsoluteError();
std::shared_ptr<Loss> Huber(double delta = 1.0);
std::shared_ptr<Loss> BinaryCrossentropy(CrossentropyOptions options = {});
std::shared_ptr<Loss> CategoricalCrossentropy(CrossentropyOptions options = {});
std::shared_ptr<Loss> SparseCategoricalCrossentropy(CrossentropyOptions options = {});
// A loss from a function returning per-sample values.
std::shared_ptr<Loss> from_function(const std::string& name,
                                    std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)> fn);
// By Keras name: "mse"/"mean_squared_error", "mae"/"mean_absolute_error", "huber",
// "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy".
// Throws naming the unknown name and listing the known ones.
std::shared_ptr<Loss> get(const std::string& name);
// The loss a built-in's get_config() describes (name and options); unknown names throw as get().
std::shared_ptr<Loss> from_config(const Json& config);
}  // namespace losses

}  // namespace meshflow
