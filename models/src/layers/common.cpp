// Helpers the built-in layers share: initializer aliases, regularizer configs, rank checks.
#include "common.h"

namespace meshflow::layers::detail {

std::string canonical_initializer(const std::string& name) {
  if (name == "uniform") return "random_uniform";
  if (name == "normal") return "random_normal";
  if (name == "zero") return "zeros";
  if (name == "one") return "ones";
  return name;
}

Json regularizer_config(const std::shared_ptr<Regularizer>& r) {
  if (!r) return nullptr;
  // Keras's form {"class_name": "L2", "config": {"l2": 0.01}}, from a nested or a flat config.
  Json c = r->get_config();
  if (!c.is_object() || c.contains("config")) return c;
  std::string kind = c.contains("class_name") ? c["class_name"].get<std::string>() : "L1L2";
  c.erase("class_name");
  return Json{{"class_name", kind}, {"config", c}};
}

std::shared_ptr<Regularizer> regularizer_from_config(const Json& c) {
  if (c.is_null()) return nullptr;
  const Json& inner = c.is_object() && c.contains("config") ? c["config"] : c;
  MF_CHECK(inner.is_object(), "regularizer config must be an object like {\"class_name\": \"L2\", \"config\": ",
           "{\"l2\": 0.01}}, got ", c.dump());
  const std::string kind = c.is_object() && c.contains("class_name") ? c["class_name"].get<std::string>() : "L1L2";
  if (kind == "L1" || kind == "l1") return regularizers::L1(inner.value("l1", 0.01));
  if (kind == "L2" || kind == "l2") return regularizers::L2(inner.value("l2", 0.01));
  MF_CHECK(kind == "L1L2" || kind == "l1_l2", "unknown regularizer class '", kind, "' (known: L1, L2, L1L2)");
  return regularizers::L1L2(inner.value("l1", 0.0), inner.value("l2", 0.0));
}

Json int2_config(const Int2& v) { return Json::array({v.first, v.second}); }

Int2 int2_from_config(const Json& c) {
  if (c.is_number_integer()) return Int2(c.get<int64_t>());
  MF_CHECK(c.is_array() && c.size() == 2, "expected an integer or a pair of integers, got ", c.dump());
  return Int2(c[0].get<int64_t>(), c[1].get<int64_t>());
}

int64_t int1_from_config(const Json& c) {
  if (c.is_array()) {
    MF_CHECK(c.size() == 1, "expected an integer or a one-element list, got ", c.dump());
    return c[0].get<int64_t>();
  }
  return c.get<int64_t>();
}

const Json& required_field(const Json& c, const char* field, const char* class_name) {
  MF_CHECK(c.is_object() && c.contains(field), class_name, ".from_config: the config has no '", field, "' field: ",
           c.dump());
  return c[field];
}

void check_rank(const Layer& l, const Shape& s, int64_t min_rank, int64_t max_rank, const char* what) {
  const int64_t r = static_cast<int64_t>(s.size());
  MF_CHECK(r >= min_rank && r <= max_rank, "layer '", l.name(), "' (", l.class_name(), ") expects ", what,
           " but got an input of shape ", shape_str(s), " (rank ", r, ")");
}

Tensor to_dtype(const Tensor& x, DType dtype) { return x.dtype() == dtype ? x : cast(x, dtype); }

Tensor bias_activation(const Tensor& y, const Tensor& bias, const std::string& activation,
                       const activations::ActivationFn& fn) {
  if (bias.defined() && activation == "relu") return bias_relu(y, bias);
  return fn(bias.defined() ? y + bias : y);
}

}  // namespace meshflow::layers::detail
