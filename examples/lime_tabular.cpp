// Seed 004's LIME example on the breast cancer data set (Debian's python3-sklearn ships it as
// breast_cancer.csv): an MLP classifier, then
//   explainer = LimeTabularExplainer(x_train, training_labels=y_train)
//   explanation = explainer.explain_instance(x_test[0], model.predict)
// printed as a table (the notebook's bar chart, in text), and kernel SHAP values for the same row.
// Options: --quick (fewer epochs: what CI runs), --epochs N, --csv PATH, --features N, --device D.
// Exits 0 when the test accuracy beats 90% and the explanation's local linear model puts the row
// on the same side of 0.5 as the model does (it explains the class the model chose).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "example_util.h"
#include "meshflow/interpret/lime.h"

namespace mf = meshflow;
namespace L = meshflow::layers;
namespace ip = meshflow::interpret;

namespace {

// scikit-learn's names for the 30 columns (load_breast_cancer().feature_names); the CSV has none.
const std::vector<std::string> kFeatures = {
    "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness", "mean compactness",
    "mean concavity", "mean concave points", "mean symmetry", "mean fractal dimension", "radius error",
    "texture error", "perimeter error", "area error", "smoothness error", "compactness error", "concavity error",
    "concave points error", "symmetry error", "fractal dimension error", "worst radius", "worst texture",
    "worst perimeter", "worst area", "worst smoothness", "worst compactness", "worst concavity",
    "worst concave points", "worst symmetry", "worst fractal dimension"};

struct Args {
  int epochs = 60, features = 6;
  std::string csv = "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv";
  mf::Device device;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw mf::Error("option " + k + " needs a value");
      return argv[++i];
    };
    if (k == "--quick") a.epochs = 30;
    else if (k == "--epochs") a.epochs = std::stoi(value());
    else if (k == "--csv") a.csv = value();
    else if (k == "--features") a.features = std::stoi(value());
    else if (k == "--device") a.device = mf::Device(value());
    else throw mf::Error("unknown option '" + k + "' (expected --quick, --epochs, --csv, --features, --device)");
  }
  return a;
}

// The CSV: a header "569,30,malignant,benign", then 30 values and the label (0 malignant) per row.
void read_csv(const std::string& path, std::vector<double>& x, std::vector<int64_t>& y) {
  std::ifstream in(path);
  if (!in) throw mf::Error("cannot read " + path + " (install python3-sklearn, or pass --csv)");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::stringstream ss(line);
    std::string cell;
    std::vector<double> row;
    while (std::getline(ss, cell, ',')) row.push_back(std::stod(cell));
    if (row.size() != 31) throw mf::Error(path + ": a row with " + std::to_string(row.size()) + " values, not 31");
    x.insert(x.end(), row.begin(), row.end() - 1);
    y.push_back(static_cast<int64_t>(row.back()));
  }
}

}  // namespace

int main(int argc, char** argv) try {
  Args args = parse(argc, argv);
  mf::DeviceScope on(args.device);
  std::vector<double> xv;
  std::vector<int64_t> yv;
  read_csv(args.csv, xv, yv);
  const auto n = static_cast<int64_t>(yv.size());
  // A fixed shuffle, then 80% to train.
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = (i * 263) % n;  // 263 is prime to 569
  std::vector<double> xs;
  std::vector<int64_t> ys;
  for (int64_t i : order) {
    xs.insert(xs.end(), xv.begin() + i * 30, xv.begin() + (i + 1) * 30);
    ys.push_back(yv[static_cast<size_t>(i)]);
  }
  const int64_t n_train = n * 8 / 10;
  mf::Tensor x_all = mf::from_vector(xs, {n, 30});
  mf::Tensor y_all = mf::from_vector(ys, {n});
  mf::Tensor x_train = x_all.slice(0, 0, n_train).contiguous(), y_train = y_all.slice(0, 0, n_train).contiguous();
  mf::Tensor x_test = x_all.slice(0, n_train, n).contiguous(), y_test = y_all.slice(0, n_train, n).contiguous();

  // The model sees standardized features; LIME sees (and names) the raw ones.
  mf::Tensor mean = mf::mean(x_train, {0}, true);
  mf::Tensor sd = mf::sqrt(mf::mean(mf::square(x_train - mean), {0}, true));
  auto standardize = [&](const mf::Tensor& x) { return (x - mean) / sd; };
  mf::Sequential model({mf::make_input_layer({30}), L::Dense(16, {.activation = "relu"}),
                        L::Dense(2, {.activation = "softmax"})});
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  auto history = model.fit(standardize(x_train), y_train, {.epochs = args.epochs, .batch_size = 32, .verbose = 0});
  auto scores = model.evaluate(standardize(x_test), y_test, {.verbose = 0});
  std::printf("loss %.4f -> %.4f over %d epochs; test accuracy %.4f\n", history["loss"].front(),
              history["loss"].back(), args.epochs, scores["accuracy"]);

  ip::PredictFn predict = [&](const mf::Tensor& rows) { return model.predict(standardize(rows.to(mf::DType::F32)))[0]; };
  ip::LimeTabularExplainer explainer(x_train, {.training_labels = y_train, .feature_names = kFeatures,
                                               .class_names = {"malignant", "benign"}});
  auto explanation = explainer.explain_instance(x_test.slice(0, 0, 1), predict, {.num_features = args.features});
  std::printf("test row 0 is %s\n%s", ys[static_cast<size_t>(n_train)] == 0 ? "malignant" : "benign",
              explanation.as_table().c_str());

  // The same row by kernel SHAP (the seed's other suggestion): 30 features are too many to
  // enumerate, so 2,000 coalitions are sampled, against 50 training rows as the background.
  auto shap = ip::kernel_shap(predict, x_train.slice(0, 0, 50), x_test.slice(0, 0, 1),
                              {.output_index = explanation.label, .samples = 2000, .seed = 1});
  std::vector<int> by_size(30);
  for (int j = 0; j < 30; ++j) by_size[static_cast<size_t>(j)] = j;
  std::sort(by_size.begin(), by_size.end(), [&](int a, int b) {
    return std::fabs(shap.values[static_cast<size_t>(a)]) > std::fabs(shap.values[static_cast<size_t>(b)]);
  });
  std::printf("kernel SHAP for class %s: base %.4f + sum of values = prediction %.4f\n", explanation.label_name.c_str(),
              shap.base_value, shap.prediction);
  double total = 0;
  for (double v : shap.values) total += v;
  for (int k = 0; k < args.features; ++k)
    std::printf("  %-24s %+.4f\n", kFeatures[static_cast<size_t>(by_size[static_cast<size_t>(k)])].c_str(),
                shap.values[static_cast<size_t>(by_size[static_cast<size_t>(k)])]);
  if (std::fabs(shap.base_value + total - shap.prediction) > 1e-6) {
    std::printf("FAILED: the SHAP values do not add up to the prediction\n");
    return 1;
  }
  if (!(scores["accuracy"] > 0.9)) {
    std::printf("FAILED: test accuracy is not above 0.9\n");
    return 1;
  }
  if ((explanation.local_prediction > 0.5) != (explanation.model_prediction > 0.5)) {
    std::printf("FAILED: the local model (%.3f) and the model (%.3f) disagree about the class\n",
                explanation.local_prediction, explanation.model_prediction);
    return 1;
  }
  return 0;
} catch (const mf::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
