// PipelineStrategy over MPI ranks (one stage each) trains to the same float64 weights as one
// process with the whole model; every rank checks against its own single-process run.
//   mpirun -np 2|3 ./parallel_mpi_test_pipeline_np2
#include <gtest/gtest.h>

#include "meshflow/meshflow.h"
#include "test_util.h"

namespace {

namespace mf = meshflow;
namespace L = meshflow::layers;
using mf::DType;
using mf::Tensor;

std::shared_ptr<mf::Sequential> build() {
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      mf::make_input_layer({6}), L::Dense(16, {.activation = "tanh", .name = "d1", .dtype = DType::F64}),
      L::Dropout(0.25, {.seed = 5, .name = "drop", .dtype = DType::F64}),
      L::Dense(12, {.activation = "relu", .name = "d2", .dtype = DType::F64}),
      L::Dense(8, {.activation = "tanh", .name = "d3", .dtype = DType::F64}),
      L::Dense(3, {.name = "d4", .dtype = DType::F64})});
}

void start(mf::Model& m) {
  mf::Generator g(11);
  for (auto v : m.weights()) v.copy_(mf::rand(v.shape(), {.dtype = DType::F64}, &g) - 0.5);
  m.compile({.optimizer = mf::optimizers::Adam({{.learning_rate = 0.01}}), .loss = "mse", .metrics = {"mae"}});
}

std::pair<Tensor, Tensor> data() {
  mf::Generator g(3);
  return {mf::randn({48, 6}, {.dtype = DType::F64}, &g), mf::randn({48, 3}, {.dtype = DType::F64}, &g)};
}

double max_diff(mf::Model& a, mf::Model& b) {
  double d = 0;
  auto wa = a.weights(), wb = b.weights();
  for (size_t i = 0; i < wa.size(); ++i) d = std::max(d, mf::max(mf::abs(wa[i] - wb[i])).item());
  return d;
}

void expect_equal_to_one_process(mf::PipelineSchedule schedule, int micro, bool automatic) {
  auto [x, y] = data();
  mf::FitOptions fo{.epochs = 3, .batch_size = 16, .verbose = 0};
  auto reference = build();
  start(*reference);
  mf::History want = reference->fit({x}, {y}, fo);

  mf::PipelineOptions o{.micro_batches = micro, .schedule = schedule};
  const int p = mf::distributed::detect_world().size;
  ASSERT_GE(p, 2) << "run under mpirun -np 2 or more";
  if (!automatic) o.cuts = p == 2 ? std::vector<std::string>{"d2"} : std::vector<std::string>{"drop", "d3"};
  mf::PipelineStrategy pipelined(o);
  auto scope = pipelined.scope();
  auto model = build();
  start(*model);
  mf::History got = model->fit({x}, {y}, fo);
  // fit settles every stage's weights onto every rank: each holds the whole trained model.
  EXPECT_LT(max_diff(*model, *reference), 1e-10) << "rank " << pipelined.stage();
  for (const char* key : {"loss", "mae"})
    for (size_t e = 0; e < want[key].size(); ++e) EXPECT_NEAR(got[key][e], want[key][e], 1e-10) << key << " " << e;
  // Evaluate and predict on every rank give the one-process numbers.
  auto ev = model->evaluate({x}, {y}, {.verbose = 0});
  auto ev_ref = reference->evaluate({x}, {y}, {.verbose = 0});
  EXPECT_NEAR(ev.at("loss"), ev_ref.at("loss"), 1e-10);
  EXPECT_LT(mf::max(mf::abs(model->predict({x})[0] - reference->predict({x})[0])).item(), 1e-10);
}

TEST(PipelineMpi, OneFOneBEqualsOneProcess) { expect_equal_to_one_process(mf::PipelineSchedule::OneFOneB, 4, false); }
TEST(PipelineMpi, GPipeEqualsOneProcess) { expect_equal_to_one_process(mf::PipelineSchedule::GPipe, 2, false); }
TEST(PipelineMpi, AutomaticCutsEqualOneProcess) { expect_equal_to_one_process(mf::PipelineSchedule::OneFOneB, 8, true); }

}  // namespace
