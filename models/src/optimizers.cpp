// SGD, Adam, AdamW, RMSprop, Adagrad with Keras's defaults, each one fused kernel per variable.
#include <algorithm>
#include <cctype>

#include "meshflow/core/error.h"
#include "meshflow/core/optim.h"
#include "optimizer_base.h"

namespace meshflow::optimizers {
namespace {

using detail::SlotOptimizer;

class SGDImpl : public SlotOptimizer {
 public:
  explicit SGDImpl(SGDOptions o)
      : SlotOptimizer("SGD", o, 0.01, o.momentum != 0.0 ? std::vector<std::string>{"momentum"}
                                                         : std::vector<std::string>{}),
        o_(o) {
    MF_CHECK(o.momentum >= 0 && o.momentum <= 1, "SGD: momentum must be in [0, 1], got ", o.momentum);
  }
  Json get_config() const override {
    Json c = Optimizer::get_config();
    c["momentum"] = o_.momentum;
    c["nesterov"] = o_.nesterov;
    return c;
  }

 protected:
  void update(Variable& var, const Tensor& grad, double lr, int64_t) override {
    Tensor none;
    Tensor& buf = o_.momentum != 0.0 ? slots_for(var)[0] : none;
    optim::sgd_update_(var, grad, buf, lr, o_.momentum, o_.nesterov);
  }

 private:
  SGDOptions o_;
};

std::vector<std::string> adam_slots(bool amsgrad) {
  std::vector<std::string> s{"momentum", "velocity"};
  if (amsgrad) s.push_back("velocity_hat");
  return s;
}

class AdamImpl : public SlotOptimizer {
 public:
  AdamImpl(std::string name, AdamOptions o, double weight_decay)
      : SlotOptimizer(std::move(name), o, 0.001, adam_slots(o.amsgrad)), o_(o), weight_decay_(weight_decay) {
    MF_CHECK(o.beta_1 >= 0 && o.beta_1 < 1 && o.beta_2 >= 0 && o.beta_2 < 1, this->name(),
             ": beta_1 and beta_2 must be in [0, 1), got ", o.beta_1, " and ", o.beta_2);
    MF_CHECK(o.epsilon >= 0 && weight_decay >= 0, this->name(), ": epsilon and weight_decay must be >= 0");
  }
  Json get_config() const override {
    Json c = Optimizer::get_config();
    c["beta_1"] = o_.beta_1;
    c["beta_2"] = o_.beta_2;
    c["epsilon"] = o_.epsilon;
    c["amsgrad"] = o_.amsgrad;
    if (weight_decay_ > 0 || name() == "adamw") c["weight_decay"] = weight_decay_;
    return c;
  }

 protected:
  void update(Variable& var, const Tensor& grad, double lr, int64_t step) override {
    auto& s = slots_for(var);
    Tensor none;
    optim::adam_update_(var, grad, s[0], s[1], o_.amsgrad ? s[2] : none, lr, o_.beta_1, o_.beta_2, o_.epsilon, step,
                        o_.amsgrad, weight_decay_);
  }
  // One fused call per device for the whole step, through batches kept between steps (Note
  // [Prepared Adam step]); weights placed on several devices make one batch per run of a device.
  void update_all(const std::vector<Variable>& vars, std::vector<Tensor>& grads, double lr, int64_t step) override {
    size_t used = 0, filled = 0;
    Device device;
    auto flush = [&] {
      batches_[used].resize(filled);
      batches_[used++].run(lr, o_.beta_1, o_.beta_2, o_.epsilon, step, o_.amsgrad, weight_decay_);
      filled = 0;
    };
    for (size_t i = 0; i < vars.size(); ++i) {
      if (!grads[i].defined()) continue;
      if (filled > 0 && vars[i].device() != device) flush();
      if (filled == 0) {
        device = vars[i].device();
        if (batches_.size() <= used) batches_.emplace_back();
      }
      optim::AdamBatch& b = batches_[used];
      if (b.size() <= filled) b.resize(filled + 1);
      auto& s = slots_for(vars[i]);
      b.bind(filled++, vars[i], std::move(grads[i]), s[0], s[1], o_.amsgrad ? s[2] : Tensor());
    }
    if (filled > 0) flush();
    batches_.resize(used);
  }

 private:
  AdamOptions o_;
  double weight_decay_;
  std::vector<optim::AdamBatch> batches_;
};

std::vector<std::string> rmsprop_slots(const RMSpropOptions& o) {
  std::vector<std::string> s{"velocity"};
  if (o.momentum > 0) s.push_back("momentum");
  if (o.centered) s.push_back("average_gradient");
  return s;
}

class RMSpropImpl : public SlotOptimizer {
 public:
  explicit RMSpropImpl(RMSpropOptions o) : SlotOptimizer("rmsprop", o, 0.001, rmsprop_slots(o)), o_(o) {
    MF_CHECK(o.rho >= 0 && o.rho < 1, "rmsprop: rho must be in [0, 1), got ", o.rho);
    MF_CHECK(o.momentum >= 0 && o.epsilon >= 0, "rmsprop: momentum and epsilon must be >= 0");
  }
  Json get_config() const override {
    Json c = Optimizer::get_config();
    c["rho"] = o_.rho;
    c["momentum"] = o_.momentum;
    c["epsilon"] = o_.epsilon;
    c["centered"] = o_.centered;
    return c;
  }

 protected:
  void update(Variable& var, const Tensor& grad, double lr, int64_t) override {
    auto& s = slots_for(var);
    Tensor none;
    size_t next = 1;
    Tensor& mom = o_.momentum > 0 ? s[next++] : none;
    Tensor& mg = o_.centered ? s[next] : none;
    optim::rmsprop_update_(var, grad, s[0], mg, mom, lr, o_.rho, o_.momentum, o_.epsilon, o_.centered);
  }

 private:
  RMSpropOptions o_;
};

class AdagradImpl : public SlotOptimizer {
 public:
  explicit AdagradImpl(AdagradOptions o) : SlotOptimizer("adagrad", o, 0.001, {"accumulator"}), o_(o) {
    MF_CHECK(o.initial_accumulator_value >= 0 && o.epsilon >= 0,
             "adagrad: initial_accumulator_value and epsilon must be >= 0, got ", o.initial_accumulator_value, " and ",
             o.epsilon);
  }
  Json get_config() const override {
    Json c = Optimizer::get_config();
    c["initial_accumulator_value"] = o_.initial_accumulator_value;
    c["epsilon"] = o_.epsilon;
    return c;
  }

 protected:
  double initial_value(size_t) const override { return o_.initial_accumulator_value; }
  void update(Variable& var, const Tensor& grad, double lr, int64_t) override {
    optim::adagrad_update_(var, grad, slots_for(var)[0], lr, o_.epsilon);
  }

 private:
  AdagradOptions o_;
};

}  // namespace

std::shared_ptr<Optimizer> SGD(SGDOptions options) { return std::make_shared<SGDImpl>(options); }
std::shared_ptr<Optimizer> Adam(AdamOptions options) { return std::make_shared<AdamImpl>("adam", options, 0.0); }
std::shared_ptr<Optimizer> AdamW(AdamWOptions options) {
  return std::make_shared<AdamImpl>("adamw", options, options.weight_decay);
}
std::shared_ptr<Optimizer> RMSprop(RMSpropOptions options) { return std::make_shared<RMSpropImpl>(options); }
std::shared_ptr<Optimizer> Adagrad(AdagradOptions options) { return std::make_shared<AdagradImpl>(options); }

std::shared_ptr<Optimizer> get(const std::string& name) {
  std::string key = name;
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (key == "sgd") return SGD();
  if (key == "adam") return Adam();
  if (key == "adamw") return AdamW();
  if (key == "rmsprop") return RMSprop();
  if (key == "adagrad") return Adagrad();
  MF_THROW("unknown optimizer '", name, "'; known optimizers: sgd, adam, adamw, rmsprop, adagrad");
}

namespace {

// Reads the options every optimizer shares, then the named fields into `o`.
template <typename Options>
Options options_from(const Json& c) {
  Options o;
  if (c.contains("learning_rate")) {
    const Json& lr = c["learning_rate"];
    if (lr.is_object()) o.schedule = schedules::from_config(lr);
    else o.learning_rate = lr.get<double>();
  }
  o.clipnorm = c.value("clipnorm", 0.0);
  o.clipvalue = c.value("clipvalue", 0.0);
  o.global_clipnorm = c.value("global_clipnorm", 0.0);
  o.gradient_accumulation_steps = c.value("gradient_accumulation_steps", int64_t{1});
  return o;
}

}  // namespace

std::shared_ptr<Optimizer> from_config(const Json& c) {
  MF_CHECK(c.is_object() && c.contains("name") && c["name"].is_string(), "an optimizer config must be a JSON object ",
           "with a string \"name\", got ", c.dump());
  const std::string name = c["name"].get<std::string>();
  std::string key = name;
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  try {
    if (key == "sgd") {
      auto o = options_from<SGDOptions>(c);
      o.momentum = c.value("momentum", 0.0);
      o.nesterov = c.value("nesterov", false);
      return SGD(o);
    }
    if (key == "adam" || key == "adamw") {
      auto o = options_from<AdamWOptions>(c);
      o.beta_1 = c.value("beta_1", 0.9);
      o.beta_2 = c.value("beta_2", 0.999);
      o.epsilon = c.value("epsilon", 1e-7);
      o.amsgrad = c.value("amsgrad", false);
      if (key == "adam") return Adam(o);
      o.weight_decay = c.value("weight_decay", 0.004);
      return AdamW(o);
    }
    if (key == "rmsprop") {
      auto o = options_from<RMSpropOptions>(c);
      o.rho = c.value("rho", 0.9);
      o.momentum = c.value("momentum", 0.0);
      o.epsilon = c.value("epsilon", 1e-7);
      o.centered = c.value("centered", false);
      return RMSprop(o);
    }
    if (key == "adagrad") {
      auto o = options_from<AdagradOptions>(c);
      o.initial_accumulator_value = c.value("initial_accumulator_value", 0.1);
      o.epsilon = c.value("epsilon", 1e-7);
      return Adagrad(o);
    }
  } catch (const Json::exception& e) {
    MF_THROW("optimizer '", name, "': a field of its config ", c.dump(), " has the wrong type (", e.what(), ")");
  }
  return get(name);  // throws naming the unknown optimizer and the known ones
}

}  // namespace meshflow::optimizers
