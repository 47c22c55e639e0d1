// HyperParameters: declaring, checking, sampling and serializing a search space.
#include "meshflow/tuner/hyperparameters.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "meshflow/core/error.h"

namespace meshflow::tuner {

Sampling sampling_from_name(const std::string& name, const std::string& parameter) {
  if (name == "linear") return Sampling::Linear;
  if (name == "log") return Sampling::Log;
  if (name == "reverse_log") return Sampling::ReverseLog;
  MF_THROW("hyperparameter '", parameter, "': unknown sampling '", name, "' (expected linear, log or reverse_log)");
}

std::string sampling_name(Sampling s) {
  switch (s) {
    case Sampling::Linear: return "linear";
    case Sampling::Log: return "log";
    case Sampling::ReverseLog: return "reverse_log";
  }
  return "linear";
}

std::string HyperParameter::kind_name(Kind k) {
  switch (k) {
    case Kind::Int: return "Int";
    case Kind::Float: return "Float";
    case Kind::Choice: return "Choice";
    case Kind::Boolean: return "Boolean";
    case Kind::Fixed: return "Fixed";
  }
  return "?";
}

std::string value_str(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream os;
    os.precision(6);
    os << v.get<double>();
    return os.str();
  }
  return v.dump();
}

namespace {

// Where u in [0, 1] lands between lo and hi under the sampling (and back).
double warp(double u, double lo, double hi, Sampling s) {
  switch (s) {
    case Sampling::Linear: return lo + u * (hi - lo);
    case Sampling::Log: return lo * std::pow(hi / lo, u);
    case Sampling::ReverseLog: return hi + lo - lo * std::pow(hi / lo, 1.0 - u);
  }
  return lo;
}

double unwarp(double x, double lo, double hi, Sampling s) {
  if (hi == lo) return 0.5;
  switch (s) {
    case Sampling::Linear: return (x - lo) / (hi - lo);
    case Sampling::Log: return std::log(x / lo) / std::log(hi / lo);
    case Sampling::ReverseLog: return 1.0 - std::log((hi + lo - x) / lo) / std::log(hi / lo);
  }
  return 0;
}

int64_t int_steps(const HyperParameter& p) {
  return static_cast<int64_t>(std::floor((p.max_value - p.min_value) / p.step + 1e-9));
}

}  // namespace

std::vector<Json> HyperParameter::grid_values() const {
  std::vector<Json> out;
  switch (kind) {
    case Kind::Int:
      if (sampling == Sampling::Log && step > 1) {  // Keras: a log Int's step multiplies
        for (double v = min_value; v <= max_value + 1e-9; v *= step) out.emplace_back(static_cast<int64_t>(std::llround(v)));
      } else {
        for (int64_t i = 0; i <= int_steps(*this); ++i)
          out.emplace_back(static_cast<int64_t>(min_value) + i * static_cast<int64_t>(step));
      }
      break;
    case Kind::Float: {
      MF_CHECK(step > 0, "hyperparameter '", name, "': a Float needs a step to be searched on a grid");
      int64_t n = static_cast<int64_t>(std::floor((max_value - min_value) / step + 1e-9));
      for (int64_t i = 0; i <= n; ++i) out.emplace_back(min_value + static_cast<double>(i) * step);
      break;
    }
    case Kind::Choice: out = values; break;
    case Kind::Boolean: out = {Json(false), Json(true)}; break;
    case Kind::Fixed: out = values; break;
  }
  return out;
}

Json HyperParameter::random_value(std::mt19937_64& rng) const {
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  switch (kind) {
    case Kind::Int:
    case Kind::Float:
      if (kind == Kind::Int || step > 0) {
        auto grid = grid_values();
        if (sampling == Sampling::Linear || grid.size() < 2) {
          std::uniform_int_distribution<size_t> pick(0, grid.size() - 1);
          return grid[pick(rng)];
        }
        return from_unit(u01(rng));
      }
      return from_unit(u01(rng));
    case Kind::Choice: {
      std::uniform_int_distribution<size_t> pick(0, values.size() - 1);
      return values[pick(rng)];
    }
    case Kind::Boolean: return Json(u01(rng) < 0.5);
    case Kind::Fixed: return values.at(0);
  }
  return default_value;
}

double HyperParameter::to_unit(const Json& value) const {
  switch (kind) {
    case Kind::Int:
    case Kind::Float:
      return std::clamp(unwarp(value.get<double>(), min_value, max_value, sampling), 0.0, 1.0);
    case Kind::Choice: {
      auto it = std::find(values.begin(), values.end(), value);
      MF_CHECK(it != values.end(), "hyperparameter '", name, "': ", value.dump(), " is not one of its choices");
      return (static_cast<double>(it - values.begin()) + 0.5) / static_cast<double>(values.size());
    }
    case Kind::Boolean: return value.get<bool>() ? 0.75 : 0.25;
    case Kind::Fixed: return 0.5;
  }
  return 0;
}

Json HyperParameter::from_unit(double u) const {
  u = std::clamp(u, 0.0, 1.0);
  switch (kind) {
    case Kind::Int: {
      double x = warp(u, min_value, max_value, sampling);
      int64_t k = std::llround((x - min_value) / step);
      k = std::clamp<int64_t>(k, 0, int_steps(*this));
      return Json(static_cast<int64_t>(min_value) + k * static_cast<int64_t>(step));
    }
    case Kind::Float: {
      double x = warp(u, min_value, max_value, sampling);
      if (step > 0) x = min_value + std::round((x - min_value) / step) * step;
      return Json(std::clamp(x, min_value, max_value));
    }
    case Kind::Choice: {
      auto i = static_cast<size_t>(std::floor(u * static_cast<double>(values.size())));
      return values[std::min(i, values.size() - 1)];
    }
    case Kind::Boolean: return Json(u >= 0.5);
    case Kind::Fixed: return values.at(0);
  }
  return default_value;
}

Json HyperParameter::to_json() const {
  Json conds = Json::array();
  for (const auto& c : conditions) conds.push_back({{"parent", c.parent}, {"values", c.values}});
  return {{"kind", kind_name(kind)}, {"name", name}, {"min_value", min_value}, {"max_value", max_value},
          {"step", step}, {"sampling", sampling_name(sampling)}, {"values", values},
          {"default", default_value}, {"conditions", conds}};
}

HyperParameter HyperParameter::from_json(const Json& j) {
  HyperParameter p;
  std::string k = j.at("kind").get<std::string>();
  bool known = false;
  for (Kind c : {Kind::Int, Kind::Float, Kind::Choice, Kind::Boolean, Kind::Fixed}) {
    if (kind_name(c) == k) {
      p.kind = c;
      known = true;
    }
  }
  p.name = j.at("name").get<std::string>();
  MF_CHECK(known, "hyperparameter '", p.name, "': unknown kind '", k, "' in the saved space");
  p.min_value = j.at("min_value").get<double>();
  p.max_value = j.at("max_value").get<double>();
  p.step = j.at("step").get<double>();
  p.sampling = sampling_from_name(j.at("sampling").get<std::string>(), p.name);
  p.values = j.at("values").get<std::vector<Json>>();
  p.default_value = j.at("default");
  for (const auto& c : j.at("conditions"))
    p.conditions.push_back({c.at("parent").get<std::string>(), c.at("values").get<std::vector<Json>>()});
  return p;
}

ConditionalScope::ConditionalScope(HyperParameters& hp, Condition c) : hp_(&hp) { hp.scopes_.push_back(std::move(c)); }
ConditionalScope::~ConditionalScope() { hp_->scopes_.pop_back(); }

const HyperParameter* HyperParameters::find(const std::string& name) const {
  for (const auto& p : space_)
    if (p.name == name) return &p;
  return nullptr;
}

bool HyperParameters::contains(const std::string& name) const { return find(name) != nullptr; }

const HyperParameter& HyperParameters::parameter(const std::string& name) const {
  const auto* p = find(name);
  MF_CHECK(p, "hyperparameter '", name, "' is not declared");
  return *p;
}

bool HyperParameters::conditions_hold(const HyperParameter& p, const Json& values) const {
  for (const auto& c : p.conditions) {
    const auto* parent = find(c.parent);
    if (!parent || !conditions_hold(*parent, values)) return false;
    Json v = values.contains(c.parent) ? values.at(c.parent) : parent->default_value;
    if (std::find(c.values.begin(), c.values.end(), v) == c.values.end()) return false;
  }
  return true;
}

bool HyperParameters::is_active(const std::string& name) const {
  const auto* p = find(name);
  return p && conditions_hold(*p, values_);
}

Json HyperParameters::declare(HyperParameter p) {
  const std::string where = "hyperparameter '" + p.name + "'";
  MF_CHECK(!p.name.empty(), "a hyperparameter needs a name");
  p.conditions.insert(p.conditions.begin(), scopes_.begin(), scopes_.end());
  if (const auto* known = find(p.name)) {
    MF_CHECK(known->kind == p.kind, where, " is declared as ", HyperParameter::kind_name(known->kind),
             " and again as ", HyperParameter::kind_name(p.kind), " (a duplicate name with another type)");
  } else {
    if (p.kind == HyperParameter::Kind::Int || p.kind == HyperParameter::Kind::Float) {
      MF_CHECK(std::isfinite(p.min_value) && std::isfinite(p.max_value), where, ": min and max must be finite");
      MF_CHECK(p.min_value <= p.max_value, where, ": min_value ", p.min_value, " > max_value ", p.max_value);
      MF_CHECK(p.step >= 0, where, ": step ", p.step, " is negative");
      if (p.kind == HyperParameter::Kind::Int) MF_CHECK(p.step >= 1, where, ": an Int's step must be >= 1, not ", p.step);
      if (p.sampling != Sampling::Linear)
        MF_CHECK(p.min_value > 0, where, ": ", sampling_name(p.sampling), " sampling needs min_value > 0, not ",
                 p.min_value);
    }
    if (p.kind == HyperParameter::Kind::Choice) {
      MF_CHECK(!p.values.empty(), where, ": the choice list is empty");
      for (size_t i = 0; i < p.values.size(); ++i)
        for (size_t j = i + 1; j < p.values.size(); ++j)
          MF_CHECK(p.values[i] != p.values[j], where, ": the choice ", p.values[i].dump(), " is listed twice");
      MF_CHECK(std::find(p.values.begin(), p.values.end(), p.default_value) != p.values.end(), where,
               ": the default ", p.default_value.dump(), " is not one of the choices");
    }
    if (p.kind == HyperParameter::Kind::Int || p.kind == HyperParameter::Kind::Float) {
      double d = p.default_value.get<double>();
      MF_CHECK(d >= p.min_value && d <= p.max_value, where, ": the default ", d, " is outside [", p.min_value, ", ",
               p.max_value, "]");
    }
    for (const auto& c : p.conditions) {
      const auto* parent = find(c.parent);
      MF_CHECK(parent, where, ": its condition names '", c.parent, "', which is not declared");
    }
    space_.push_back(p);
  }
  const HyperParameter& d = *find(p.name);
  if (!conditions_hold(d, values_)) return d.default_value;
  if (!values_.contains(d.name)) values_[d.name] = d.default_value;
  return values_.at(d.name);
}

int64_t HyperParameters::Int(const std::string& name, int64_t min_value, int64_t max_value, IntOptions o) {
  HyperParameter p;
  p.kind = HyperParameter::Kind::Int;
  p.name = name;
  p.min_value = static_cast<double>(min_value);
  p.max_value = static_cast<double>(max_value);
  p.step = static_cast<double>(o.step);
  p.sampling = sampling_from_name(o.sampling, name);
  p.default_value = Json(o.default_value.value_or(min_value));
  return declare(std::move(p)).get<int64_t>();
}

double HyperParameters::Float(const std::string& name, double min_value, double max_value, FloatOptions o) {
  HyperParameter p;
  p.kind = HyperParameter::Kind::Float;
  p.name = name;
  p.min_value = min_value;
  p.max_value = max_value;
  p.step = o.step;
  p.sampling = sampling_from_name(o.sampling, name);
  p.default_value = Json(o.default_value.value_or(min_value));
  return declare(std::move(p)).get<double>();
}

Json HyperParameters::choice_json(const std::string& name, const std::vector<Json>& values, const Json& default_value) {
  HyperParameter p;
  p.kind = HyperParameter::Kind::Choice;
  p.name = name;
  p.values = values;
  p.default_value = default_value.is_null() && !values.empty() ? values.front() : default_value;
  return declare(std::move(p));
}

std::string HyperParameters::Choice(const std::string& name, const std::vector<std::string>& values,
                                    std::optional<std::string> default_value) {
  std::vector<Json> js(values.begin(), values.end());
  return choice_json(name, js, default_value ? Json(*default_value) : Json()).get<std::string>();
}

bool HyperParameters::Boolean(const std::string& name, bool default_value) {
  HyperParameter p;
  p.kind = HyperParameter::Kind::Boolean;
  p.name = name;
  p.default_value = default_value;
  return declare(std::move(p)).get<bool>();
}

namespace {
HyperParameter fixed(const std::string& name, Json v) {
  HyperParameter p;
  p.kind = HyperParameter::Kind::Fixed;
  p.name = name;
  p.values = {v};
  p.default_value = v;
  return p;
}
}  // namespace

int64_t HyperParameters::Fixed(const std::string& name, int64_t value) { return declare(fixed(name, value)).get<int64_t>(); }
double HyperParameters::Fixed(const std::string& name, double value) { return declare(fixed(name, value)).get<double>(); }
std::string HyperParameters::Fixed(const std::string& name, const std::string& value) {
  return declare(fixed(name, value)).get<std::string>();
}
bool HyperParameters::Fixed(const std::string& name, bool value) { return declare(fixed(name, value)).get<bool>(); }

ConditionalScope HyperParameters::conditional_scope(const std::string& parent, std::vector<Json> parent_values) {
  const auto* p = find(parent);
  MF_CHECK(p, "conditional_scope: the parent hyperparameter '", parent, "' is not declared");
  MF_CHECK(!parent_values.empty(), "conditional_scope on '", parent, "': no values given");
  if (p->kind == HyperParameter::Kind::Choice || p->kind == HyperParameter::Kind::Boolean ||
      p->kind == HyperParameter::Kind::Fixed) {
    auto possible = p->grid_values();
    for (const auto& v : parent_values)
      MF_CHECK(std::find(possible.begin(), possible.end(), v) != possible.end(), "conditional_scope on '", parent,
               "': ", v.dump(), " is not a value it can take");
  }
  return ConditionalScope(*this, Condition{parent, std::move(parent_values)});
}

Json HyperParameters::get(const std::string& name) const {
  const auto& p = parameter(name);
  MF_CHECK(conditions_hold(p, values_), "hyperparameter '", name, "' is not active (its conditions do not hold)");
  return values_.contains(name) ? values_.at(name) : p.default_value;
}

Json HyperParameters::values() const {
  Json out = Json::object();
  for (const auto& p : space_)
    if (conditions_hold(p, values_)) out[p.name] = values_.contains(p.name) ? values_.at(p.name) : p.default_value;
  return out;
}

void HyperParameters::set(const std::string& name, const Json& value) {
  if (const auto* p = find(name)) {
    bool ok = true;
    switch (p->kind) {
      case HyperParameter::Kind::Int:
        ok = value.is_number_integer() && value.get<double>() >= p->min_value && value.get<double>() <= p->max_value;
        if (ok && !(p->sampling == Sampling::Log && p->step > 1))
          ok = (value.get<int64_t>() - static_cast<int64_t>(p->min_value)) % static_cast<int64_t>(p->step) == 0;
        break;
      case HyperParameter::Kind::Float:
        ok = value.is_number() && value.get<double>() >= p->min_value - 1e-12 && value.get<double>() <= p->max_value + 1e-12;
        break;
      case HyperParameter::Kind::Choice:
      case HyperParameter::Kind::Fixed:
        ok = std::find(p->values.begin(), p->values.end(), value) != p->values.end();
        break;
      case HyperParameter::Kind::Boolean: ok = value.is_boolean(); break;
    }
    MF_CHECK(ok, "hyperparameter '", name, "': ", value.dump(), " is not a value of this ",
             HyperParameter::kind_name(p->kind));
  }
  values_[name] = value;
}

void HyperParameters::set_values(const Json& values) {
  MF_CHECK(values.is_object(), "HyperParameters::set_values: expected an object of name -> value");
  for (const auto& [k, v] : values.items()) set(k, v);
}

void HyperParameters::merge_space(const HyperParameters& other) {
  for (const auto& p : other.space_)
    if (!find(p.name)) space_.push_back(p);
}

Json HyperParameters::to_json() const {
  Json sp = Json::array();
  for (const auto& p : space_) sp.push_back(p.to_json());
  return {{"space", sp}, {"values", values_}};
}

HyperParameters HyperParameters::from_json(const Json& j) {
  HyperParameters hp;
  for (const auto& p : j.at("space")) hp.space_.push_back(HyperParameter::from_json(p));
  hp.values_ = j.value("values", Json::object());
  return hp;
}

}  // namespace meshflow::tuner
