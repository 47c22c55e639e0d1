// Losses with Keras's formulas: regression losses, the three crossentropies, reduction, lookup by name.
#include "meshflow/models/losses.h"

#include <cmath>

#include "meshflow/core/error.h"
#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/nn.h"
#include "meshflow/core/ops/norm.h"
#include "meshflow/core/ops/reduce.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {
namespace {

// Keras's backend epsilon: probabilities are clipped to [eps, 1 - eps] before the log.
constexpr double kEpsilon = 1e-7;

Shape without_last(const Shape& s) { return Shape(s.begin(), s.end() - 1); }

// Built-in losses know which y_true layouts fit y_pred; custom ones (from_function) decide themselves.
class BuiltinLoss : public Loss {
 public:
  using Loss::Loss;
  // y_true brought to y_pred's shape and dtype. Like Keras, a trailing dim of 1 on either side is
  // squeezed or added ([N] against [N, 1]); any other difference is an error naming both shapes.
  virtual Tensor prepare_target(const Tensor& y_true, const Tensor& y_pred) const {
    Tensor t = y_true;
    const Shape &ts = y_true.shape(), &ps = y_pred.shape();
    MF_CHECK(!ps.empty(), name(), ": y_pred must have a batch dimension, got a scalar");
    if (ts != ps) {
      if (ts.size() + 1 == ps.size() && ps.back() == 1 && ts == without_last(ps)) t = t.unsqueeze(t.dim());
      else if (ps.size() + 1 == ts.size() && ts.back() == 1 && ps == without_last(ts)) t = t.squeeze(t.dim() - 1);
      else
        MF_THROW(name(), ": y_true has shape ", shape_str(ts), " but y_pred has shape ", shape_str(ps),
                 "; they must match (a trailing dimension of 1 may differ)");
    }
    return t.dtype() == y_pred.dtype() ? t : t.to(y_pred.dtype());
  }
};

// Per-sample values from elementwise ones: the mean over the last axis (Keras), except that
// rank-1 predictions ([batch]) are one value per sample already.
Tensor mean_last(const Tensor& elementwise) {
  return elementwise.dim() <= 1 ? elementwise : mean(elementwise, {-1});
}

class MeanSquaredErrorImpl : public BuiltinLoss {
 public:
  MeanSquaredErrorImpl() : BuiltinLoss("mean_squared_error") {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    return mean_last(square(y_pred - prepare_target(y_true, y_pred)));
  }
};

class MeanAbsoluteErrorImpl : public BuiltinLoss {
 public:
  MeanAbsoluteErrorImpl() : BuiltinLoss("mean_absolute_error") {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    return mean_last(abs(y_pred - prepare_target(y_true, y_pred)));
  }
};

// 0.5 e² where |e| <= delta, else delta (|e| - 0.5 delta).
class HuberImpl : public BuiltinLoss {
 public:
  explicit HuberImpl(double delta) : BuiltinLoss("huber_loss"), delta_(delta) {
    MF_CHECK(delta > 0, "huber_loss: delta must be positive, got ", delta);
  }
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    Tensor err = y_pred - prepare_target(y_true, y_pred);
    Tensor a = abs(err);
    Tensor quadratic = square(err) * 0.5;
    Tensor linear = a * delta_ - 0.5 * delta_ * delta_;
    return mean_last(where(le(a, scalar_like(delta_, a)), quadratic, linear));
  }
  Json get_config() const override { return {{"name", name()}, {"delta", delta_}}; }

 private:
  double delta_;
};

class CrossentropyBase : public BuiltinLoss {
 public:
  CrossentropyBase(std::string name, losses::CrossentropyOptions o) : BuiltinLoss(std::move(name)), o_(o) {
    MF_CHECK(o.label_smoothing >= 0 && o.label_smoothing <= 1, this->name(), ": label_smoothing must be in [0, 1], got ",
             o.label_smoothing);
    MF_CHECK(o.axis == -1, this->name(), ": only axis=-1 (classes last) is supported, got axis=", o.axis);
  }
  Json get_config() const override {
    return {{"name", name()}, {"from_logits", o_.from_logits}, {"label_smoothing", o_.label_smoothing},
            {"axis", o_.axis}};
  }

 protected:
  // log p over the last axis: log_softmax of logits, or Keras's normalize-then-clip of probabilities.
  Tensor log_probs(const Tensor& y_pred) const {
    if (o_.from_logits) return log_softmax(y_pred, -1);
    Tensor p = y_pred / sum(y_pred, {-1}, true);
    return log(clip(p, kEpsilon, 1.0 - kEpsilon));
  }
  Tensor categorical(const Tensor& target, const Tensor& y_pred) const {
    Tensor t = target;
    if (o_.label_smoothing > 0) {
      double classes = double(y_pred.shape().back());
      t = t * (1.0 - o_.label_smoothing) + o_.label_smoothing / classes;
    }
    return neg(sum(t * log_probs(y_pred), {-1}));
  }
  losses::CrossentropyOptions o_;
};

// Note [Stable binary crossentropy]: from logits x with target z the loss is
// max(x, 0) - x z + log(1 + e^-|x|) = softplus(x) - x z. The softplus op computes the first form
// and differentiates to sigmoid(x), which is also right at x = 0, where max and |x| have kinks.
class BinaryCrossentropyImpl : public CrossentropyBase {
 public:
  explicit BinaryCrossentropyImpl(losses::CrossentropyOptions o) : CrossentropyBase("binary_crossentropy", o) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    Tensor z = prepare_target(y_true, y_pred);
    if (o_.label_smoothing > 0) z = z * (1.0 - o_.label_smoothing) + 0.5 * o_.label_smoothing;
    Tensor v;
    if (o_.from_logits) {
      v = softplus(y_pred) - y_pred * z;
    } else {
      Tensor p = clip(y_pred, kEpsilon, 1.0 - kEpsilon);
      v = neg(z * log(p) + (1.0 - z) * log(1.0 - p));
    }
    return mean_last(v);
  }
};

class CategoricalCrossentropyImpl : public CrossentropyBase {
 public:
  explicit CategoricalCrossentropyImpl(losses::CrossentropyOptions o)
      : CrossentropyBase("categorical_crossentropy", o) {}
  Tensor prepare_target(const Tensor& y_true, const Tensor& y_pred) const override {
    MF_CHECK(y_true.shape() == y_pred.shape(), name(), ": y_true has shape ", shape_str(y_true.shape()),
             " but y_pred has shape ", shape_str(y_pred.shape()),
             "; they must match (one-hot targets; for integer class ids use sparse_categorical_crossentropy)");
    return y_true.dtype() == y_pred.dtype() ? y_true : y_true.to(y_pred.dtype());
  }
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    return categorical(prepare_target(y_true, y_pred), y_pred);
  }
};

class SparseCategoricalCrossentropyImpl : public CrossentropyBase {
 public:
  explicit SparseCategoricalCrossentropyImpl(losses::CrossentropyOptions o)
      : CrossentropyBase("sparse_categorical_crossentropy", o) {}
  // Class ids as i64 with y_pred's shape minus the class axis; every id checked against the range.
  Tensor prepare_target(const Tensor& y_true, const Tensor& y_pred) const override {
    const Shape &ts = y_true.shape(), &ps = y_pred.shape();
    MF_CHECK(ps.size() >= 2, name(), ": y_pred must have a class axis, got shape ", shape_str(ps));
    const Shape rows = without_last(ps);
    Shape rows1 = rows;
    rows1.push_back(1);
    MF_CHECK(ts == rows || ts == rows1, name(), ": y_true has shape ", shape_str(ts), " but y_pred has shape ",
             shape_str(ps), "; y_true must hold one class id per row, shape ", shape_str(rows), " or ",
             shape_str(rows1));
    Tensor ids = ts == rows1 ? y_true.squeeze(y_true.dim() - 1) : y_true;
    const int64_t classes = ps.back();
    // Traced (a partitioned step): the values are checked on the real batch before it runs.
    if (ids.is_symbolic()) return ids.dtype() == DType::I64 ? ids : ids.to(DType::I64);
    std::vector<double> v = ids.detach().to(DType::F64).contiguous().to_vector<double>();
    for (double id : v) {
      MF_CHECK(id == std::floor(id), name(), ": y_true holds ", id, ", which is not an integer class id");
      MF_CHECK(id >= 0 && id < double(classes), name(), ": class id ", int64_t(id), " is out of range for ", classes,
               " classes (y_pred has shape ", shape_str(ps), "); ids must be in [0, ", classes, ")");
    }
    return ids.dtype() == DType::I64 ? ids : ids.detach().to(DType::I64);
  }
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override {
    Tensor ids = prepare_target(y_true, y_pred);
    Tensor hot = one_hot(ids, y_pred.shape().back(), y_pred.dtype());
    return categorical(hot, y_pred);
  }
};

class FunctionLoss : public Loss {
 public:
  FunctionLoss(std::string name, std::function<Tensor(const Tensor&, const Tensor&)> fn)
      : Loss(std::move(name)), fn_(std::move(fn)) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred) const override { return fn_(y_true, y_pred); }

 private:
  std::function<Tensor(const Tensor&, const Tensor&)> fn_;
};

}  // namespace

Tensor Loss::operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) const {
  MF_CHECK(y_true.defined() && y_pred.defined(), name_, ": y_true and y_pred must be defined");
  MF_CHECK(y_pred.dim() >= 1, name_, ": y_pred must have a batch dimension, got shape ", shape_str(y_pred.shape()));
  MF_CHECK(is_floating(y_pred.dtype()), name_, ": y_pred must be floating, got ", dtype_name(y_pred.dtype()));
  Tensor target = y_true;
  if (auto* builtin = dynamic_cast<const BuiltinLoss*>(this)) target = builtin->prepare_target(y_true, y_pred);
  Tensor values = call(target, y_pred);
  const int64_t batch = y_pred.size(0);
  MF_CHECK(values.dim() >= 1 && values.size(0) == batch, name_, ": the per-sample losses have shape ",
           shape_str(values.shape()), " but the batch has ", batch, " samples; call() must return [batch, ...]");
  if (sample_weight.defined()) {
    MF_CHECK(sample_weight.shape() == Shape{batch} || sample_weight.shape() == values.shape(), name_,
             ": sample_weight has shape ", shape_str(sample_weight.shape()), " but expected [", batch,
             "] (one weight per sample) or ", shape_str(values.shape()));
    Tensor w = sample_weight.dtype() == values.dtype() ? sample_weight : sample_weight.to(values.dtype());
    Shape ws(values.dim(), 1);
    ws[0] = batch;
    if (w.shape() != values.shape()) w = w.reshape(ws);
    values = values * w;
  }
  switch (reduction_) {
    case Reduction::None: return values;
    case Reduction::Sum: return sum(values);
    case Reduction::SumOverBatchSize:
      // Keras divides by the number of loss values, not by the sum of the weights.
      return values.numel() == 0 ? sum(values) : sum(values) / double(values.numel());
  }
  MF_THROW(name_, ": unknown reduction");
}

namespace losses {

std::shared_ptr<Loss> MeanSquaredError() { return std::make_shared<MeanSquaredErrorImpl>(); }
std::shared_ptr<Loss> MeanAbsoluteError() { return std::make_shared<MeanAbsoluteErrorImpl>(); }
std::shared_ptr<Loss> Huber(double delta) { return std::make_shared<HuberImpl>(delta); }
std::shared_ptr<Loss> BinaryCrossentropy(CrossentropyOptions o) { return std::make_shared<BinaryCrossentropyImpl>(o); }
std::shared_ptr<Loss> CategoricalCrossentropy(CrossentropyOptions o) {
  return std::make_shared<CategoricalCrossentropyImpl>(o);
}
std::shared_ptr<Loss> SparseCategoricalCrossentropy(CrossentropyOptions o) {
  return std::make_shared<SparseCategoricalCrossentropyImpl>(o);
}

std::shared_ptr<Loss> from_function(const std::string& name,
                                    std::function<Tensor(const Tensor& y_true, const Tensor& y_pred)> fn) {
  MF_CHECK(fn != nullptr, "losses::from_function: the function for loss '", name, "' is empty");
  return std::make_shared<FunctionLoss>(name, std::move(fn));
}

std::shared_ptr<Loss> get(const std::string& name) {
  if (name == "mse" || name == "mean_squared_error" || name == "MeanSquaredError") return MeanSquaredError();
  if (name == "mae" || name == "mean_absolute_error" || name == "MeanAbsoluteError") return MeanAbsoluteError();
  if (name == "huber" || name == "huber_loss" || name == "Huber") return Huber();
  if (name == "binary_crossentropy" || name == "BinaryCrossentropy") return BinaryCrossentropy();
  if (name == "categorical_crossentropy" || name == "CategoricalCrossentropy") return CategoricalCrossentropy();
  if (name == "sparse_categorical_crossentropy" || name == "SparseCategoricalCrossentropy")
    return SparseCategoricalCrossentropy();
  MF_THROW("unknown loss '", name, "'; known losses: mse (mean_squared_error), mae (mean_absolute_error), ",
           "huber (huber_loss), binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy");
}

std::shared_ptr<Loss> from_config(const Json& config) {
  MF_CHECK(config.is_object() && config.contains("name") && config["name"].is_string(), "a loss config must be a ",
           "JSON object with a string \"name\", got ", config.dump());
  const std::string name = config["name"].get<std::string>();
  auto loss = get(name);  // throws for names it does not know
  if (loss->name() == "huber_loss") return Huber(config.value("delta", 1.0));
  if (name.find("rossentropy") != std::string::npos) {
    CrossentropyOptions o{.from_logits = config.value("from_logits", false),
                          .label_smoothing = config.value("label_smoothing", 0.0),
                          .axis = config.value("axis", int64_t(-1))};
    if (loss->name() == "binary_crossentropy") return BinaryCrossentropy(o);
    if (loss->name() == "categorical_crossentropy") return CategoricalCrossentropy(o);
    return SparseCategoricalCrossentropy(o);
  }
  return loss;
}

}  // namespace losses
}  // namespace meshflow
