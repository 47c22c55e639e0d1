// export_onnx: walks a model layer call by layer call (a functional graph, a Sequential stack, or the
// trace of a subclassed model's call()), emits each call through its layer's ONNX mapping, and
// writes the ModelProto with its metadata atomically.
#include <algorithm>
#include <limits>

#include "meshflow/core/error.h"
#include "meshflow/core/trace.h"
#include "meshflow/export/onnx.h"
#include "meshflow/models/saving.h"
#include "meshflow/models/version.h"
#include "onnx_builder.h"
#include "onnx_ops.h"

namespace meshflow {
namespace onnx_export {
namespace {

// Note [Batch dimension in traces]: symbolic shapes carry the batch as -1, but a few layers'
// symbolic paths compute it as 0 (a reshape of -1 rows), so dimension 0 of every traced value is
// taken to be the batch, whatever the trace says.
Shape batch_shape(Shape s) {
  if (!s.empty()) s[0] = -1;
  return s;
}

std::string known_layers() {
  std::string out;
  for (const auto& name : mapped_layers()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

class Walker {
 public:
  Walker(GraphBuilder& b, int64_t opset) : b_(b), opset_(opset) {}

  std::vector<Value> model(const Model& m, const std::string& path, const std::vector<Value>& inputs) {
    if (m.is_functional()) return graph(m.graph(), path, inputs);
    if (auto* seq = dynamic_cast<const Sequential*>(&m)) return sequential(*seq, path, inputs);
    return subclassed(m, path, inputs);
  }

 private:
  std::vector<Value> sequential(const Sequential& m, const std::string& path, const std::vector<Value>& inputs) {
    MF_CHECK(inputs.size() == 1, "ONNX export: Sequential model '", path, "' takes one input, got ", inputs.size());
    std::vector<Value> x = inputs;
    for (const auto& l : m.stack()) {
      if (dynamic_cast<const InputLayer*>(l.get())) continue;
      MF_CHECK(l->built(), "ONNX export: layer '", path, "/", l->name(), "' (", l->class_name(),
               ") is not built; call the model once (or fit it) before exporting");
      std::vector<Shape> outs;
      for (const auto& s : l->output_shapes()) outs.push_back(batch_shape(s));
      x = layer(*l, path + "/" + l->name(), x, outs);
    }
    return x;
  }

  // A subclassed model: its call() run on symbolic inputs records each layer call it makes.
  std::vector<Value> subclassed(const Model& m, const std::string& path, const std::vector<Value>& inputs) {
    for (const auto& v : inputs)
      MF_CHECK(v.mask.empty(), "ONNX export: subclassed model '", path, "' gets an input with a Keras mask; a traced ",
               "call() does not see masks, so it is not exported");
    MF_CHECK(!m.input_shapes().empty(), "ONNX export: subclassed model '", path, "' (", m.class_name(),
             ") has not been called yet, so its input shapes are unknown; call it once (or fit it) before exporting");
    MF_CHECK(m.input_shapes().size() == inputs.size(), "ONNX export: model '", path, "' takes ",
             m.input_shapes().size(), " inputs, got ", inputs.size());
    std::vector<Tensor> placeholders;
    for (size_t i = 0; i < inputs.size(); ++i)
      placeholders.push_back(symbolic(batch_shape(m.input_shapes()[i]), inputs[i].dtype));
    Tensors outs;
    try {
      NameScope scope(m.name());
      outs = const_cast<Model&>(m).call(Tensors(placeholders));  // records a graph; weights are only read
    } catch (const Error& e) {
      MF_THROW("ONNX export: subclassed model '", path, "' (", m.class_name(), "): its call() cannot be traced on ",
               "symbolic inputs: ", e.what());
    }
    return graph(Graph::from(placeholders, outs.list()), path, inputs);
  }

  std::vector<Value> graph(const Graph& g, const std::string& path, const std::vector<Value>& inputs) {
    MF_CHECK(inputs.size() == g.inputs().size(), "ONNX export: model '", path, "' takes ", g.inputs().size(),
             " inputs, got ", inputs.size());
    std::map<int, Value> env;
    for (size_t i = 0; i < inputs.size(); ++i) env[g.inputs()[i]] = inputs[i];
    for (const auto& n : g.nodes()) {
      std::vector<Value> ins;
      for (int id : n.inputs) {
        if (!env.count(id)) {
          const auto& v = g.values()[static_cast<size_t>(id)];
          MF_CHECK(v.kind == Graph::Value::Kind::Constant, "ONNX export: model '", path, "': a value of the graph ",
                   "has no producer");
          auto known = constants_.find(v.constant.impl());
          std::string name = known != constants_.end()
                                 ? known->second
                                 : b_.weight(b_.fresh(v.name.empty() ? path + "/constant" : v.name), v.constant);
          constants_[v.constant.impl()] = name;
          env[id] = Value{name, v.meta.shape, v.meta.dtype};
        }
        ins.push_back(env[id]);
      }
      std::vector<Shape> out_shapes;
      for (int o : n.outputs) out_shapes.push_back(batch_shape(g.values()[static_cast<size_t>(o)].meta.shape));
      std::vector<Value> outs;
      if (n.composite && n.payload) {
        const auto* l = static_cast<const Layer*>(n.payload.get());
        outs = layer(*l, path + "/" + l->name(), ins, out_shapes);
      } else {
        const bool scope_is_path = n.scope.empty() || path == n.scope ||
                                   (path.size() > n.scope.size() &&
                                    path.compare(path.size() - n.scope.size() - 1, std::string::npos, "/" + n.scope) == 0);
        std::string where = scope_is_path ? path : path + " (in " + n.scope + ")";
        auto names = op_node(b_, n, where, ins);
        for (size_t k = 0; k < names.size(); ++k) outs.push_back(Value{names[k], out_shapes[k], DType::F32});
      }
      MF_CHECK(outs.size() == n.outputs.size(), "ONNX export: '", path, "': a node gave ", outs.size(),
               " outputs where the trace has ", n.outputs.size());
      for (size_t k = 0; k < outs.size(); ++k) {
        outs[k].dtype = g.values()[static_cast<size_t>(n.outputs[k])].meta.dtype;
        env[n.outputs[k]] = outs[k];
      }
    }
    std::vector<Value> result;
    for (int id : g.outputs()) {
      MF_CHECK(env.count(id), "ONNX export: model '", path, "': an output is not computed from its inputs");
      result.push_back(env[id]);
    }
    return result;
  }

  std::vector<Value> layer(const Layer& l, const std::string& path, const std::vector<Value>& ins,
                           const std::vector<Shape>& out_shapes) {
    if (auto* inner = dynamic_cast<const Model*>(&l)) return model(*inner, path, ins);
    const std::string cls = l.class_name();
    const Mapping* mapping = find_mapping(cls);
    if (!mapping) return traced_layer(l, path, ins);
    MF_CHECK(opset_ >= mapping->min_opset, "ONNX export: layer '", path, "' (", cls, ") needs opset ",
             mapping->min_opset, " or newer (", mapping->why_opset, "), but opset ", opset_,
             " was asked; export with .opset = ", mapping->min_opset);
    MF_CHECK(l.dtype() == DType::F32, "ONNX export: layer '", path, "' (", cls, ") computes in ",
             dtype_name(l.dtype()), "; the exporter writes float32 models");
    LayerCall call{l, l.get_config(), path, ins, out_shapes, opset_, b_};
    std::vector<std::string> names = mapping->map(call);
    // Note [Keras masks in ONNX]: a Keras mask is a bool [batch, steps] tensor beside a value, as
    // Meshflow keeps it beside a tensor. The mappings that read masks apply them (MultiHeadAttention,
    // TransformerEncoder, GlobalAveragePooling1D) or make them (Embedding's mask_zero), merges
    // combine them, recurrent layers refuse them; any other layer passes its first input's mask on
    // when it supports masking and drops it otherwise, as Layer::compute_mask does.
    std::vector<std::string> masks = call.output_masks;
    if (masks.empty()) masks.assign(names.size(), l.supports_masking() && !ins.empty() ? ins[0].mask : "");
    std::vector<Value> outs;
    for (size_t k = 0; k < names.size(); ++k)
      outs.push_back(Value{names[k], k < out_shapes.size() ? out_shapes[k] : Shape{}, DType::F32,
                           k < masks.size() ? masks[k] : ""});
    return outs;
  }

  // Note [Custom layers in ONNX]: a layer without a mapping (a custom layer) is exported through
  // its call() run on symbolic inputs: the layers it calls record their calls and the ops it
  // applies record themselves, so a custom layer made of mapped layers and ops (seed 001's
  // matmul by a kernel, seed 000's sum and difference) exports, and anything else is an error
  // naming the layer and the op.
  std::vector<Value> traced_layer(const Layer& l, const std::string& path, const std::vector<Value>& ins) {
    for (const auto& v : ins)
      MF_CHECK(v.mask.empty(), "ONNX export: layer '", path, "' (", l.class_name(), ") has no ONNX mapping and ",
               "a Keras mask reaches it (from Embedding's mask_zero or a padding mask); a traced call() does not ",
               "see masks, so it is not exported");
    std::vector<Tensor> placeholders;
    for (const auto& v : ins) placeholders.push_back(symbolic(v.shape, v.dtype));
    try {
      Tensors outs;
      {
        NameScope scope(l.name());
        outs = const_cast<Layer&>(l).call(Tensors(placeholders));  // records a graph; weights are only read
      }
      return graph(Graph::from(placeholders, outs.list()), path, ins);
    } catch (const Error& e) {
      std::string why = e.what();
      const std::string prefix = "ONNX export: ";
      if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
      MF_THROW("ONNX export: layer '", path, "' (", l.class_name(), ") has no ONNX mapping, and its call() does ",
               "not trace to layers and ops that have one: ", why, ". Layers that export: ", known_layers());
    }
  }

  GraphBuilder& b_;
  int64_t opset_;
  std::map<const void*, std::string> constants_;  // tensors already written as initializers
};

void set_type(onnx::ValueInfoProto* info, const std::string& name, const Shape& shape, DType dtype,
              const OnnxExportOptions& o) {
  info->set_name(name);
  auto* t = info->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx_elem_type(dtype));
  auto* s = t->mutable_shape();
  for (size_t i = 0; i < shape.size(); ++i) {
    auto* d = s->add_dim();
    if (i == 0 && o.dynamic_batch) d->set_dim_param("batch");
    else if (i == 0) d->set_dim_value(o.batch_size);
    else if (shape[i] < 0) d->set_dim_param(name + "_dim" + std::to_string(i));
    else d->set_dim_value(shape[i]);
  }
}

void add_metadata(onnx::ModelProto& proto, const std::string& key, const std::string& value) {
  auto* p = proto.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

// The model's inputs: names, shapes (batch first) and dtypes.
std::vector<Value> model_inputs(const Model& m) {
  std::vector<Value> ins;
  if (m.is_functional()) {
    const auto names = m.input_names();
    for (size_t i = 0; i < names.size(); ++i) {
      const auto& meta = m.graph().values()[static_cast<size_t>(m.graph().inputs()[i])].meta;
      ins.push_back(Value{names[i], batch_shape(meta.shape), meta.dtype});
    }
    return ins;
  }
  if (auto* seq = dynamic_cast<const Sequential*>(&m)) {
    MF_CHECK(!seq->stack().empty(), "ONNX export: Sequential model '", m.name(), "' has no layers");
    const auto& first = seq->stack().front();
    Shape shape;
    if (auto* il = dynamic_cast<const InputLayer*>(first.get())) {
      shape = il->shape();
      shape.insert(shape.begin(), -1);
    } else {
      MF_CHECK(first->built() && !first->input_shapes().empty(), "ONNX export: Sequential model '", m.name(),
               "' has not been built, so its input shape is unknown; start it with an InputLayer or call it once");
      shape = first->input_shapes()[0];
    }
    return {Value{m.name() + "_input", batch_shape(shape), DType::F32}};
  }
  for (size_t i = 0; i < m.input_shapes().size(); ++i)
    ins.push_back(Value{"input_" + std::to_string(i + 1), batch_shape(m.input_shapes()[i]), DType::F32});
  return ins;
}

// The Keras-style config: {"class_name", "config"}; a Sequential's lists its layers. A subclassed
// model's call() is code, so its config holds only its own fields.
Json config_json(const Model& m) {
  if (m.is_functional()) return Json{{"class_name", "Functional"}, {"config", m.get_config()}};
  Json c = m.get_config();
  if (auto* seq = dynamic_cast<const Sequential*>(&m)) {
    c["layers"] = Json::array();
    for (const auto& l : seq->stack()) c["layers"].push_back(Json{{"class_name", l->class_name()}, {"config", l->get_config()}});
    return Json{{"class_name", "Sequential"}, {"config", c}};
  }
  return Json{{"class_name", m.class_name()}, {"config", c}};
}

Json names_json(const std::vector<std::string>& names) {
  Json j = Json::array();
  for (const auto& n : names) j.push_back(n);
  return j;
}

}  // namespace
}  // namespace onnx_export

std::string export_onnx_bytes(const Model& model, const OnnxExportOptions& options) {
  using namespace onnx_export;
  MF_CHECK(options.opset >= kOnnxMinOpset && options.opset <= kOnnxMaxOpset, "ONNX export of model '", model.name(),
           "': opset ", options.opset, " is outside what the exporter writes (", kOnnxMinOpset, " to ", kOnnxMaxOpset,
           ")");
  MF_CHECK(options.dynamic_batch || options.batch_size > 0, "ONNX export of model '", model.name(),
           "': batch_size must be positive when dynamic_batch is false, got ", options.batch_size);
  onnx::ModelProto proto;
  proto.set_ir_version(onnx::IR_VERSION);  // IR 8 (ONNX 1.12): opsets 13 to 17 are defined in it
  proto.set_producer_name("meshflow");
  proto.set_producer_version(version());
  proto.set_model_version(1);
  if (!options.doc_string.empty()) proto.set_doc_string(options.doc_string);
  auto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  onnx::GraphProto* g = proto.mutable_graph();
  g->set_name(model.name());
  GraphBuilder b(g);

  std::vector<Value> inputs = model_inputs(model);
  std::vector<std::string> output_names = model.output_names();
  std::vector<std::string> input_names;
  for (const auto& v : inputs) {
    MF_CHECK(b.fresh(v.name) == v.name, "ONNX export of model '", model.name(), "': two inputs are named '", v.name, "'");
    input_names.push_back(v.name);
    set_type(g->add_input(), v.name, v.shape, v.dtype, options);
  }
  for (const auto& n : output_names)
    MF_CHECK(b.fresh(n) == n, "ONNX export of model '", model.name(), "': the output name '", n,
             "' is used twice (by an input or another output)");

  Walker walker(b, options.opset);
  std::vector<Value> outs = walker.model(model, model.name(), inputs);
  MF_CHECK(outs.size() == output_names.size(), "ONNX export of model '", model.name(), "': the graph gives ",
           outs.size(), " outputs for ", output_names.size(), " output names");
  for (size_t i = 0; i < outs.size(); ++i) {
    auto* n = g->add_node();  // the output under its Keras name
    n->set_op_type("Identity");
    n->set_name(b.fresh(output_names[i] + "/Identity"));
    n->add_input(outs[i].name);
    n->add_output(output_names[i]);
    set_type(g->add_output(), output_names[i], outs[i].shape, outs[i].dtype, options);
  }

  add_metadata(proto, "meshflow_input_names", names_json(input_names).dump());
  add_metadata(proto, "meshflow_output_names", names_json(output_names).dump());
  add_metadata(proto, "meshflow_config", config_json(model).dump());
  const size_t bytes = proto.ByteSizeLong();
  MF_CHECK(bytes < static_cast<size_t>(std::numeric_limits<int32_t>::max()), "ONNX export of model '", model.name(),
           "': the model is ", bytes, " bytes, past protobuf's 2 GiB limit (external data is not written yet)");
  std::string out;
  MF_CHECK(proto.SerializeToString(&out), "ONNX export of model '", model.name(), "': protobuf serialization failed");
  return out;
}

void export_onnx(const Model& model, const std::string& path, const OnnxExportOptions& options) {
  MF_CHECK(!path.empty(), "export_onnx: the output path is empty");
  std::string bytes = export_onnx_bytes(model, options);  // every error is raised before the file is touched
  try {
    write_file_atomic(path, bytes);
  } catch (const Error& e) {
    MF_THROW("export_onnx: cannot write model '", model.name(), "' to '", path, "': ", e.what());
  }
}

}  // namespace meshflow
