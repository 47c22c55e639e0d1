// export_onnx: the errors it raises (unsupported layers named with their path, opsets, unwritable
// paths, no partial files) and what it writes (names, dynamic batch, metadata, weights as
// initializers), read back with the ONNX protobuf schema.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "export_zoo.h"
#include "meshflow/export/onnx.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace fs = std::filesystem;

namespace {

// Its call() applies an op with no ONNX mapping (a reshape outside any layer).
class MyCustomLayer : public mf::Layer {
 public:
  mf::Tensor call(const mf::Tensor& x) override { return mf::relu(x).reshape({-1, 3, 1}); }
};

// This process's scratch folder, removed when the tests end.
struct ScratchRoot {
  fs::path path = fs::temp_directory_path() / ("meshflow_export_test_" + std::to_string(::getpid()));
  ~ScratchRoot() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};
const ScratchRoot kScratch;

// An empty scratch folder per test.
fs::path scratch(const std::string& name) {
  fs::path p = kScratch.path / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mf::Error& e) {
    return e.what();
  }
  return "(no error)";
}

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

std::shared_ptr<mf::Model> nested_with_custom_layer() {
  mf::reset_layer_names();
  auto in = mf::Input({4});
  auto x = L::Dense(3)(in);
  x = mf::make_layer<MyCustomLayer>()(x);
  auto inner = std::make_shared<mf::Model>(mf::Tensors{in}, mf::Tensors{x}, mf::LayerOptions{.name = "block"});
  auto outer_in = mf::Input({4});
  auto y = L::Dense(2)(L::Flatten()((*inner)(outer_in)));
  return std::make_shared<mf::Model>(mf::Tensors{outer_in}, mf::Tensors{y}, mf::LayerOptions{.name = "outer"});
}

TEST(OnnxExport, UnsupportedLayerIsNamedWithItsPathAndNothingIsWritten) {
  auto model = nested_with_custom_layer();
  fs::path dir = scratch("unsupported");
  fs::path target = dir / "model.onnx";
  std::string err = error_of([&] { mf::export_onnx(*model, target.string()); });
  std::printf("the error users see: %s\n", err.c_str());
  EXPECT_NE(err.find("MyCustomLayer"), std::string::npos) << err;
  EXPECT_NE(err.find("'outer/block/my_custom_layer'"), std::string::npos) << err;
  EXPECT_NE(err.find("has no ONNX mapping"), std::string::npos) << err;
  EXPECT_NE(err.find("op 'reshape'"), std::string::npos) << err;
  EXPECT_TRUE(listing(dir).empty()) << "a failed export left files behind";

  // An existing file keeps its bytes when the export fails.
  std::ofstream(target) << "previous model";
  EXPECT_THROW(mf::export_onnx(*model, target.string()), mf::Error);
  std::ifstream in(target);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "previous model");
  EXPECT_EQ(listing(dir), std::set<std::string>{"model.onnx"});
}

TEST(OnnxExport, OpsOutsideLayersWithoutAMappingAreNamed) {
  mf::reset_layer_names();
  auto in = mf::Input({3, 4});
  auto y = L::Dense(2)(in.permute({0, 2, 1}));
  mf::Model model({in}, {y}, {.name = "permuting"});
  std::string err = error_of([&] { mf::export_onnx_bytes(model); });
  EXPECT_NE(err.find("op 'permute'"), std::string::npos) << err;
  EXPECT_NE(err.find("permuting"), std::string::npos) << err;
}

TEST(OnnxExport, OpsetBelowWhatALayerNeedsIsNamed) {
  mf::reset_layer_names();
  auto in = mf::Input({6});
  auto y = L::LayerNormalization({.name = "norm"})(L::Dense(4)(in));
  mf::Model model({in}, {y}, {.name = "net"});
  std::string err = error_of([&] { mf::export_onnx_bytes(model, {.opset = 16}); });
  EXPECT_NE(err.find("'net/norm' (LayerNormalization) needs opset 17"), std::string::npos) << err;
  EXPECT_NE(err.find("opset 16 was asked"), std::string::npos) << err;
  err = error_of([&] { mf::export_onnx_bytes(model, {.opset = 12}); });
  EXPECT_NE(err.find("opset 12 is outside what the exporter writes (13 to 17)"), std::string::npos) << err;
  err = error_of([&] { mf::export_onnx_bytes(model, {.opset = 18}); });
  EXPECT_NE(err.find("opset 18"), std::string::npos) << err;
  // Without the LayerNormalization, opset 13 is enough.
  mf::Model dense_only({in}, {L::Dense(2)(in)});
  EXPECT_EQ(parse(mf::export_onnx_bytes(dense_only, {.opset = 13})).opset_import(0).version(), 13);
}

TEST(OnnxExport, UnwritablePathsAreNamedAndLeaveNothing) {
  mf::reset_layer_names();
  auto in = mf::Input({3});
  mf::Model model({in}, {L::Dense(2)(in)});
  fs::path dir = scratch("unwritable");
  std::string missing = (dir / "no_such_folder" / "m.onnx").string();
  std::string err = error_of([&] { mf::export_onnx(model, missing); });
  EXPECT_NE(err.find("'" + missing + "'"), std::string::npos) << err;
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
  fs::create_directories(dir / "a_folder");
  err = error_of([&] { mf::export_onnx(model, (dir / "a_folder").string()); });
  EXPECT_NE(err.find("a_folder"), std::string::npos) << err;
  EXPECT_EQ(listing(dir), std::set<std::string>{"a_folder"});
  EXPECT_TRUE(listing(dir / "a_folder").empty());
  err = error_of([&] { mf::export_onnx(model, ""); });
  EXPECT_NE(err.find("empty"), std::string::npos) << err;
}

class Subclassed : public mf::Model {
 public:
  Subclassed() : mf::Model({.name = "sub"}), dense_(L::Dense(2)) {}
  mf::Tensor call(const mf::Tensor& x) override { return dense_(x); }

 private:
  mf::LayerRef<L::DenseLayer> dense_;
};

TEST(OnnxExport, UnbuiltModelsAndMasksAreRefused) {
  mf::reset_layer_names();
  mf::Sequential seq({L::Dense(3)}, {.name = "fresh"});
  std::string err = error_of([&] { mf::export_onnx_bytes(seq); });
  EXPECT_NE(err.find("'fresh' has not been built"), std::string::npos) << err;
  Subclassed sub;
  err = error_of([&] { mf::export_onnx_bytes(sub); });
  EXPECT_NE(err.find("subclassed model 'sub'"), std::string::npos) << err;
  EXPECT_NE(err.find("has not been called yet"), std::string::npos) << err;
  sub(mf::zeros({1, 5}));
  onnx::ModelProto m = parse(mf::export_onnx_bytes(sub));
  EXPECT_EQ(m.graph().input(0).name(), "input_1");
  EXPECT_EQ(m.graph().input(0).type().tensor_type().shape().dim(1).dim_value(), 5);

  // A Keras mask reaching a layer that would apply it differently in ONNX (a recurrent layer's
  // masked steps keep the previous state) is refused; the masks the exporter applies are tested
  // against predict by the onnxruntime test (masked_text).
  auto ids = mf::Input({5}, {.dtype = mf::DType::I64});
  auto e = L::Embedding(10, 4, {.mask_zero = true, .name = "tokens"})(ids);
  mf::Model masked({ids}, {L::LSTM(3, {.name = "rnn"})(L::Dense(4)(e))}, {.name = "m"});
  err = error_of([&] { mf::export_onnx_bytes(masked); });
  EXPECT_NE(err.find("'m/rnn' (LSTM)"), std::string::npos) << err;
  EXPECT_NE(err.find("a Keras mask reaches it"), std::string::npos) << err;
  mf::Model pooled({ids}, {L::GlobalAveragePooling1D()(e)});
  onnx::ModelProto proto = parse(mf::export_onnx_bytes(pooled));
  bool divides = false;
  for (const auto& n : proto.graph().node()) divides = divides || n.op_type() == "Div";
  EXPECT_TRUE(divides) << "the masked mean (sum(x m) / sum(m)) is missing";
}

TEST(OnnxExport, NamesBatchAndMetadata) {
  mf::reset_layer_names();
  auto inp = mf::Input({4}, {.name = "features"});
  auto h = L::Dense(3, {.activation = "relu"})(inp);
  auto out_reg = L::Dense(1, {.name = "regression"})(h);
  auto out_clf = L::Dense(5, {.activation = "softmax", .name = "classification"})(h);
  mf::Model model({inp}, {out_reg, out_clf}, {.name = "two_heads"});
  onnx::ModelProto m = parse(mf::export_onnx_bytes(model, {.opset = 15, .doc_string = "test model"}));
  EXPECT_EQ(m.producer_name(), "meshflow");
  EXPECT_EQ(m.producer_version(), mf::version());
  EXPECT_EQ(m.doc_string(), "test model");
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).version(), 15);
  EXPECT_EQ(m.graph().name(), "two_heads");
  ASSERT_EQ(m.graph().input_size(), 1);
  EXPECT_EQ(m.graph().input(0).name(), "features");
  const auto& in_shape = m.graph().input(0).type().tensor_type().shape();
  ASSERT_EQ(in_shape.dim_size(), 2);
  EXPECT_EQ(in_shape.dim(0).dim_param(), "batch");
  EXPECT_EQ(in_shape.dim(1).dim_value(), 4);
  ASSERT_EQ(m.graph().output_size(), 2);
  EXPECT_EQ(m.graph().output(0).name(), "regression");
  EXPECT_EQ(m.graph().output(1).name(), "classification");
  EXPECT_EQ(m.graph().output(1).type().tensor_type().shape().dim(1).dim_value(), 5);
  std::map<std::string, std::string> props;
  for (const auto& p : m.metadata_props()) props[p.key()] = p.value();
  EXPECT_EQ(props["meshflow_input_names"], R"(["features"])");
  EXPECT_EQ(props["meshflow_output_names"], R"(["regression","classification"])");
  mf::Json config = mf::Json::parse(props["meshflow_config"]);
  EXPECT_EQ(config["class_name"], "Functional");
  EXPECT_EQ(config["config"]["name"], "two_heads");
  EXPECT_EQ(config["config"]["output_names"], mf::Json::parse(R"(["regression","classification"])"));

  onnx::ModelProto fixed = parse(mf::export_onnx_bytes(model, {.dynamic_batch = false, .batch_size = 3}));
  EXPECT_EQ(fixed.graph().input(0).type().tensor_type().shape().dim(0).dim_value(), 3);
  EXPECT_EQ(fixed.graph().output(0).type().tensor_type().shape().dim(0).dim_value(), 3);
}

TEST(OnnxExport, WeightsAreInitializersWithTheirValues) {
  mf::reset_layer_names();
  auto in = mf::Input({6});
  auto dense = L::Dense(4, {.name = "dense"});
  mf::Model model({in}, {dense(in)});
  export_zoo::randomize_weights(model, 7);
  onnx::ModelProto m = parse(mf::export_onnx_bytes(model));
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : m.graph().initializer()) inits[t.name()] = &t;
  ASSERT_TRUE(inits.count("dense/kernel"));
  ASSERT_TRUE(inits.count("dense/bias"));
  const onnx::TensorProto& k = *inits["dense/kernel"];
  ASSERT_EQ(k.dims_size(), 2);
  EXPECT_EQ(k.dims(0), 6);
  EXPECT_EQ(k.dims(1), 4);
  EXPECT_EQ(k.data_type(), onnx::TensorProto::FLOAT);
  std::vector<float> want = dense->kernel().contiguous().to_vector<float>();
  ASSERT_EQ(k.raw_data().size(), want.size() * sizeof(float));
  EXPECT_EQ(0, std::memcmp(k.raw_data().data(), want.data(), k.raw_data().size()));
  std::vector<float> bias = dense->bias().contiguous().to_vector<float>();
  EXPECT_EQ(0, std::memcmp(inits["dense/bias"]->raw_data().data(), bias.data(), bias.size() * sizeof(float)));
  EXPECT_NE(bias[0], 0.0f);  // randomized, so a dropped bias would show
}

TEST(OnnxExport, SplitWeightsAreRefused) {
  mf::reset_layer_names();
  auto in = mf::Input({6});
  auto dense = L::Dense(4, {.name = "dense"});
  mf::Model model({in}, {dense(in)}, {.name = "sharded"});
  mf::Variable bias = dense->bias();  // copies share the variable
  bias.set_slice_of({8}, 0);          // as ZeRO-3 leaves a weight: this device's elements only
  std::string err = error_of([&] { mf::export_onnx_bytes(model); });
  EXPECT_NE(err.find("'sharded/dense' (Dense)"), std::string::npos) << err;
  EXPECT_NE(err.find("weight 'dense/bias' is split across devices"), std::string::npos) << err;
}

TEST(OnnxExport, EveryZooModelExports) {
  for (const auto& make : export_zoo::all_fixtures()) {
    mf::reset_layer_names();
    export_zoo::Fixture f = make();
    onnx::ModelProto m;
    ASSERT_NO_THROW(m = parse(mf::export_onnx_bytes(*f.model))) << f.name;
    EXPECT_EQ(m.graph().input_size(), static_cast<int>(f.inputs.size())) << f.name;
    EXPECT_EQ(m.graph().output_size(), static_cast<int>(f.model->output_names().size())) << f.name;
    EXPECT_GT(m.graph().node_size(), 0) << f.name;
  }
}

}  // namespace
