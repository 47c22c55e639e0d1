// ShardedStrategy under mpirun (2 and 3 ranks): ZeRO stages 1 and 2 over MPI equal single-process
// training on the same global batches; a checkpoint holds the whole optimizer slots.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "dp_models.h"
#include "meshflow/distributed/world.h"
#include "test_util.h"

namespace {

using namespace dp_test;
using mf_test::tensors_near;

mf::ShardedStrategy& strategy(int stage) {
  static const int n = mf::distributed::detect_world().size;
  static mf::ShardedStrategy s1(mf::Mesh({{"data", n}}), {.zero_stage = 1});
  static mf::ShardedStrategy s2(mf::Mesh({{"data", n}}), {.zero_stage = 2});
  static mf::ShardedStrategy s3(mf::Mesh({{"data", n}}), {.zero_stage = 3});
  return stage == 1 ? s1 : stage == 2 ? s2 : s3;
}

std::shared_ptr<mf::Model> build_in(mf::Strategy& s, std::shared_ptr<mf::Model> (*build)()) {
  auto scope = s.scope();
  auto m = mf::replicate_model(build);
  compile(*m);
  return m;
}

// Small buckets (many of them, split unevenly over the ranks); weights differ per rank at first.
void expect_equivalent(int stage, std::shared_ptr<mf::Model> (*build)(), const Shape& sample) {
  auto& s = strategy(stage);
  ASSERT_GE(s.num_processes(), 2) << "run under mpirun -np 2 or more";
  s.set_bucket_options({.bucket_bytes = 232});
  auto [x, y] = data(50, sample, 41);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = true, .seed = 9};
  auto dist = build_in(s, build);
  set_known_weights(*dist, x, 0.05 * s.process_rank());
  auto reference = build();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  mf::History hd = dist->fit({x}, {y}, fo);
  mf::History hr = reference->fit({x}, {y}, fo);
  EXPECT_TRUE(histories_near(hd, hr, 1e-10));
  EXPECT_TRUE(weights_near(*dist, *reference, 1e-10));

  int64_t mine = 0, total = 0;
  for (const auto& e : dist->optimizer()->slot_entries()) mine += e.value.numel();
  for (const auto& w : dist->trainable_weights()) total += w.numel();
  std::vector<double> sum{double(mine)};
  s.reduce_sums(sum);
  EXPECT_EQ(sum[0], double(2 * total)) << "the ranks' Adam moments together cover each element once";

  // Whole slots after the gather, equal to the reference's, on every rank.
  const auto dir = std::filesystem::temp_directory_path() /
                   ("mf_mpi_sharded_" + std::to_string(getppid()) + "_" + std::to_string(s.process_rank()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "ckpt.safetensors").string();
  mf::save_checkpoint(*dist, path);
  auto saved = mf::read_safetensors(path);
  for (const auto& [key, t] : reference->optimizer()->state()) {
    const std::string k = renamed_slot(*reference, *dist, key);
    auto it = std::find_if(saved.begin(), saved.end(), [&](const auto& e) { return e.first.ends_with(k); });
    ASSERT_NE(it, saved.end()) << k;
    EXPECT_TRUE(tensors_near(it->second, t, 1e-10, 1e-12)) << key;
  }
  std::filesystem::remove_all(dir);
}

TEST(MpiShardedStrategy, ZeroStage1MlpEqualsSingleProcess) { expect_equivalent(1, mlp, {6}); }
TEST(MpiShardedStrategy, ZeroStage2MlpEqualsSingleProcess) { expect_equivalent(2, mlp, {6}); }
TEST(MpiShardedStrategy, ZeroStage2CnnEqualsSingleProcess) { expect_equivalent(2, cnn, {6, 6, 2}); }
TEST(MpiShardedStrategy, ZeroStage3MlpEqualsSingleProcess) { expect_equivalent(3, mlp, {6}); }
TEST(MpiShardedStrategy, ZeroStage3CnnEqualsSingleProcess) { expect_equivalent(3, cnn, {6, 6, 2}); }


// Every rank saves the same folder: each writes its slices, rank 0 the index; a process loading it
// alone resumes exactly as the single-process run does.
TEST(MpiShardedStrategy, ShardedSaveLoadsInOneProcess) {
  auto& s = strategy(2);
  s.set_bucket_options({.bucket_bytes = 232});
  auto [x, y] = data(40, {6}, 43);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false};
  mf::FitOptions more{.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false};
  auto build_named = [] {
    auto dense = [](int64_t units, const std::string& act, const std::string& name) {
      return mf::layers::Dense(units, {.activation = act, .name = name, .dtype = DType::F64});
    };
    return std::static_pointer_cast<mf::Model>(std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
        dense(16, "relu", "d0"), dense(3, "softmax", "d1")}));
  };
  std::shared_ptr<mf::Model> dist;
  {
    auto scope = s.scope();
    dist = build_named();
    compile(*dist);
  }
  set_known_weights(*dist, x, 0.0);
  auto reference = build_named();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  dist->fit({x}, {y}, fo);
  reference->fit({x}, {y}, fo);
  reference->fit({x}, {y}, more);
  const auto folder = std::filesystem::temp_directory_path() / ("mf_mpi_sharded_save_" + std::to_string(getppid())) / "m";
  dist->save(folder.string());
  EXPECT_TRUE(std::filesystem::exists(folder / "optimizer.index.json"));
  auto loaded = mf::load_model(folder.string());
  loaded->fit({x}, {y}, more);
  EXPECT_TRUE(weights_near(*loaded, *reference, 1e-10)) << "rank " << s.process_rank();
  std::vector<double> done{1.0};
  s.reduce_sums(done);  // every rank has loaded before rank 0 removes the folder
  if (s.process_rank() == 0) std::filesystem::remove_all(folder.parent_path());
}

}  // namespace
