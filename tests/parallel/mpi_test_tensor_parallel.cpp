// Tensor parallelism under mpirun (2 and 3 ranks): ShardedStrategy over Mesh(model=N), the MLP's
// first two layers split Megatron-style (16 hidden units over 3 ranks: 6, 5, 5), equals training
// in one process; a model saved from the split run (weights and Adam slots gathered whole) resumes
// in one process exactly, and loads back into a split run whose slots are cut to each rank's part.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "dp_models.h"
#include "meshflow/distributed/world.h"
#include "test_util.h"

namespace {

using namespace dp_test;

mf::ShardedStrategy& strategy() {
  static const int n = mf::distributed::detect_world().size;
  static mf::ShardedStrategy s(mf::Mesh({{"model", n}}));
  return s;
}

std::shared_ptr<mf::Model> build_named() {
  auto dense = [](int64_t units, const std::string& act, const std::string& name) {
    return mf::layers::Dense(units, {.activation = act, .name = name, .dtype = DType::F64});
  };
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      dense(16, "relu", "d0"), dense(16, "relu", "d1"), dense(3, "softmax", "d2")});
}

void split(mf::ShardedStrategy& s, mf::Model& m) {
  auto w = m.weights();  // d0 kernel, bias; d1 kernel, bias; d2 kernel, bias
  s.annotate(w[0], {mf::Replicated, "model"});
  s.annotate(w[1], {"model"});
  s.annotate(w[2], {"model", mf::Replicated});
}

TEST(MpiTensorParallel, FitMatchesOneProcessAndSaveResumesAnywhere) {
  auto& s = strategy();
  ASSERT_GE(s.num_processes(), 2) << "run under mpirun -np 2 or more";
  auto [x, y] = data(37, {6}, 51);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = true, .seed = 5};
  mf::FitOptions more{.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false};

  auto reference = build_named();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  mf::History hr = reference->fit({x}, {y}, fo);

  std::shared_ptr<mf::Model> dist;
  {
    auto scope = s.scope();
    dist = build_named();
    compile(*dist);
  }
  set_known_weights(*dist, x, 0.02 * s.process_rank());  // rank 0's weights win
  split(s, *dist);
  mf::History h = dist->fit({x}, {y}, fo);
  EXPECT_TRUE(histories_near(h, hr, 1e-10)) << "rank " << s.process_rank();
  EXPECT_TRUE(weights_near(*dist, *reference, 1e-10)) << "rank " << s.process_rank();

  const auto folder =
      std::filesystem::temp_directory_path() / ("mf_mpi_tensor_parallel_" + std::to_string(getppid())) / "m";
  dist->save(folder.string());
  reference->fit({x}, {y}, more);

  // One process resumes from the whole weights and slots.
  auto alone = mf::load_model(folder.string());
  alone->fit({x}, {y}, more);
  EXPECT_TRUE(weights_near(*alone, *reference, 1e-10)) << "rank " << s.process_rank();

  // A new split run resumes from the same folder: each rank cuts its part of the slots.
  mf::ShardedStrategy again(mf::Mesh({{"model", s.num_processes()}}));
  std::shared_ptr<mf::Model> resumed;
  {
    auto scope = again.scope();
    resumed = mf::load_model(folder.string());
  }
  split(again, *resumed);
  resumed->fit({x}, {y}, more);
  EXPECT_TRUE(weights_near(*resumed, *reference, 1e-10)) << "rank " << s.process_rank();

  std::vector<double> done{1.0};
  s.reduce_sums(done);  // every rank has loaded before rank 0 removes the folder
  if (s.process_rank() == 0) std::filesystem::remove_all(folder.parent_path());
}

}  // namespace
