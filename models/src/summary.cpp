// Model::summary(): the Keras 2 table, with "Connected to" for functional models.
#include <map>
#include <sstream>

#include "meshflow/core/error.h"
#include "meshflow/models/model.h"

namespace meshflow {
namespace {

// "(None, 32)"; several shapes as "[(None, 4), (None, 4)]".
std::string keras_shape(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += s[i] < 0 ? "None" : std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

std::string keras_shapes(const std::vector<Shape>& shapes) {
  if (shapes.empty()) return "multiple";
  if (shapes.size() == 1) return keras_shape(shapes[0]);
  std::string out = "[";
  for (size_t i = 0; i < shapes.size(); ++i) out += (i ? ", " : "") + keras_shape(shapes[i]);
  return out + "]";
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// Keras's print_row: each field is cut or padded to end at its column position.
std::string row(const std::vector<std::string>& fields, const std::vector<size_t>& positions) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line.back() = ' ';  // Keras replaces the last padding character, it does not add one
    line += fields[i];
    if (line.size() > positions[i]) line = line.substr(0, positions[i]);
    line += std::string(positions[i] - line.size(), ' ');
  }
  return line;
}

}  // namespace

std::string Model::summary_string() const {
  std::ostringstream os;
  summary(os);
  return os.str();
}

void Model::summary(std::ostream& os) const {
  const bool functional = functional_;
  const size_t width = functional ? 98 : 65;
  const std::vector<size_t> pos = functional ? std::vector<size_t>{32, 53, 65, 98} : std::vector<size_t>{29, 55, 65};
  std::vector<std::string> header = {"Layer (type)", "Output Shape", "Param #"};
  if (functional) header.push_back("Connected to");

  struct Row {
    std::vector<std::string> fields;
    std::vector<std::string> more_connections;
  };
  std::vector<Row> rows;

  if (functional) {
    const auto& g = *graph_;
    // Who produced each value: "layer_name[call][output]".
    std::map<int, std::string> origin;
    for (size_t i = 0; i < g.inputs().size(); ++i) origin[g.inputs()[i]] = input_names_[i] + "[0][0]";
    std::map<const Layer*, std::vector<std::string>> connections;
    for (const auto& n : g.nodes()) {
      std::string who = n.scope.empty() ? Graph::node_label(n) : n.scope;
      int64_t call = n.attrs.has("call_index") ? n.attrs.i("call_index") : 0;
      for (size_t k = 0; k < n.outputs.size(); ++k)
        origin[n.outputs[k]] = who + "[" + std::to_string(call) + "][" + std::to_string(k) + "]";
      if (n.composite) {
        auto* l = static_cast<const Layer*>(n.payload.get());
        for (int in : n.inputs)
          if (origin.count(in)) connections[l].push_back(origin[in]);
      }
    }
    for (size_t i = 0; i < g.inputs().size(); ++i) {
      const auto& v = g.values()[g.inputs()[i]];
      // tf.keras 2 prints an InputLayer's output as a list of one shape: [(None, 4)].
      rows.push_back({{input_names_[i] + " (InputLayer)", "[" + keras_shape(v.meta.shape) + "]", "0", ""}, {}});
    }
    for (const auto& l : layers()) {
      const auto& c = connections[l.get()];
      Row r{{l->name() + " (" + l->class_name() + ")", keras_shapes(l->output_shapes()), std::to_string(l->count_params()),
             c.empty() ? "" : c[0]},
            {}};
      for (size_t k = 1; k < c.size(); ++k) r.more_connections.push_back(c[k]);
      rows.push_back(r);
    }
  } else {
    auto* seq = dynamic_cast<const Sequential*>(this);
    const auto& ls = seq ? seq->stack() : sublayers();
    for (const auto& l : ls) {
      MF_CHECK(l->built(), "model '", name(), "' has not yet been built: call it on a batch of data, fit() it, or ",
               "declare its input shape (Sequential({make_input_layer({784}), ...})) before summary()");
      rows.push_back({{l->name() + " (" + l->class_name() + ")", keras_shapes(l->output_shapes()),
                       std::to_string(l->count_params())},
                      {}});
    }
  }

  int64_t trainable = 0, non_trainable = 0;
  for (const auto& w : trainable_weights()) trainable += w.numel();
  for (const auto& w : non_trainable_weights()) non_trainable += w.numel();

  os << "Model: \"" << name() << "\"\n";
  os << std::string(width, '_') << "\n";
  os << row(header, pos) << "\n";
  os << std::string(width, '=') << "\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    os << row(rows[i].fields, pos) << "\n";
    for (const auto& c : rows[i].more_connections) os << row({"", "", "", c}, pos) << "\n";
    os << std::string(width, i + 1 == rows.size() ? '=' : '_') << "\n";
  }
  if (rows.empty()) os << std::string(width, '=') << "\n";
  os << "Total params: " << with_commas(trainable + non_trainable) << "\n";
  os << "Trainable params: " << with_commas(trainable) << "\n";
  os << "Non-trainable params: " << with_commas(non_trainable) << "\n";
  os << std::string(width, '_') << "\n";
  // Placed layers (Note [Layer placement]): Keras has no column for it, so a note under the table.
  std::string placed;
  auto* seq = dynamic_cast<const Sequential*>(this);
  for (const auto& l : functional ? layers() : (seq ? seq->stack() : sublayers()))
    if (l->device()) placed += (placed.empty() ? "" : ", ") + l->name() + " on " + l->device()->str();
  if (!placed.empty()) os << "Devices: " << placed << "\n";
}

}  // namespace meshflow
