// Writes the export test fixtures: for each model of export_zoo, NAME.onnx (export_onnx, opset 17,
// dynamic batch; four models also as NAME_opset13.onnx) and NAME.json with seeded inputs at batch
// sizes 1 and 7 and Model::predict's outputs on them, which tests/export/run_onnxruntime.js compares
// with ONNX Runtime's; browser/fmnist_cnn_images.json for the browser test. Two models are also
// saved with Model::save (saved/NAME) for the meshflow-export test.
//   export_models OUT_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "export_zoo.h"
#include "meshflow/export/onnx.h"

namespace mf = meshflow;

namespace {

mf::Json tensor_json(const std::string& name, const mf::Tensor& t) {
  mf::Tensor h = t.to(mf::Device()).contiguous();
  mf::Json j{{"name", name}, {"shape", h.shape()}};
  if (h.dtype() == mf::DType::I64) {
    j["dtype"] = "int64";
    j["data"] = h.to_vector<int64_t>();
  } else if (h.dtype() == mf::DType::Bool) {
    j["dtype"] = "bool";
    std::vector<int> v;
    for (double x : h.to(mf::DType::F64).to_vector<double>()) v.push_back(x != 0.0);
    j["data"] = v;
  } else {
    j["dtype"] = "float32";
    j["data"] = h.to(mf::DType::F32).to_vector<float>();
  }
  return j;
}

mf::Tensor make_input(const export_zoo::InputSpec& spec, int64_t batch, mf::Generator& gen) {
  mf::Shape shape{batch};
  for (int64_t d : spec.shape) shape.push_back(d < 0 ? spec.length : d);
  if (spec.vocab > 0) return mf::randint(0, spec.vocab, shape, {.dtype = mf::DType::I64}, &gen).to(spec.dtype);
  if (spec.dtype == mf::DType::Bool) return mf::gt(mf::rand(shape, {}, &gen), mf::scalar_tensor(0.3));
  return spec.image ? mf::rand(shape, {}, &gen) : mf::randn(shape, {}, &gen);
}

const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

// One short epoch on 4,000 training images, so the browser test's CNN classifies for real (its
// answers are compared with predict's whatever the weights; training makes the classes differ).
void train_briefly(mf::Model& model) {
  const std::string data = kFashionMnist;
  if (!std::filesystem::exists(data + "/train-images-idx3-ubyte.gz")) return;
  mf::Tensor x = mf::io::read_idx(data + "/train-images-idx3-ubyte.gz").slice(0, 0, 4000).reshape({4000, 28, 28, 1}) / 255.0;
  mf::Tensor y = mf::io::read_idx(data + "/train-labels-idx1-ubyte.gz", /*as_float=*/false).slice(0, 0, 4000);
  model.compile({.optimizer = "adam", .loss = "categorical_crossentropy"});
  model.fit(x.contiguous(), mf::one_hot(y, 10), {.epochs = 1, .batch_size = 64, .verbose = 0});
}

// Ten Fashion-MNIST test images (seeded random ones where the data set is not installed) with
// predict's probabilities and classes, for the browser test.
void write_browser_images(mf::Model& model, const std::filesystem::path& path) {
  const std::string data = kFashionMnist;
  mf::Json doc;
  mf::Tensor x;
  if (std::filesystem::exists(data + "/t10k-images-idx3-ubyte.gz")) {
    x = mf::io::read_idx(data + "/t10k-images-idx3-ubyte.gz").slice(0, 0, 10).reshape({10, 28, 28, 1}) / 255.0;
    mf::Tensor labels = mf::io::read_idx(data + "/t10k-labels-idx1-ubyte.gz", /*as_float=*/false).slice(0, 0, 10);
    doc["labels"] = labels.contiguous().to(mf::DType::I64).to_vector<int64_t>();
    doc["source"] = "fashion-mnist t10k, images 0-9";
  } else {
    mf::Generator gen(99);
    x = mf::rand({10, 28, 28, 1}, {}, &gen);
    doc["source"] = "random images (the data set is not installed)";
  }
  mf::Tensor p = model.predict(mf::Tensors{x})[0].contiguous();
  doc["input"] = tensor_json(model.input_names()[0], x.contiguous());
  doc["probabilities"] = p.to_vector<float>();
  doc["dims"] = p.shape();
  doc["classes"] = mf::argmax(p, 1).contiguous().to(mf::DType::I64).to_vector<int64_t>();
  std::ofstream(path) << doc.dump();
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: export_models OUT_DIR\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::remove_all(out);  // the folder is the fixture's own: no model of an earlier run stays
  std::filesystem::create_directories(out / "saved");
  std::filesystem::create_directories(out / "browser");
  uint64_t seed = 1;
  for (const auto& make : export_zoo::all_fixtures()) {
    mf::reset_layer_names();
    export_zoo::Fixture f = make();
    export_zoo::randomize_weights(*f.model, seed++);
    if (f.name == "fmnist_cnn") train_briefly(*f.model);
    mf::export_onnx(*f.model, (out / (f.name + ".onnx")).string(), {.opset = 17, .dynamic_batch = true});
    mf::Json doc{{"model", f.name}, {"output_names", f.model->output_names()}, {"cases", mf::Json::array()}};
    mf::Generator gen(1000 + seed);
    for (int64_t batch : {1, 7}) {
      mf::Tensors x;
      mf::Json c{{"batch", batch}, {"inputs", mf::Json::array()}, {"outputs", mf::Json::array()}};
      for (const auto& spec : f.inputs) x.push_back(make_input(spec, batch, gen));
      mf::Tensors y = f.model->predict(x, {.batch_size = 32});
      const auto in_names = f.model->is_functional() ? f.model->input_names() : std::vector<std::string>{};
      for (size_t i = 0; i < x.size(); ++i) {
        std::string name = !in_names.empty() ? in_names[i]
                           : dynamic_cast<mf::Sequential*>(f.model.get()) ? f.model->name() + "_input"
                                                                           : "input_" + std::to_string(i + 1);
        c["inputs"].push_back(tensor_json(name, x[i]));
      }
      const auto out_names = f.model->output_names();
      for (size_t i = 0; i < y.size(); ++i) c["outputs"].push_back(tensor_json(out_names[i], y[i]));
      doc["cases"].push_back(c);
    }
    std::ofstream(out / (f.name + ".json")) << doc.dump();
    // The lowest opset the exporter writes, for models without LayerNormalization.
    for (const char* low : {"fmnist_cnn", "seed_residual_batchnorm", "layers_recurrent", "layers_attention"}) {
      if (f.name != low) continue;
      mf::export_onnx(*f.model, (out / (f.name + "_opset13.onnx")).string(), {.opset = 13});
      std::ofstream(out / (f.name + "_opset13.json")) << doc.dump();
    }
    if (f.name == "fmnist_mlp" || f.name == "seed_residual_batchnorm") f.model->save((out / "saved" / f.name).string());
    if (f.name == "fmnist_cnn") write_browser_images(*f.model, out / "browser" / "fmnist_cnn_images.json");
    std::printf("exported %s (%zu inputs, %zu outputs)\n", f.name.c_str(), f.inputs.size(),
                f.model->output_names().size());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "export_models: %s\n", e.what());
  return 1;
}
