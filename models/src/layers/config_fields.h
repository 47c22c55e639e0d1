// Options fields in layer configs: how each kind of field is written and read, and the two walks
// over an options struct's field list that get_config and from_config share.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common.h"
#include "meshflow/models/layers/activations.h"

namespace meshflow::layers::detail {

// Note [One field list per options struct]: each options struct has one `fields(Options& o, F&& f)`,
// next to its layer, that calls f(key, field) for every option the layer's config holds.
// get_config writes through it (write_fields) and from_config reads through it (read_fields), so
// adding an option touches one list and the two directions cannot drift apart. A field is a
// member of the struct, or one of the small wrappers below when its config form is not its C++
// type's. A key missing from a config keeps the struct's default. Not listed: name, trainable and
// dtype (Layer::get_config writes them from the layer, read_common reads them), and required
// arguments such as Dense's units, which each layer writes and reads itself. The walks find
// `fields` by argument-dependent lookup, so it must sit in the struct's own namespace
// (meshflow::layers), not in an anonymous one.

// Bools, numbers and strings are stored as they are; a value of another JSON type is an error.
template <typename T>
concept StoredAsIs = std::is_arithmetic_v<T> || std::same_as<T, std::string>;

template <StoredAsIs T>
Json field_to_json(const T& v) {
  return v;
}
template <StoredAsIs T>
void field_from_json(const Json& c, const char* key, T& v) {
  v = c.value(key, v);
}

// A regularizer as Keras writes it ({"class_name", "config"}), or null.
inline Json field_to_json(const std::shared_ptr<Regularizer>& r) { return regularizer_config(r); }
inline void field_from_json(const Json& c, const char* key, std::shared_ptr<Regularizer>& r) {
  r = regularizer_from_config(c.value(key, Json()));
}

// A size or a pair, written [a, b]; read from 3 or [3, 5].
inline Json field_to_json(const Int2& v) { return int2_config(v); }
inline void field_from_json(const Json& c, const char* key, Int2& v) {
  if (c.contains(key)) v = int2_from_config(c[key]);
}

// A list of axes; a single integer reads as a list of one.
inline Json field_to_json(const std::vector<int64_t>& v) { return v; }
inline void field_from_json(const Json& c, const char* key, std::vector<int64_t>& v) {
  if (c.contains(key))
    v = c[key].is_array() ? c[key].get<std::vector<int64_t>>() : std::vector<int64_t>{c[key].get<int64_t>()};
}

// A seed, null when unset; a value that is not an integer reads as unset.
inline Json field_to_json(const std::optional<uint64_t>& v) { return v ? Json(*v) : Json(nullptr); }
inline void field_from_json(const Json& c, const char* key, std::optional<uint64_t>& v) {
  if (c.contains(key) && c[key].is_number_integer()) v = c[key].get<uint64_t>();
}

// Wrappers for fields whose config form is not their type's ---------------------------------------

// An activation, written by the name Keras writes ("" becomes "linear").
struct ActivationName {
  std::string& name;
};
inline Json field_to_json(const ActivationName& f) { return activations::canonical_name(f.name); }
inline void field_from_json(const Json& c, const char* key, const ActivationName& f) {
  f.name = c.value(key, f.name);
}

// A 1-D size, written as Keras writes it, a list of one ([2]); read from 2 or [2].
struct OneElementList {
  int64_t& value;
};
inline Json field_to_json(const OneElementList& f) { return Json::array({f.value}); }
inline void field_from_json(const Json& c, const char* key, const OneElementList& f) {
  if (c.contains(key)) f.value = int1_from_config(c[key]);
}

// An axis, written as an integer; a list (Keras's axis=[3]) reads as its first element.
struct FirstOfList {
  int64_t& value;
};
inline Json field_to_json(const FirstOfList& f) { return f.value; }
inline void field_from_json(const Json& c, const char* key, const FirstOfList& f) {
  if (c.contains(key)) f.value = c[key].is_array() ? c[key].at(0).get<int64_t>() : c[key].get<int64_t>();
}

// A length where a negative value means unset, written null; a value that is not an integer
// reads as unset.
struct NullIfNegative {
  int64_t& value;
};
inline Json field_to_json(const NullIfNegative& f) { return f.value < 0 ? Json(nullptr) : Json(f.value); }
inline void field_from_json(const Json& c, const char* key, const NullIfNegative& f) {
  if (c.contains(key) && c[key].is_number_integer()) f.value = c[key].get<int64_t>();
}

// A pair where null (Keras's None) reads as unset, keeping the default.
struct NullIsDefault {
  Int2& value;
};
inline Json field_to_json(const NullIsDefault& f) { return int2_config(f.value); }
inline void field_from_json(const Json& c, const char* key, const NullIsDefault& f) {
  if (c.contains(key) && !c[key].is_null()) f.value = int2_from_config(c[key]);
}

// The two walks -----------------------------------------------------------------------------------

// Writes every listed field of o into the config c.
template <typename O>
void write_fields(Json& c, const O& o) {
  // The lists take a mutable struct so that reading can share them; this walk only reads it.
  fields(const_cast<O&>(o), [&c](const char* key, auto&& field) { c[key] = field_to_json(field); });
}

// Reads every listed field of o that the config c holds.
template <typename O>
void read_fields(const Json& c, O& o) {
  fields(o, [&c](const char* key, auto&& field) { field_from_json(c, key, field); });
}

}  // namespace meshflow::layers::detail
