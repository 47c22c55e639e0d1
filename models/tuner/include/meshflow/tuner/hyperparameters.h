// HyperParameters: the search space a hypermodel declares while it builds (Int, Float, Choice,
// Boolean, Fixed, conditional scopes) and the values one trial gives them, as in Keras Tuner.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace meshflow::tuner {

using Json = nlohmann::json;

// How Int and Float values are drawn between min and max: evenly, or evenly in log space
// ("log": min must be > 0), or denser near max ("reverse_log").
enum class Sampling { Linear, Log, ReverseLog };
Sampling sampling_from_name(const std::string& name, const std::string& parameter);
std::string sampling_name(Sampling s);

// A parameter exists only while `parent` holds one of `values`.
struct Condition {
  std::string parent;
  std::vector<Json> values;
};

// One declared parameter. Values are JSON: integers for Int, numbers for Float, and the listed
// values for Choice (strings, integers or numbers), booleans for Boolean.
struct HyperParameter {
  enum class Kind { Int, Float, Choice, Boolean, Fixed };
  Kind kind = Kind::Fixed;
  std::string name;
  double min_value = 0, max_value = 0;
  double step = 0;  // Int: >= 1; Float: 0 means continuous
  Sampling sampling = Sampling::Linear;
  std::vector<Json> values;  // Choice: the choices; Fixed: the one value
  Json default_value;
  std::vector<Condition> conditions;

  // Every value a grid visits: Int from min to max by step, Float with a step, the choices,
  // {false, true}, the fixed value. A Float without step throws naming the parameter.
  std::vector<Json> grid_values() const;
  Json random_value(std::mt19937_64& rng) const;
  // The value as a point in [0, 1] and back (Bayesian optimization works in the unit cube;
  // log sampling is linear in log space there).
  double to_unit(const Json& value) const;
  Json from_unit(double u) const;
  bool is_numeric() const { return kind == Kind::Int || kind == Kind::Float; }

  Json to_json() const;
  static HyperParameter from_json(const Json& j);
  static std::string kind_name(Kind k);
};

class HyperParameters;

// The RAII form of Keras Tuner's `with hp.conditional_scope(parent, values):`; parameters
// declared while it lives exist only when `parent` holds one of the values.
class ConditionalScope {
 public:
  ConditionalScope(HyperParameters& hp, Condition c);
  ~ConditionalScope();
  ConditionalScope(const ConditionalScope&) = delete;
  ConditionalScope& operator=(const ConditionalScope&) = delete;

 private:
  HyperParameters* hp_;
};

struct IntOptions {
  int64_t step = 1;
  std::string sampling = "linear";
  std::optional<int64_t> default_value;
};

struct FloatOptions {
  double step = 0;  // 0: continuous
  std::string sampling = "linear";
  std::optional<double> default_value;
};

class HyperParameters {
 public:
  // Declares (first call) or looks up a parameter and returns its value in this trial: the value
  // the oracle chose, or the default where it chose none, or the default while the parameter's
  // conditions do not hold. Declaring a name again with another kind, min > max, a step < 1
  // (Int), an empty choice list, or log sampling with min <= 0 throws naming the parameter.
  int64_t Int(const std::string& name, int64_t min_value, int64_t max_value, IntOptions options = {});
  double Float(const std::string& name, double min_value, double max_value, FloatOptions options = {});
  std::string Choice(const std::string& name, const std::vector<std::string>& values,
                     std::optional<std::string> default_value = std::nullopt);
  template <typename T>
    requires std::is_arithmetic_v<T>
  T Choice(const std::string& name, const std::vector<T>& values, std::optional<T> default_value = std::nullopt) {
    std::vector<Json> js(values.begin(), values.end());
    Json d = default_value ? Json(*default_value) : Json();
    return choice_json(name, js, d).template get<T>();
  }
  template <typename T>
    requires std::is_arithmetic_v<T>
  T Choice(const std::string& name, std::initializer_list<T> values, std::optional<T> default_value = std::nullopt) {
    return Choice(name, std::vector<T>(values), default_value);
  }
  std::string Choice(const std::string& name, std::initializer_list<const char*> values) {
    return Choice(name, std::vector<std::string>(values.begin(), values.end()));
  }
  bool Boolean(const std::string& name, bool default_value = false);
  int64_t Fixed(const std::string& name, int64_t value);
  int64_t Fixed(const std::string& name, int value) { return Fixed(name, static_cast<int64_t>(value)); }
  double Fixed(const std::string& name, double value);
  std::string Fixed(const std::string& name, const std::string& value);
  std::string Fixed(const std::string& name, const char* value) { return Fixed(name, std::string(value)); }
  bool Fixed(const std::string& name, bool value);

  // Keras Tuner's conditional_scope: `auto scope = hp.conditional_scope("model", {"cnn"});`.
  // The parent must be declared already, and the values must be among its possible values.
  [[nodiscard]] ConditionalScope conditional_scope(const std::string& parent, std::vector<Json> parent_values);

  // The value of a declared, active parameter (throws naming it otherwise).
  Json get(const std::string& name) const;
  bool is_active(const std::string& name) const;
  bool contains(const std::string& name) const;
  const std::vector<HyperParameter>& space() const { return space_; }
  const HyperParameter& parameter(const std::string& name) const;
  // name -> value of every active parameter.
  Json values() const;
  // Sets a value chosen by an oracle (checked against the parameter's range where it is declared).
  void set(const std::string& name, const Json& value);
  void set_values(const Json& values);
  // Adds the parameters of `other` this space lacks (an oracle learning the space from a build).
  void merge_space(const HyperParameters& other);
  // Whether `values` (a name -> value object) makes the parameter's conditions hold.
  bool conditions_hold(const HyperParameter& p, const Json& values) const;

  Json to_json() const;  // {"space": [...], "values": {...}}
  static HyperParameters from_json(const Json& j);

 private:
  friend class ConditionalScope;
  // Declares p (checked) or checks it against the declared one; returns the value to use.
  Json declare(HyperParameter p);
  Json choice_json(const std::string& name, const std::vector<Json>& values, const Json& default_value);
  const HyperParameter* find(const std::string& name) const;

  std::vector<HyperParameter> space_;
  Json values_ = Json::object();
  std::vector<Condition> scopes_;  // the conditional scopes open now
};

// A short text form of a value for tables and logs ("64", "0.001", "relu", "true").
std::string value_str(const Json& v);

}  // namespace meshflow::tuner
