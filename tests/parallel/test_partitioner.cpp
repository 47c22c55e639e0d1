// SpmdProgram (parallel/partitioner.h): layout propagation, the collectives it inserts, and
// float64 equivalence of partitioned training with one device: Megatron MLP and attention blocks
// on 2 and 4 devices, a 2x2 data x model mesh, uneven splits, sequence-split activations. Devices
// are threads joined by a LocalGroup; bytes are measured by a CountingCommunicator.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <set>
#include <thread>

#include "meshflow/core/sharding.h"
#include "meshflow/distributed/counting.h"
#include "meshflow/meshflow.h"
#include "meshflow/parallel/partitioner.h"
#include "devices.h"
#include "op_cases.h"
#include "test_util.h"

namespace mf = meshflow;
using mf::DType;
using mf::Layout;
using mf::Replicated;
using mf::Shape;
using mf::Tensor;
using mf_test::expect_no_errors;
using mf_test::on_devices;

namespace {

Tensor randn(const Shape& s, std::mt19937& rng, double scale = 0.5) {
  std::normal_distribution<double> d(0, scale);
  std::vector<double> v(static_cast<size_t>(mf::shape_numel(s)));
  for (auto& x : v) x = d(rng);
  return mf::from_vector(v, s, {.dtype = DType::F64});
}

Tensor weight(const Shape& s, std::mt19937& rng, const std::string& name) {
  Tensor w = randn(s, rng);
  w.set_name(name).set_requires_grad(true);
  return w;
}

// This device's part of a whole tensor laid out as `l`.
Tensor part_of(const Tensor& whole, const Layout& l, const mf::Mesh& mesh, int rank) {
  Tensor t = whole;
  for (size_t d = 0; d < l.dims.size(); ++d) {
    auto [first, count] = mf::local_range(whole.size(static_cast<int64_t>(d)), l.dims[d].axes, mesh, rank);
    t = t.slice(static_cast<int64_t>(d), first, first + count);
  }
  return t.contiguous();
}

// The Megatron MLP block after a replicated layer (so the block's input needs a gradient):
// h = relu(x W0); y = relu(h W1 + b1) W2 + b2; loss = mean((y - t)^2).
struct Mlp {
  Tensor w0, w1, b1, w2, b2;
  Mlp(int64_t in, int64_t hidden, std::mt19937& rng)
      : w0(weight({in, in}, rng, "w0")), w1(weight({in, hidden}, rng, "w1")), b1(weight({hidden}, rng, "b1")),
        w2(weight({hidden, in}, rng, "w2")), b2(weight({in}, rng, "b2")) {}
  std::vector<Tensor> operator()(const std::vector<Tensor>& xs) const {
    Tensor h = mf::relu(mf::matmul(xs[0], w0));
    Tensor y = mf::matmul(mf::relu(mf::matmul(h, w1) + b1), w2) + b2;
    Tensor d = y - xs[1];
    return {mf::mean(d * d)};
  }
  std::vector<Tensor> weights() const { return {w0, w1, b1, w2, b2}; }
  std::vector<std::pair<Tensor, Layout>> megatron() const {
    return {{w1, mf::layout({Replicated, "model"})}, {b1, mf::layout({"model"})}, {w2, mf::layout({"model", Replicated})}};
  }
};

// Single-device reference: loss and gradients.
std::pair<double, std::vector<Tensor>> reference(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
                                                 const std::vector<Tensor>& inputs, const std::vector<Tensor>& weights) {
  for (const Tensor& w : weights) const_cast<Tensor&>(w).zero_grad();
  Tensor loss = fn(inputs)[0];
  loss.backward();
  std::vector<Tensor> grads;
  for (const Tensor& w : weights) grads.push_back(w.grad().clone());
  for (const Tensor& w : weights) const_cast<Tensor&>(w).zero_grad();
  return {loss.item(), grads};
}

// Runs the program on every device of `mesh`, once, and checks each device's loss and its part
// of every weight's gradient against the single-device reference; also that the bytes the
// communicator counted equal the plan's.
void check_equivalent(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
                      const std::vector<Tensor>& inputs, const std::vector<Tensor>& weights,
                      const std::vector<std::pair<Tensor, Layout>>& annotations, const mf::Mesh& mesh,
                      mf::SpmdOptions options = {}) {
  auto [ref_loss, ref_grads] = reference(fn, inputs, weights);
  std::vector<mf::TensorMeta> specs;
  for (const Tensor& x : inputs) specs.push_back({x.shape(), x.dtype(), x.device()});
  options.private_weights = true;  // the devices are threads sharing `weights`
  auto errors = on_devices(mesh.size(), [&](int rank, std::shared_ptr<mf::distributed::Communicator> comm) {
    auto counted = std::make_shared<mf::distributed::CountingCommunicator>(comm);
    mf::SpmdProgram program(fn, specs, mesh, annotations, options);
    program.bind(counted);
    counted->counts()->reset();  // the axis splits are not part of a step
    Tensor loss = program.run(inputs)[0];
    EXPECT_NEAR(loss.item(), ref_loss, 1e-12 * std::max(1.0, std::abs(ref_loss))) << "rank " << rank;
    loss.backward();
    for (size_t i = 0; i < weights.size(); ++i) {
      Tensor local = program.local(weights[i]);
      ASSERT_TRUE(local.grad().defined()) << weights[i].name() << " rank " << rank;
      Tensor want = part_of(ref_grads[i], program.layout_of(weights[i]), mesh, rank);
      EXPECT_TRUE(mf_test::tensors_near(local.grad(), want, 1e-11, 1e-10)) << weights[i].name() << " rank " << rank;
    }
    EXPECT_EQ(counted->counts()->total_bytes(), program.bytes_per_step(rank)) << "rank " << rank;
  });
  expect_no_errors(errors);
}

}  // namespace

// --- Propagation ---------------------------------------------------------------------------------

TEST(Partitioner, MegatronMlpLayoutsAndCollectives) {
  std::mt19937 rng(1);
  Mlp mlp(16, 32, rng);
  mf::Mesh mesh({{"model", 2}});
  mf::SpmdProgram p(std::ref(mlp), {{{8, 16}, DType::F64}, {{8, 16}, DType::F64}}, mesh, mlp.megatron());
  // Every value's layout, in execution order.
  std::vector<std::string> got;
  for (const auto& n : p.graph().nodes()) {
    std::string s = mf::Graph::node_label(n) + " ->";
    for (int o : n.outputs) s += " " + mf::sharding::str(p.layouts()[static_cast<size_t>(o)]);
    got.push_back(s);
  }
  std::vector<std::string> want{
      "matmul -> [R, R]",        "relu -> [R, R]",          "matmul -> [R, model]", "add -> [R, model]",
      "relu -> [R, model]",      "matmul -> [R, R] partial(model)", "add -> [R, R]", "sub -> [R, R]",
      "mul -> [R, R]",           "mean -> []"};
  EXPECT_EQ(got, want);
  // One all-reduce forward (the row-parallel output before + b2) and one backward (the gradient
  // of the block's input h, which only reached each device through its columns of w1).
  auto c = p.collectives(0);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].kind, mf::Collective::Kind::AllReduce);
  EXPECT_FALSE(c[0].backward);
  EXPECT_EQ(c[0].shape, (Shape{8, 16}));
  EXPECT_EQ(c[0].where, "add, input 0");
  EXPECT_EQ(c[1].kind, mf::Collective::Kind::AllReduce);
  EXPECT_TRUE(c[1].backward);
  EXPECT_EQ(c[1].where, "matmul, input 0");
  EXPECT_EQ(p.bytes_per_step(0), 2 * 8 * 16 * 8);
  std::string e = p.explain();
  EXPECT_NE(e.find("w1 f64[16, 32] [R, model] -> local [16, 16]"), std::string::npos) << e;
  EXPECT_NE(e.find("all_reduce over model of f64[8, 16]: 1024 B (forward)"), std::string::npos) << e;
  EXPECT_NE(e.find("per step: 1 collectives forward (1024 B), 1 backward (1024 B)"), std::string::npos) << e;
}

TEST(Partitioner, DataSplitRowsAllReduceReplicatedGradients) {
  // Rows split over "data", weights whole: every weight's gradient is all-reduced over "data"
  // (data parallelism falls out), and the loss's pending sum is all-reduced once.
  std::mt19937 rng(2);
  Mlp mlp(6, 10, rng);
  mf::Mesh mesh({{"data", 2}});
  mf::SpmdOptions o;
  o.inputs = {mf::layout({"data", Replicated}), mf::layout({"data", Replicated})};
  mf::SpmdProgram p(std::ref(mlp), {{{8, 6}, DType::F64}, {{8, 6}, DType::F64}}, mesh, {}, o);
  int forward = 0, backward = 0;
  for (const auto& c : p.collectives(0)) {
    EXPECT_EQ(c.kind, mf::Collective::Kind::AllReduce) << c.str();
    (c.backward ? backward : forward)++;
  }
  EXPECT_EQ(forward, 1);   // the loss
  EXPECT_EQ(backward, 5);  // w0, w1, b1, w2, b2
}

TEST(Partitioner, RulesChooseTheCheaperConversion) {
  // add(a split on dim 0, b whole): slicing b is free, gathering a is not.
  mf::TensorMeta m{{8, 4}, DType::F64};
  auto d = mf::get_op("add").sharding({m, m}, {mf::layout({"data", Replicated}), mf::layout({Replicated, Replicated})}, {});
  EXPECT_EQ(mf::sharding::str(d.outputs[0]), "[data, R]");
  EXPECT_EQ(mf::sharding::str(d.inputs[1]), "[data, R]");
  // A pending sum plus a whole tensor: the sum must be completed first.
  Layout p = mf::layout({Replicated, Replicated});
  p.partial_axes = {"model"};
  d = mf::get_op("add").sharding({m, m}, {p, mf::layout({Replicated, Replicated})}, {});
  EXPECT_EQ(mf::sharding::str(d.inputs[0]), "[R, R]");
  // Two pending sums over the same axis add without communication.
  d = mf::get_op("add").sharding({m, m}, {p, p}, {});
  EXPECT_EQ(mf::sharding::str(d.outputs[0]), "[R, R] partial(model)");
  // matmul: both operands split on k -> pending sum; softmax needs its axis whole.
  auto mm = mf::get_op("matmul").sharding({{{8, 4}, DType::F64}, {{4, 6}, DType::F64}},
                                          {mf::layout({Replicated, "model"}), mf::layout({"model", Replicated})},
                                          {{"transpose_a", false}, {"transpose_b", false}});
  EXPECT_EQ(mf::sharding::str(mm.outputs[0]), "[R, R] partial(model)");
  auto sm = mf::get_op("softmax").sharding({m}, {mf::layout({"data", "model"})}, {{"axis", int64_t{1}}});
  EXPECT_EQ(mf::sharding::str(sm.inputs[0]), "[data, R]");
  // reshape [8, 12] -> [8, 3, 4]: the split of 12 goes to 3 (heads).
  auto rs = mf::get_op("reshape").sharding({{{8, 12}, DType::F64}}, {mf::layout({Replicated, "model"})},
                                           {{"shape", std::vector<int64_t>{8, 3, 4}}});
  EXPECT_EQ(mf::sharding::str(rs.outputs[0]), "[R, model, R]");
  // Merging a split dimension with others carries the split only when it divides evenly by its
  // axes (the partitioner passes their sizes): 6 rows over 2 do, 5 rows over 2 are gathered first.
  auto merge = [](int64_t rows) {
    return mf::get_op("reshape").sharding({{{rows, 4}, DType::F64}}, {mf::layout({"data", Replicated})},
                                          {{"shape", std::vector<int64_t>{rows * 4}}, {"mesh_axis_size:data", int64_t{2}}});
  };
  EXPECT_EQ(mf::sharding::str(merge(6).outputs[0]), "[data]");
  EXPECT_EQ(mf::sharding::str(merge(5).inputs[0]), "[R, R]");
  EXPECT_EQ(mf::sharding::str(merge(5).outputs[0]), "[R]");
}

// --- Equivalence with one device (float64) --------------------------------------------------------

TEST(Partitioner, MegatronMlpOnTwoAndFourDevicesMatchesOneDevice) {
  std::mt19937 rng(3);
  Mlp mlp(8, 16, rng);
  Tensor x = randn({6, 8}, rng), t = randn({6, 8}, rng);
  check_equivalent(std::ref(mlp), {x, t}, mlp.weights(), mlp.megatron(), mf::Mesh({{"model", 2}}));
  check_equivalent(std::ref(mlp), {x, t}, mlp.weights(), mlp.megatron(), mf::Mesh({{"model", 4}}));
}

TEST(Partitioner, UnevenSplitsMatchOneDevice) {
  // hidden 30 over 4 devices: 8, 8, 7, 7 columns.
  std::mt19937 rng(4);
  Mlp mlp(5, 30, rng);
  Tensor x = randn({7, 5}, rng), t = randn({7, 5}, rng);
  check_equivalent(std::ref(mlp), {x, t}, mlp.weights(), mlp.megatron(), mf::Mesh({{"model", 4}}));
}

TEST(Partitioner, DataByModelMeshMatchesOneDevice) {
  // 2x2: rows over "data" (7 rows: 4 + 3), the MLP's hidden units over "model".
  std::mt19937 rng(5);
  Mlp mlp(6, 12, rng);
  Tensor x = randn({7, 6}, rng), t = randn({7, 6}, rng);
  mf::SpmdOptions o;
  o.inputs = {mf::layout({"data", Replicated}), mf::layout({"data", Replicated})};
  check_equivalent(std::ref(mlp), {x, t}, mlp.weights(), mlp.megatron(), mf::Mesh({{"data", 2}, {"model", 2}}), o);
}

namespace {

// Multi-head self-attention written with ops, heads split by annotating the projections
// (Megatron: q, k, v column-parallel, the output projection row-parallel), then LayerNorm and a
// Megatron MLP: a transformer block.
struct Block {
  int64_t heads, dim;
  Tensor wq, wk, wv, wo, bo, g, b, w1, b1, w2, b2;
  Block(int64_t heads_, int64_t head_dim, std::mt19937& rng)
      : heads(heads_), dim(heads_ * head_dim), wq(weight({dim, dim}, rng, "wq")), wk(weight({dim, dim}, rng, "wk")),
        wv(weight({dim, dim}, rng, "wv")), wo(weight({dim, dim}, rng, "wo")), bo(weight({dim}, rng, "bo")),
        g(weight({dim}, rng, "gamma")), b(weight({dim}, rng, "beta")), w1(weight({dim, 2 * dim}, rng, "w1")),
        b1(weight({2 * dim}, rng, "b1")), w2(weight({2 * dim, dim}, rng, "w2")), b2(weight({dim}, rng, "b2")) {}
  std::vector<Tensor> operator()(const std::vector<Tensor>& xs) const {
    const Tensor& x = xs[0];
    const int64_t B = x.size(0), T = x.size(1), D = dim / heads;
    auto split_heads = [&](const Tensor& t) { return mf::reshape(t, {B, T, heads, D}).permute({0, 2, 1, 3}); };
    Tensor q = split_heads(mf::matmul(x, wq)), k = split_heads(mf::matmul(x, wk)), v = split_heads(mf::matmul(x, wv));
    Tensor s = mf::softmax(mf::matmul(q, k, false, true) * (1.0 / std::sqrt(static_cast<double>(D))), -1);
    Tensor a = mf::reshape(mf::matmul(s, v).permute({0, 2, 1, 3}), {B, T, dim});
    Tensor h = mf::layer_norm(x + mf::matmul(a, wo) + bo, g, b, 1, 1e-5);
    Tensor y = h + mf::matmul(mf::gelu(mf::matmul(h, w1) + b1), w2) + b2;
    Tensor d = y - xs[1];
    return {mf::mean(d * d)};
  }
  std::vector<Tensor> weights() const { return {wq, wk, wv, wo, bo, g, b, w1, b1, w2, b2}; }
  std::vector<std::pair<Tensor, Layout>> megatron() const {
    Layout col = mf::layout({Replicated, "model"}), row = mf::layout({"model", Replicated});
    return {{wq, col}, {wk, col}, {wv, col}, {wo, row}, {w1, col}, {b1, mf::layout({"model"})}, {w2, row}};
  }
};

}  // namespace

TEST(Partitioner, TransformerBlockHeadsSplitMatchesOneDevice) {
  std::mt19937 rng(6);
  Block block(4, 3, rng);
  Tensor x = randn({2, 5, 12}, rng), t = randn({2, 5, 12}, rng);
  mf::SpmdProgram p(std::ref(block), {{{2, 5, 12}, DType::F64}, {{2, 5, 12}, DType::F64}}, mf::Mesh({{"model", 2}}),
                    block.megatron());
  // Forward: one all-reduce after attention's output projection, one after the MLP's.
  int forward = 0;
  for (const auto& c : p.collectives(0)) forward += !c.backward;
  EXPECT_EQ(forward, 2) << p.explain();
  check_equivalent(std::ref(block), {x, t}, block.weights(), block.megatron(), mf::Mesh({{"model", 2}}));
  check_equivalent(std::ref(block), {x, t}, block.weights(), block.megatron(), mf::Mesh({{"model", 4}}));
}

TEST(Partitioner, EmbeddingTableSplitByWidthMatchesOneDevice) {
  // A token model: ids [batch, seq] -> embedding table [vocab, width] with its width over "model",
  // then a row-parallel projection back to whole. Ids split over "data" keep their split in the
  // output; the table's vocabulary stays whole (a device holding some rows would mask the others).
  std::mt19937 rng(12);
  Tensor table = weight({11, 8}, rng, "table"), w = weight({8, 5}, rng, "w");
  auto fn = [&](const std::vector<Tensor>& xs) {
    Tensor h = mf::tanh(mf::embedding(xs[0], table));  // [4, 3, 8]
    Tensor y = mf::matmul(h, w);
    Tensor d = y - xs[1];
    return std::vector<Tensor>{mf::mean(d * d)};
  };
  Tensor ids = mf::from_vector(std::vector<int64_t>{3, 0, 10, 3, 7, 7, 1, 2, 9, 4, 10, 5}, {4, 3}, {.dtype = DType::I64});
  Tensor t = randn({4, 3, 5}, rng);
  const std::vector<std::pair<Tensor, Layout>> ann{{table, mf::layout({Replicated, "model"})},
                                                   {w, mf::layout({"model", Replicated})}};
  mf::SpmdOptions o;
  o.inputs = {mf::layout({"data", Replicated}), mf::layout({"data", Replicated, Replicated})};
  const mf::Mesh mesh({{"data", 2}, {"model", 2}});
  mf::SpmdProgram p(fn, {{{4, 3}, DType::I64}, {{4, 3, 5}, DType::F64}}, mesh, ann, o);
  // Forward: the projection's pending sum over "model" and the loss's over "data"; nothing gathers
  // the table. Backward: the table's and w's gradients summed over "data" (each device saw half
  // the rows).
  int forward = 0, gathers = 0;
  for (const auto& c : p.collectives(0)) {
    forward += !c.backward;
    gathers += c.kind == mf::Collective::Kind::AllGather;
  }
  EXPECT_EQ(forward, 2) << p.explain();
  EXPECT_EQ(gathers, 0) << p.explain();
  check_equivalent(fn, {ids, t}, {table, w}, ann, mesh, o);
  // A vocabulary split is brought whole before the lookup, and still equals one device.
  check_equivalent(fn, {ids, t}, {table, w}, {{table, mf::layout({"model", Replicated})}}, mf::Mesh({{"model", 2}}));
}

TEST(Partitioner, ConvolutionChannelsSplitMatchOneDevice) {
  // Megatron for convolutions: the first kernel's output channels over "model" (column-parallel),
  // pooling and ReLU per channel, the second kernel's input channels over "model" (row-parallel,
  // a pending sum), images over "data". Forward: the second convolution's sum over "model" and the
  // loss's over "data"; nothing is gathered.
  std::mt19937 rng(13);
  Tensor k1 = weight({3, 3, 2, 6}, rng, "k1"), k2 = weight({2, 2, 6, 3}, rng, "k2");
  auto fn = [&](const std::vector<Tensor>& xs) {
    Tensor h = mf::max_pool2d(mf::relu(mf::conv2d(xs[0], k1, {.padding = "same"})));  // [5, 3, 3, 6]
    Tensor y = mf::avg_pool2d(mf::conv2d(h, k2), {.pool_size = {2, 2}});               // [5, 1, 1, 3]
    Tensor d = y - xs[1];
    return std::vector<Tensor>{mf::mean(d * d)};
  };
  Tensor x = randn({5, 6, 6, 2}, rng), t = randn({5, 1, 1, 3}, rng);
  const std::vector<std::pair<Tensor, Layout>> ann{{k1, mf::layout({Replicated, Replicated, Replicated, "model"})},
                                                   {k2, mf::layout({Replicated, Replicated, "model", Replicated})}};
  mf::SpmdOptions o;
  o.inputs = {mf::layout({"data", Replicated, Replicated, Replicated}),
              mf::layout({"data", Replicated, Replicated, Replicated})};
  const mf::Mesh mesh({{"data", 2}, {"model", 2}});
  mf::SpmdProgram p(fn, {{x.shape(), DType::F64}, {t.shape(), DType::F64}}, mesh, ann, o);
  int forward = 0, gathers = 0;
  for (const auto& c : p.collectives(0)) {
    forward += !c.backward;
    gathers += c.kind == mf::Collective::Kind::AllGather;
  }
  EXPECT_EQ(forward, 2) << p.explain();
  EXPECT_EQ(gathers, 0) << p.explain();
  check_equivalent(fn, {x, t}, {k1, k2}, ann, mesh, o);
}

TEST(Partitioner, BatchNormChannelsSplitAndRowsWholeMatchOneDevice) {
  // Training batch norm over x [M, C]: channels over "model" with gamma and beta alike; rows split
  // over "data" are gathered first (the statistics are over every row), and the result equals one
  // device (synchronized batch norm).
  std::mt19937 rng(14);
  Tensor w = weight({4, 6}, rng, "w"), gamma = weight({6}, rng, "gamma"), beta = weight({6}, rng, "beta");
  Tensor running_mean = mf::zeros({6}, {.dtype = DType::F64}), running_var = mf::ones({6}, {.dtype = DType::F64});
  auto fn = [&](const std::vector<Tensor>& xs) {
    Tensor h = mf::matmul(xs[0], w);
    Tensor y = mf::batch_norm(h, gamma, beta, running_mean, running_var, true);
    Tensor d = y - xs[1];
    return std::vector<Tensor>{mf::mean(d * d)};
  };
  Tensor x = randn({7, 4}, rng), t = randn({7, 6}, rng);
  const std::vector<std::pair<Tensor, Layout>> ann{{w, mf::layout({Replicated, "model"})},
                                                   {gamma, mf::layout({"model"})},
                                                   {beta, mf::layout({"model"})}};
  mf::SpmdOptions o;
  o.inputs = {mf::layout({"data", Replicated}), mf::layout({"data", Replicated})};
  check_equivalent(fn, {x, t}, {w, gamma, beta}, ann, mf::Mesh({{"data", 2}, {"model", 2}}), o);
}

TEST(Partitioner, SequenceSplitActivationsMatchOneDevice) {
  // x [batch, time, features] split over time: LayerNorm and the MLP run on each device's steps,
  // and only the loss's pending sum and the weights' gradients cross devices.
  std::mt19937 rng(7);
  Tensor w = weight({6, 6}, rng, "w"), g = weight({6}, rng, "gamma"), b = weight({6}, rng, "beta");
  auto fn = [&](const std::vector<Tensor>& xs) {
    Tensor h = mf::relu(mf::matmul(mf::layer_norm(xs[0], g, b, 1, 1e-5), w));
    return std::vector<Tensor>{mf::mean(h * h)};
  };
  Tensor x = randn({2, 9, 6}, rng);
  mf::SpmdOptions o;
  o.inputs = {mf::layout({Replicated, "seq", Replicated})};
  mf::SpmdProgram p(fn, {{{2, 9, 6}, DType::F64}}, mf::Mesh({{"seq", 3}}), {}, o);
  for (const auto& c : p.collectives(0)) EXPECT_EQ(c.kind, mf::Collective::Kind::AllReduce) << c.str();
  check_equivalent(fn, {x}, {w, g, b}, {}, mf::Mesh({{"seq", 3}}), o);
}

TEST(Partitioner, TrainingStepsMatchOneDeviceAndGatherWeights) {
  // Three SGD steps on each device's parts, then the gathered weights equal one device's.
  std::mt19937 rng(8);
  Mlp mlp(6, 10, rng);
  Tensor x = randn({5, 6}, rng), t = randn({5, 6}, rng);
  std::vector<Tensor> start;
  for (const Tensor& w : mlp.weights()) start.push_back(w.clone());
  const double lr = 0.1;
  std::vector<Tensor> want;
  for (int step = 0; step < 3; ++step) {
    auto [loss, grads] = reference(std::ref(mlp), {x, t}, mlp.weights());
    mf::NoGradGuard ng;
    for (size_t i = 0; i < grads.size(); ++i) mlp.weights()[i].copy_(mlp.weights()[i] - grads[i] * lr);
  }
  for (const Tensor& w : mlp.weights()) want.push_back(w.clone());
  for (size_t i = 0; i < start.size(); ++i) mlp.weights()[i].copy_(start[i]);

  // Each device trains its own copy of the whole weights (threads of one process share memory).
  auto errors = on_devices(2, [&](int rank, std::shared_ptr<mf::distributed::Communicator> comm) {
    std::mt19937 unused(0);
    Mlp mine(6, 10, unused);
    for (size_t i = 0; i < start.size(); ++i) mine.weights()[i].copy_(start[i]);
    mf::SpmdProgram p(std::ref(mine), {{{5, 6}, DType::F64}, {{5, 6}, DType::F64}}, mf::Mesh({{"model", 2}}),
                      mine.megatron());
    p.bind(comm);
    for (int step = 0; step < 3; ++step) {
      for (Tensor w : p.local_weights()) w.zero_grad();
      p.run({x, t})[0].backward();
      mf::NoGradGuard ng;
      for (Tensor w : p.local_weights()) w.copy_(w - w.grad() * lr);
    }
    p.gather_weights();
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_TRUE(mf_test::tensors_near(mine.weights()[i], want[i], 1e-12, 1e-10)) << mine.weights()[i].name() << " rank " << rank;
  });
  expect_no_errors(errors);
}

// --- Every rule, on the op sweep's cases ----------------------------------------------------------

// For every case of the op sweep whose ops all have sharding rules: each input split over a
// 2-device "model" axis along each dimension in turn (sizes 3, 4, 5 give uneven parts), the
// partitioned output and the inputs' gradients must equal one device's.
TEST(Partitioner, EveryRuleMatchesOneDeviceOnTheOpSweep) {
  std::set<std::string> covered;
  std::vector<std::string> skipped;
  const mf::Mesh mesh({{"model", 2}});
  auto cases = mf_test::op_cases();
  // contiguous as an op of its own (the sweep's case reaches it only through a view).
  cases["contiguous (op)"] = {{{3, 4}}, [](const std::vector<Tensor>& x) {
    return mf::call_op1(mf::get_op("contiguous"), {x[0].t()});
  }};
  // one_hot of ids computed from an input (the sweep's case takes constant ids, which are not traced).
  cases["one_hot (op)"] = {{{5}}, [](const std::vector<Tensor>& x) {
    return mf::one_hot(mf::cast(x[0], DType::I64), 3, DType::F64);
  }, false, 0.0, 2.9};
  for (const auto& [name, c] : cases) {
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> u(c.lo, c.hi);
    std::vector<Tensor> xs;
    std::vector<mf::TensorMeta> specs;
    for (const Shape& s : c.shapes) {
      std::vector<double> v(static_cast<size_t>(mf::shape_numel(s)));
      for (auto& e : v) e = u(rng);
      xs.push_back(mf::from_vector(v, s, {.dtype = DType::F64}));
      specs.push_back({s, DType::F64});
    }
    auto fn = [f = c.fn](const std::vector<Tensor>& ins) { return std::vector<Tensor>{f(ins)}; };
    try {
      mf::SpmdProgram probe(fn, specs, mesh, {});
    } catch (const mf::Error& e) {
      ASSERT_NE(std::string(e.what()).find("has no sharding rule"), std::string::npos) << name << ": " << e.what();
      skipped.push_back(name);
      continue;
    }
    // One device: the output and, for differentiable cases, d(sum(out * w))/d(inputs).
    std::vector<Tensor> leaves;
    for (const Tensor& x : xs) leaves.push_back(x.clone().detach().set_requires_grad(c.differentiable));
    Tensor out = fn(leaves)[0];
    Tensor w = mf::from_vector(std::vector<double>(static_cast<size_t>(out.numel()), 0.0), out.shape(), {.dtype = DType::F64});
    for (int64_t i = 0; i < out.numel(); ++i) w.data<double>()[i] = 0.5 + 0.25 * static_cast<double>(i % 5);
    std::vector<Tensor> ref_grads;
    if (c.differentiable) {
      mf::sum(out * w).backward();
      for (const Tensor& l : leaves) ref_grads.push_back(l.grad());
    }
    for (size_t i = 0; i < xs.size(); ++i)
      for (size_t d = 0; d < c.shapes[i].size(); ++d) {
        if (c.shapes[i][d] < 2) continue;
        mf::SpmdOptions o;
        for (size_t k = 0; k < xs.size(); ++k) {
          Layout l = mf::sharding::replicated(c.shapes[k].size());
          if (k == i) l.dims[d].axes = {"model"};
          o.inputs.push_back(l);
        }
        o.input_requires_grad.assign(xs.size(), c.differentiable);
        auto errors = on_devices(2, [&](int rank, std::shared_ptr<mf::distributed::Communicator> comm) {
          mf::SpmdProgram p(fn, specs, mesh, {}, o);
          auto counted = std::make_shared<mf::distributed::CountingCommunicator>(comm);
          p.bind(counted);
          counted->counts()->reset();
          std::vector<Tensor> mine;
          for (const Tensor& x : xs) mine.push_back(x.clone().detach().set_requires_grad(c.differentiable));
          Tensor got = p.run(mine)[0];
          EXPECT_TRUE(mf_test::tensors_near(got.to(DType::F64), out.detach().to(DType::F64), 1e-12, 1e-12))
              << name << ", input " << i << " split on dim " << d << ", rank " << rank;
          if (!c.differentiable) {
            EXPECT_EQ(counted->counts()->total_bytes(), p.bytes_per_step(rank)) << name << " rank " << rank;
            return;
          }
          mf::sum(got * w.clone()).backward();
          EXPECT_EQ(counted->counts()->total_bytes(), p.bytes_per_step(rank))
              << name << ", input " << i << " split on dim " << d << ", rank " << rank;
          for (size_t k = 0; k < mine.size(); ++k) {
            if (!ref_grads[k].defined()) continue;
            ASSERT_TRUE(mine[k].grad().defined()) << name << " input " << k;
            EXPECT_TRUE(mf_test::tensors_near(mine[k].grad(), ref_grads[k], 1e-11, 1e-10))
                << name << ": gradient of input " << k << " with input " << i << " split on dim " << d << ", rank " << rank;
          }
        });
        expect_no_errors(errors);
      }
    const mf::Graph traced = mf::trace(fn, specs);
    for (const auto& n : traced.nodes()) covered.insert(mf::Graph::node_label(n));
  }
  // Every op that has a rule was exercised by some case.
  for (const auto& op : mf::registered_ops())
    if (mf::get_op(op).sharding && op.rfind("spmd_", 0) != 0 && op != "gelu_derivative")
      EXPECT_TRUE(covered.count(op)) << "op " << op << " has a sharding rule but no sweep case ran it";
  std::string list;
  for (const auto& n : skipped) list += " " + n;
  std::printf("cases without rules (skipped):%s\n", list.c_str());
}

// --- Bad input ------------------------------------------------------------------------------------

TEST(Partitioner, BadAnnotationsAreNamed) {
  std::mt19937 rng(9);
  Mlp mlp(4, 8, rng);
  mf::Mesh mesh({{"data", 2}, {"model", 2}});
  std::vector<mf::TensorMeta> specs{{{4, 4}, DType::F64}, {{4, 4}, DType::F64}};
  EXPECT_MF_ERROR(mf::SpmdProgram(std::ref(mlp), specs, mesh, {{mlp.w1, mf::layout({Replicated, "tensor"})}}),
                  "mesh axis 'tensor' is not in the mesh", "'w1'", "[R, tensor]", "Mesh(data=2, model=2)");
  EXPECT_MF_ERROR(mf::SpmdProgram(std::ref(mlp), specs, mesh, {{mlp.w1, mf::layout({"model", "model"})}}),
                  "mesh axis 'model' is used twice", "'w1'", "[model, model]");
  EXPECT_MF_ERROR(mf::SpmdProgram(std::ref(mlp), specs, mesh, {{mlp.w1, mf::layout({"model"})}}),
                  "layout has 1 dimensions but the tensor has 2", "'w1'");
  Tensor unused = weight({3}, rng, "unused");
  EXPECT_MF_ERROR(mf::SpmdProgram(std::ref(mlp), specs, mesh, {{unused, mf::layout({"model"})}}),
                  "'unused'", "not used by the traced function");
  // A mesh larger than the job.
  auto errors = on_devices(2, [&](int, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::SpmdProgram p(std::ref(mlp), specs, mesh, mlp.megatron());
    p.bind(comm);
  });
  EXPECT_NE(errors[0].find("Mesh(data=2, model=2) has 4 devices but the job has 2 ranks"), std::string::npos) << errors[0];
}

TEST(Partitioner, OpWithoutRuleIsNamed) {
  // Every op of the registry has a rule now; one registered here without one is refused by name
  // instead of gathered silently.
  static const bool defined = [] {
    mf::OpDef& d = mf::define_op("test_op_without_rule");
    d.infer = [](const std::vector<mf::TensorMeta>& in, const mf::Attrs&) { return in; };
    mf::register_kernel("test_op_without_rule", mf::DeviceType::CPU,
                        [](const mf::ExecContext&, const std::vector<Tensor>& in, std::vector<Tensor>& out,
                           const mf::Attrs&) { out[0].copy_(in[0]); });
    return true;
  }();
  ASSERT_TRUE(defined);
  auto fn = [](const std::vector<Tensor>& xs) {
    return std::vector<Tensor>{mf::call_op1(mf::get_op("test_op_without_rule"), {xs[0]})};
  };
  EXPECT_MF_ERROR(mf::SpmdProgram(fn, {{{4, 4}, DType::F64}}, mf::Mesh({{"model", 2}}), {}),
                  "op test_op_without_rule has no sharding rule");
}
