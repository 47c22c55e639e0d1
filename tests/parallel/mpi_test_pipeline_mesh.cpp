// PipelineStrategy on a 2-D mesh over MPI ranks: 2 copies (the "data" axis) of a 2-stage pipeline
// (the "pipe" axis) on 4 ranks (on 2 ranks: 2 copies of a 1-stage pipeline) train to the float64
// weights of one process with the whole model; every rank checks against its own run.
//   mpirun -np 4 ./parallel_mpi_test_pipeline_mesh_np4
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
      L::Dense(12, {.activation = "relu", .name = "d2", .dtype = DType::F64}),
      L::Dense(8, {.activation = "tanh", .name = "d3", .dtype = DType::F64}),
      L::Dense(3, {.name = "d4", .dtype = DType::F64})});
}

void start(mf::Model& m, double shift) {
  mf::Generator g(11);
  for (auto v : m.weights()) v.copy_(mf::rand(v.shape(), {.dtype = DType::F64}, &g) - 0.5 + shift);
  m.compile({.optimizer = mf::optimizers::Adam({{.learning_rate = 0.01}}), .loss = "mse", .metrics = {"mae"}});
}

double max_diff(mf::Model& a, mf::Model& b) {
  double d = 0;
  auto wa = a.weights(), wb = b.weights();
  for (size_t i = 0; i < wa.size(); ++i) d = std::max(d, mf::max(mf::abs(wa[i] - wb[i])).item());
  return d;
}

TEST(PipelineMeshMpi, DataTimesPipeEqualsOneProcess) {
  const int n = mf::distributed::detect_world().size;
  ASSERT_TRUE(n == 2 || n == 4) << "run under mpirun -np 4 (2 x 2) or -np 2 (2 x 1)";
  mf::Generator g(3);
  Tensor x = mf::randn({44, 6}, {.dtype = DType::F64}, &g), y = mf::randn({44, 3}, {.dtype = DType::F64}, &g);
  mf::FitOptions fo{.epochs = 3, .batch_size = 16, .verbose = 0};  // a last batch of 12: 6 rows per copy
  auto reference = build();
  start(*reference, 0.0);
  mf::History want = reference->fit({x}, {y}, fo);

  mf::PipelineStrategy strategy(mf::Mesh({{"data", 2}, {"pipe", n / 2}}),
                                {.micro_batches = 2, .cuts = n == 4 ? std::vector<std::string>{"d3"}
                                                                    : std::vector<std::string>{}});
  EXPECT_EQ(strategy.num_data_replicas(), 2);
  EXPECT_EQ(strategy.data_replica(), strategy.process_rank() / (n / 2));
  auto scope = strategy.scope();
  auto model = build();
  start(*model, 0.1 * strategy.data_replica());  // copy 0's weights must win
  mf::History got = model->fit({x}, {y}, fo);
  EXPECT_LT(max_diff(*model, *reference), 1e-10) << "rank " << strategy.process_rank();
  for (const char* key : {"loss", "mae"})
    for (size_t e = 0; e < want[key].size(); ++e) EXPECT_NEAR(got[key][e], want[key][e], 1e-10) << key << " " << e;
  auto ev = model->evaluate({x}, {y}, {.verbose = 0});
  auto ev_ref = reference->evaluate({x}, {y}, {.verbose = 0});
  EXPECT_NEAR(ev.at("loss"), ev_ref.at("loss"), 1e-10);
  EXPECT_NEAR(ev.at("mae"), ev_ref.at("mae"), 1e-10);
}

}  // namespace
