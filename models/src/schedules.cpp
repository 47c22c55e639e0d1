// Learning-rate schedules with Keras's formulas (step = iterations done so far, 0-based).
#include <cmath>
#include <numbers>

#include "meshflow/core/error.h"
#include "meshflow/models/optimizers.h"

namespace meshflow::schedules {
namespace {

// The state and config the two rate decays share: progress = step / decay_steps, floored when
// staircase, and Keras's config keys.
class RateDecay : public LearningRateSchedule {
 public:
  RateDecay(const char* class_name, double initial, int64_t decay_steps, double rate, bool staircase)
      : class_name_(class_name), initial_(initial), steps_(decay_steps), rate_(rate), staircase_(staircase) {}
  Json get_config() const override {
    return {{"class_name", class_name_}, {"initial_learning_rate", initial_}, {"decay_steps", steps_},
            {"decay_rate", rate_}, {"staircase", staircase_}};
  }

 protected:
  double progress(int64_t step) const {
    double p = double(step) / double(steps_);
    return staircase_ ? std::floor(p) : p;
  }
  const char* class_name_;
  double initial_;
  int64_t steps_;
  double rate_;
  bool staircase_;
};

// initial * rate^(step / decay_steps), the exponent floored when staircase.
class ExponentialDecayImpl : public RateDecay {
 public:
  ExponentialDecayImpl(double initial, int64_t decay_steps, double rate, bool staircase)
      : RateDecay("ExponentialDecay", initial, decay_steps, rate, staircase) {}
  double operator()(int64_t step) const override { return initial_ * std::pow(rate_, progress(step)); }
};

// values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
// values.back() after the last boundary.
class PiecewiseConstantDecayImpl : public LearningRateSchedule {
 public:
  PiecewiseConstantDecayImpl(std::vector<int64_t> b, std::vector<double> v) : b_(std::move(b)), v_(std::move(v)) {}
  double operator()(int64_t step) const override {
    for (size_t i = 0; i < b_.size(); ++i)
      if (step <= b_[i]) return v_[i];
    return v_.back();
  }
  Json get_config() const override {
    return {{"class_name", "PiecewiseConstantDecay"}, {"boundaries", b_}, {"values", v_}};
  }

 private:
  std::vector<int64_t> b_;
  std::vector<double> v_;
};

// initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha).
class CosineDecayImpl : public LearningRateSchedule {
 public:
  CosineDecayImpl(double initial, int64_t decay_steps, double alpha, int64_t warmup_steps, double warmup_target)
      : initial_(initial), steps_(decay_steps), alpha_(alpha), warmup_steps_(warmup_steps),
        target_(warmup_target < 0 ? initial : warmup_target) {}
  double operator()(int64_t step) const override {
    if (step < warmup_steps_) return initial_ + (target_ - initial_) * double(step) / double(warmup_steps_);
    double frac = double(std::min(step - warmup_steps_, steps_)) / double(steps_);
    double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * frac));
    return target_ * ((1.0 - alpha_) * cosine + alpha_);
  }
  Json get_config() const override {
    Json c{{"class_name", "CosineDecay"}, {"initial_learning_rate", initial_}, {"decay_steps", steps_},
           {"alpha", alpha_}};
    if (warmup_steps_ > 0) {
      c["warmup_steps"] = warmup_steps_;
      c["warmup_target"] = target_;
    }
    return c;
  }

 private:
  double initial_;
  int64_t steps_;
  double alpha_;
  int64_t warmup_steps_;
  double target_;
};

// initial / (1 + rate * step / decay_steps), the ratio floored when staircase.
class InverseTimeDecayImpl : public RateDecay {
 public:
  InverseTimeDecayImpl(double initial, int64_t decay_steps, double rate, bool staircase)
      : RateDecay("InverseTimeDecay", initial, decay_steps, rate, staircase) {}
  double operator()(int64_t step) const override { return initial_ / (1.0 + rate_ * progress(step)); }
};

void check_steps(const char* schedule, int64_t decay_steps) {
  MF_CHECK(decay_steps > 0, schedule, ": decay_steps must be positive, got ", decay_steps);
}

}  // namespace

std::shared_ptr<LearningRateSchedule> ExponentialDecay(double initial, int64_t decay_steps, double decay_rate,
                                                       bool staircase) {
  check_steps("ExponentialDecay", decay_steps);
  return std::make_shared<ExponentialDecayImpl>(initial, decay_steps, decay_rate, staircase);
}

std::shared_ptr<LearningRateSchedule> PiecewiseConstantDecay(std::vector<int64_t> boundaries,
                                                             std::vector<double> values) {
  MF_CHECK(values.size() == boundaries.size() + 1, "PiecewiseConstantDecay: values must have one more entry than ",
           "boundaries, got ", boundaries.size(), " boundaries and ", values.size(), " values");
  for (size_t i = 1; i < boundaries.size(); ++i)
    MF_CHECK(boundaries[i - 1] < boundaries[i], "PiecewiseConstantDecay: boundaries must increase, got ",
             boundaries[i - 1], " then ", boundaries[i]);
  return std::make_shared<PiecewiseConstantDecayImpl>(std::move(boundaries), std::move(values));
}

std::shared_ptr<LearningRateSchedule> CosineDecay(double initial, int64_t decay_steps, double alpha,
                                                  int64_t warmup_steps, double warmup_target) {
  check_steps("CosineDecay", decay_steps);
  MF_CHECK(warmup_steps >= 0, "CosineDecay: warmup_steps must be >= 0, got ", warmup_steps);
  MF_CHECK(warmup_target < 0 || warmup_steps > 0, "CosineDecay: warmup_target ", warmup_target,
           " is given but warmup_steps is 0; set warmup_steps");
  return std::make_shared<CosineDecayImpl>(initial, decay_steps, alpha, warmup_steps, warmup_target);
}

std::shared_ptr<LearningRateSchedule> InverseTimeDecay(double initial, int64_t decay_steps, double decay_rate,
                                                       bool staircase) {
  check_steps("InverseTimeDecay", decay_steps);
  return std::make_shared<InverseTimeDecayImpl>(initial, decay_steps, decay_rate, staircase);
}

std::shared_ptr<LearningRateSchedule> from_config(const Json& c) {
  MF_CHECK(c.is_object() && c.contains("class_name") && c["class_name"].is_string(), "a learning-rate schedule ",
           "config must be a JSON object with a string \"class_name\", got ", c.dump());
  const std::string kind = c["class_name"].get<std::string>();
  try {
    if (kind == "ExponentialDecay")
      return ExponentialDecay(c.at("initial_learning_rate").get<double>(), c.at("decay_steps").get<int64_t>(),
                              c.at("decay_rate").get<double>(), c.value("staircase", false));
    if (kind == "PiecewiseConstantDecay")
      return PiecewiseConstantDecay(c.at("boundaries").get<std::vector<int64_t>>(),
                                    c.at("values").get<std::vector<double>>());
    if (kind == "CosineDecay")
      return CosineDecay(c.at("initial_learning_rate").get<double>(), c.at("decay_steps").get<int64_t>(),
                         c.value("alpha", 0.0), c.value("warmup_steps", int64_t{0}), c.value("warmup_target", -1.0));
    if (kind == "InverseTimeDecay")
      return InverseTimeDecay(c.at("initial_learning_rate").get<double>(), c.at("decay_steps").get<int64_t>(),
                              c.at("decay_rate").get<double>(), c.value("staircase", false));
  } catch (const Json::exception& e) {
    MF_THROW("the ", kind, " schedule config ", c.dump(), " lacks a field or has one of the wrong type (", e.what(),
             ")");
  }
  MF_THROW("unknown learning-rate schedule '", kind, "'; known schedules: ExponentialDecay, PiecewiseConstantDecay, ",
           "CosineDecay, InverseTimeDecay");
}

}  // namespace meshflow::schedules
