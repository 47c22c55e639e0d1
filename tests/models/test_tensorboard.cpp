// TensorBoard event files read back independently: TFRecord framing and every CRC checked by the
// test's own reader, records decoded by protoc --decode_raw and by a wire-format walker.
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <set>

#include "callback_fixtures.h"
#include "tfrecord_reader.h"

using namespace meshflow;
namespace fs = std::filesystem;
using tb_test::Field;

namespace {

std::string only_file(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().string());
  EXPECT_EQ(files.size(), 1u) << dir;
  return files.empty() ? "" : files[0];
}

std::vector<std::string> records_ok(const std::string& path) {
  std::string error;
  auto records = tb_test::read_records(path, &error);
  EXPECT_EQ(error, "") << path;
  return records;
}

const Field& one(const std::multimap<int, Field>& m, int field) {
  static Field none;
  auto it = m.find(field);
  EXPECT_TRUE(it != m.end()) << "field " << field << " missing";
  return it == m.end() ? none : it->second;
}

std::string proto_dir() { return std::string(std::getenv("MESHFLOW_SOURCE_DIR") ? std::getenv("MESHFLOW_SOURCE_DIR") : ".") + "/models/proto"; }

}  // namespace

TEST(TFRecord, Crc32cCheckValue) {
  // The CRC-32C check value from RFC 3720 (iSCSI): crc32c("123456789") = 0xE3069283.
  EXPECT_EQ(tb_test::crc32c_bitwise("123456789"), 0xE3069283u);
}

TEST(SummaryWriter, ScalarsHistogramAndGraphReadBack) {
  std::string dir = cb_test::temp_dir("tb_writer");
  Tensor values = mf_test::random_tensor({1000}, 3, -2.0, 3.0);
  Tensor w = mf_test::random_tensor({3, 4}, 4, -1, 1, DType::F32);
  Graph graph = trace([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{relu(matmul(in[0], w))}; },
                      {{{-1, 3}, DType::F32, {}}});
  std::string path;
  {
    SummaryWriter writer(dir);
    path = writer.path();
    writer.scalar("loss", 0.5, 7);
    writer.scalar("accuracy", 0.1, 8);
    writer.histogram("weights", values, 3, 20);
    writer.graph(graph);
  }  // the destructor closes and flushes
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::regex name("events\\.out\\.tfevents\\.[0-9]{10}\\." + std::string(host) + "\\." + std::to_string(getpid()) +
                  "\\.[0-9]+");
  EXPECT_TRUE(std::regex_match(fs::path(path).filename().string(), name)) << path;
  auto records = records_ok(path);
  ASSERT_EQ(records.size(), 5u);

  std::string first = tb_test::protoc_decode(records[0]);
  EXPECT_NE(first.find("3: \"brain.Event:2\""), std::string::npos) << first;
  EXPECT_NE(first.find("1: 0x"), std::string::npos) << first;  // wall_time, a double

  std::string scalar = tb_test::protoc_decode(records[1]);
  for (const std::string& part : std::vector<std::string>{"2: 7", "5 {", "1: \"loss\"", "2: " + tb_test::hex32(0.5f)})
    EXPECT_NE(scalar.find(part), std::string::npos) << part << " in\n" << scalar;
  std::string scalar2 = tb_test::protoc_decode(records[2]);
  EXPECT_NE(scalar2.find("2: " + tb_test::hex32(0.1f)), std::string::npos) << scalar2;
  double wall = one(tb_test::parse_message(records[1]), 1).as_double();
  EXPECT_NEAR(wall, double(time(nullptr)), 60.0);

  // The histogram against a float64 loop over the same values.
  std::vector<double> xs = mf_test::values(values);
  double lo = *std::min_element(xs.begin(), xs.end()), hi = *std::max_element(xs.begin(), xs.end()), sum = 0, sq = 0;
  std::vector<double> counts(20, 0.0);
  for (double x : xs) {
    sum += x;
    sq += x * x;
    counts[std::min<size_t>(19, size_t((x - lo) / ((hi - lo) / 20)))] += 1;
  }
  auto event = tb_test::parse_message(records[3]);
  EXPECT_EQ(one(event, 2).varint, 3u);
  auto value = tb_test::parse_message(one(tb_test::parse_message(one(event, 5).bytes), 1).bytes);
  EXPECT_EQ(one(value, 1).bytes, "weights");
  auto histo = tb_test::parse_message(one(value, 5).bytes);
  EXPECT_EQ(one(histo, 1).as_double(), lo);
  EXPECT_EQ(one(histo, 2).as_double(), hi);
  EXPECT_EQ(one(histo, 3).as_double(), 1000.0);
  EXPECT_NEAR(one(histo, 4).as_double(), sum, 1e-9);
  EXPECT_NEAR(one(histo, 5).as_double(), sq, 1e-9);
  auto limits = tb_test::packed_doubles(one(histo, 6).bytes), got = tb_test::packed_doubles(one(histo, 7).bytes);
  ASSERT_EQ(limits.size(), 20u);
  EXPECT_EQ(limits.back(), hi);
  EXPECT_NEAR(limits[0], lo + (hi - lo) / 20, 1e-12);
  EXPECT_EQ(got, counts);
  std::string histo_text = tb_test::protoc_decode(records[3]);
  EXPECT_NE(histo_text.find("1: \"weights\""), std::string::npos) << histo_text;
  EXPECT_NE(histo_text.find("3: " + tb_test::hex64(1000.0)), std::string::npos) << histo_text;
  // Our schema agrees with the raw fields (field numbers as TensorBoard's).
  std::string typed = tb_test::protoc_decode(records[3], "meshflow.tensorboard.Event", proto_dir());
  EXPECT_NE(typed.find("num: 1000"), std::string::npos) << typed;

  // The graph: a GraphDef with the placeholder, the weight and each traced op.
  auto graph_event = tb_test::parse_message(records[4]);
  std::string graph_def = one(graph_event, 4).bytes;
  // decode_raw parses it (it renders strings that happen to parse as messages as messages, so
  // the op names are checked with the wire walker below).
  std::string graph_text = tb_test::protoc_decode(graph_def);
  EXPECT_NE(graph_text.find("1 {"), std::string::npos) << graph_text;
  auto nodes = tb_test::parse_message(graph_def);
  EXPECT_EQ(nodes.count(1), graph.nodes().size() + 2);  // ops + placeholder + weight
  // Every traced op, the placeholder and the weight are there; the relu reads the matmul by name.
  std::string relu_node, matmul_name;
  std::multiset<std::string> ops, expected_ops = {"Placeholder", "Const"};
  for (const auto& node : graph.nodes()) expected_ops.insert(Graph::node_label(node));
  for (auto [it, end] = nodes.equal_range(1); it != end; ++it) {
    auto n = tb_test::parse_message(it->second.bytes);
    ops.insert(one(n, 2).bytes);
    if (one(n, 2).bytes == "matmul") matmul_name = one(n, 1).bytes;
    if (one(n, 2).bytes == "relu") relu_node = one(n, 3).bytes;
  }
  EXPECT_EQ(ops, expected_ops);
  EXPECT_FALSE(matmul_name.empty());
  EXPECT_EQ(relu_node, matmul_name);
}

TEST(TensorBoard, CallbackWritesTrainAndValidationRuns) {
  auto model = cb_test::linear_model();
  auto data = cb_test::regression_data();
  std::string dir = cb_test::temp_dir("tb_fit");
  auto tb = std::make_shared<callbacks::TensorBoard>(
      dir, callbacks::TensorBoardOptions{.histogram_freq = 2, .update_freq = "batch"});
  History h = model->fit(data.x, data.y, {.epochs = 3, .batch_size = 16, .verbose = 0, .validation_split = 0.25,
                                          .callbacks = {tb}});
  auto train = records_ok(only_file(dir + "/train"));
  auto validation = records_ok(only_file(dir + "/validation"));
  std::map<std::string, std::vector<std::pair<int64_t, float>>> scalars[2];
  std::vector<std::pair<std::string, int64_t>> histograms;
  int graphs = 0;
  std::set<std::string> graph_ops;
  for (int run = 0; run < 2; ++run)
    for (const auto& r : run == 0 ? train : validation) {
      auto ev = tb_test::parse_message(r);
      if (ev.count(4)) {
        ++graphs;
        auto def = tb_test::parse_message(one(ev, 4).bytes);
        for (auto [it, end] = def.equal_range(1); it != end; ++it)
          graph_ops.insert(one(tb_test::parse_message(it->second.bytes), 2).bytes);
      }
      if (!ev.count(5)) continue;
      auto v = tb_test::parse_message(one(tb_test::parse_message(one(ev, 5).bytes), 1).bytes);
      int64_t step = ev.count(2) ? int64_t(one(ev, 2).varint) : 0;
      if (v.count(2)) scalars[run][one(v, 1).bytes].push_back({step, one(v, 2).as_float()});
      if (v.count(5)) histograms.push_back({one(v, 1).bytes, step});
    }
  EXPECT_EQ(graphs, 1);
  // The Sequential's one layer, traced on a placeholder, with its two weights as constants.
  EXPECT_EQ(graph_ops, (std::set<std::string>{"Placeholder", "Const", "matmul", "add"}));
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(scalars[0]["epoch_loss"][size_t(e)], std::make_pair(int64_t(e), float(h["loss"][size_t(e)])));
    EXPECT_EQ(scalars[1]["epoch_loss"][size_t(e)], std::make_pair(int64_t(e), float(h["val_loss"][size_t(e)])));
    EXPECT_EQ(scalars[1]["epoch_mae"][size_t(e)], std::make_pair(int64_t(e), float(h["val_mae"][size_t(e)])));
  }
  EXPECT_EQ(scalars[0]["batch_loss"].size(), 9u);  // 48 training samples / 16, three epochs
  EXPECT_EQ(scalars[0]["batch_loss"].back().first, 9);
  // Histograms at epochs 0 and 2 (histogram_freq 2), one per weight.
  std::vector<std::pair<std::string, int64_t>> expected;
  for (int64_t e : {0, 2})
    for (const auto& w : model->weights()) expected.push_back({w.name() + "/histogram", e});
  EXPECT_EQ(histograms, expected);
  EXPECT_MF_ERROR(callbacks::TensorBoard(dir, {.update_freq = "sometimes"}), "update_freq", "sometimes");
}

TEST(TFRecord, CorruptAndTruncatedFilesAreReportedByRecord) {
  std::string dir = cb_test::temp_dir("tb_corrupt");
  std::string path;
  {
    SummaryWriter writer(dir);
    path = writer.path();
    for (int i = 0; i < 4; ++i) writer.scalar("loss", 1.0 / (i + 1), i);
  }
  std::string good = tb_test::slurp(path);
  ASSERT_EQ(read_tfrecords(path).size(), 5u);
  EXPECT_EQ(read_tfrecords(path), records_ok(path));
  // Offsets of each record from the framing.
  std::vector<size_t> starts;
  for (size_t at = 0; at < good.size(); at += 16 + tb_test::le(good, at, 8)) starts.push_back(at);
  ASSERT_EQ(starts.size(), 5u);
  auto write = [&](const std::string& bytes) { std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes; };
  std::string error;

  std::string flipped = good;
  flipped[starts[2] + 14] ^= 0x20;  // a byte of record 2's data
  write(flipped);
  EXPECT_MF_ERROR(read_tfrecords(path), "CRC mismatch in the data of record 2", path.c_str());
  tb_test::read_records(path, &error);
  EXPECT_EQ(error, "record 2: data CRC");

  std::string bad_length = good;
  bad_length[starts[1]] ^= 0x01;
  write(bad_length);
  EXPECT_MF_ERROR(read_tfrecords(path), "CRC mismatch in the length of record 1");

  write(good.substr(0, good.size() - 3));
  EXPECT_MF_ERROR(read_tfrecords(path), "truncated in record 4");
  tb_test::read_records(path, &error);
  EXPECT_EQ(error, "record 4: truncated data");

  write(good.substr(0, starts[3] + 5));
  EXPECT_MF_ERROR(read_tfrecords(path), "truncated in the header of record 3");
  EXPECT_MF_ERROR(read_tfrecords(dir + "/missing"), "cannot open", "missing");
}

TEST(TensorBoard, PythonTensorBoardReadsTheScalars) {
  if (std::system("/usr/bin/python3 -c 'import tensorboard' 2>/dev/null") != 0)
    GTEST_SKIP() << "the tensorboard Python package is not installed";
  std::string dir = cb_test::temp_dir("tb_python");
  {
    SummaryWriter writer(dir);
    writer.scalar("loss", 0.25, 3);
  }
  std::string cmd = "/usr/bin/python3 -c \"from tensorboard.backend.event_processing.event_accumulator import "
                    "EventAccumulator as A; a = A('" + dir + "'); a.Reload(); "
                    "e = a.Scalars('loss')[0]; print(e.step, e.value)\"";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[256] = {};
  std::fgets(buf, sizeof buf, p);
  pclose(p);
  EXPECT_EQ(std::string(buf), "3 0.25\n");
}

TEST(TensorBoard, FunctionalModelGraphHasEachLayersOpsUnderItsName) {
  reset_layer_names();
  auto in = Input({3});
  Tensor h = layers::Dense(4, {.activation = "relu"})(in);
  Model model(Tensors{in}, Tensors{layers::Dense(1)(h)});
  Graph graph = trace_model(model);
  std::set<std::string> scopes;
  for (const auto& node : graph.nodes()) {
    EXPECT_NE(node.op, nullptr) << "composite '" << node.composite_kind << "' left in the traced graph";
    scopes.insert(node.scope);
  }
  EXPECT_EQ(scopes, (std::set<std::string>{"dense", "dense_1"}));
  // The GraphDef names carry the scope, so TensorBoard folds each layer into one box.
  auto def = tb_test::parse_message(graph_def_bytes(graph));
  int in_dense = 0;
  for (auto [it, end] = def.equal_range(1); it != end; ++it)
    in_dense += one(tb_test::parse_message(it->second.bytes), 1).bytes.rfind("dense/", 0) == 0;
  EXPECT_GE(in_dense, 2);  // at least the matmul and the relu
}

namespace {

// The histograms of an event file by tag, as (step, HistogramProto fields).
std::multimap<std::string, std::pair<int64_t, std::multimap<int, Field>>> histograms_in(const std::string& path) {
  std::multimap<std::string, std::pair<int64_t, std::multimap<int, Field>>> out;
  for (const auto& r : records_ok(path)) {
    auto ev = tb_test::parse_message(r);
    if (!ev.count(5)) continue;
    auto v = tb_test::parse_message(one(tb_test::parse_message(one(ev, 5).bytes), 1).bytes);
    if (!v.count(5)) continue;
    out.emplace(one(v, 1).bytes,
                std::make_pair(ev.count(2) ? int64_t(one(ev, 2).varint) : 0, tb_test::parse_message(one(v, 5).bytes)));
  }
  return out;
}

// The gradient of mean((x w + b - y)^2) for one output unit, in float64: {dw (one per feature), db}.
std::pair<std::vector<double>, double> mse_gradient(const std::vector<double>& x, const std::vector<double>& y,
                                                    const std::vector<double>& w, double b) {
  const size_t features = w.size(), n = y.size();
  std::vector<double> dw(features, 0.0);
  double db = 0;
  for (size_t i = 0; i < n; ++i) {
    double p = b;
    for (size_t j = 0; j < features; ++j) p += x[i * features + j] * w[j];
    double d = 2.0 * (p - y[i]) / double(n);
    for (size_t j = 0; j < features; ++j) dw[j] += d * x[i * features + j];
    db += d;
  }
  return {dw, db};
}

void expect_histogram_of(const std::multimap<int, Field>& h, const std::vector<double>& values, double tol,
                         const std::string& what) {
  double lo = *std::min_element(values.begin(), values.end()), hi = *std::max_element(values.begin(), values.end());
  double sum = 0, sq = 0;
  for (double v : values) sum += v, sq += v * v;
  EXPECT_EQ(one(h, 3).as_double(), double(values.size())) << what;
  EXPECT_NEAR(one(h, 1).as_double(), lo, tol) << what;
  EXPECT_NEAR(one(h, 2).as_double(), hi, tol) << what;
  EXPECT_NEAR(one(h, 4).as_double(), sum, tol) << what;
  EXPECT_NEAR(one(h, 5).as_double(), sq, tol) << what;
}

}  // namespace

TEST(TensorBoard, GradientHistogramsMatchTheClosedFormGradient) {
  // One linear unit, MSE, SGD, one batch per epoch (batch_size = all 12 rows, no shuffle): epoch
  // 0's gradient is at the initial weights, epoch 1's at the weights after one SGD step.
  const double lr = 0.05;
  auto model = cb_test::linear_model(lr);
  auto data = cb_test::regression_data(12);
  model->predict_on_batch({data.x});  // builds the weights so the test can read them
  std::vector<double> w = mf_test::values(model->weights()[0]), x = mf_test::values(data.x),
                      y = mf_test::values(data.y);
  double b = mf_test::values(model->weights()[1])[0];
  const std::string kernel = model->weights()[0].name(), bias = model->weights()[1].name();
  std::string dir = cb_test::temp_dir("tb_grads");
  auto tb = std::make_shared<callbacks::TensorBoard>(dir, callbacks::TensorBoardOptions{.histogram_freq = 1,
                                                                                        .write_grads = true,
                                                                                        .write_graph = false});
  model->fit(data.x, data.y, {.epochs = 2, .batch_size = 12, .verbose = 0, .shuffle = false, .callbacks = {tb}});
  auto histos = histograms_in(only_file(dir + "/train"));
  ASSERT_EQ(histos.count(kernel + "/gradient"), 2u);
  ASSERT_EQ(histos.count(bias + "/gradient"), 2u);
  EXPECT_EQ(histos.count(kernel + "/histogram"), 2u);
  auto kernel_grads = histos.equal_range(kernel + "/gradient");
  auto bias_grads = histos.equal_range(bias + "/gradient");
  for (int64_t epoch = 0; epoch < 2; ++epoch, ++kernel_grads.first, ++bias_grads.first) {
    auto [dw, db] = mse_gradient(x, y, w, b);
    EXPECT_EQ(kernel_grads.first->second.first, epoch);
    EXPECT_EQ(bias_grads.first->second.first, epoch);
    expect_histogram_of(kernel_grads.first->second.second, dw, 1e-5, "kernel gradient, epoch " + std::to_string(epoch));
    expect_histogram_of(bias_grads.first->second.second, {db}, 1e-5, "bias gradient, epoch " + std::to_string(epoch));
    for (size_t j = 0; j < w.size(); ++j) w[j] -= lr * dw[j];  // the SGD step between the epochs
    b -= lr * db;
  }
  // Off: no gradient histograms; and write_grads needs histogram epochs.
  std::string plain = cb_test::temp_dir("tb_no_grads");
  model->fit(data.x, data.y, {.epochs = 1, .batch_size = 12, .verbose = 0,
                              .callbacks = {std::make_shared<callbacks::TensorBoard>(
                                  plain, callbacks::TensorBoardOptions{.histogram_freq = 1})}});
  EXPECT_EQ(histograms_in(only_file(plain + "/train")).count(kernel + "/gradient"), 0u);
  EXPECT_MF_ERROR(callbacks::TensorBoard(dir, {.write_grads = true}), "write_grads", "histogram_freq");
}

TEST(TensorBoard, GradientHistogramsUnderMirroredStrategyAreTheAveragedGradient) {
  // Two replicas each see half of the 12-row batch; the histogram is of the averaged gradient,
  // which is the full batch's: the same closed form as one process.
  MirroredStrategy strategy({"cpu:0", "cpu:1"});
  std::shared_ptr<Model> model;
  {
    auto scope = strategy.scope();
    model = replicate_model([] { return std::static_pointer_cast<Model>(cb_test::linear_model(0.05)); });
  }
  auto data = cb_test::regression_data(12);
  model->predict_on_batch({data.x});
  std::vector<double> w = mf_test::values(model->weights()[0]), x = mf_test::values(data.x),
                      y = mf_test::values(data.y);
  double b = mf_test::values(model->weights()[1])[0];
  std::string dir = cb_test::temp_dir("tb_grads_mirrored");
  auto tb = std::make_shared<callbacks::TensorBoard>(dir, callbacks::TensorBoardOptions{.histogram_freq = 1,
                                                                                        .write_grads = true,
                                                                                        .write_graph = false});
  model->fit(data.x, data.y, {.epochs = 1, .batch_size = 12, .verbose = 0, .shuffle = false, .callbacks = {tb}});
  auto histos = histograms_in(only_file(dir + "/train"));
  auto [dw, db] = mse_gradient(x, y, w, b);
  ASSERT_EQ(histos.count(model->weights()[0].name() + "/gradient"), 1u);
  expect_histogram_of(histos.find(model->weights()[0].name() + "/gradient")->second.second, dw, 1e-5, "kernel");
  expect_histogram_of(histos.find(model->weights()[1].name() + "/gradient")->second.second, {db}, 1e-5, "bias");
}
