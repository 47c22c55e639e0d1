// A checkpoint resharded between two jobs of different sizes (issue 11): ctest runs this program
// under mpirun -np 2, which trains under ZeRO-3 and saves (each rank its slices, rank 0 the index),
// then under -np 3 (the fixture orders them), which loads that folder under ZeRO-2 on 3 ranks,
// trains one more epoch and must equal one process that trained the three epochs itself; the
// same folder loaded by one process without a strategy must too.
#include <gtest/gtest.h>

#include <filesystem>

#include "dp_models.h"
#include "meshflow/distributed/world.h"

namespace {

using namespace dp_test;
namespace fs = std::filesystem;

const fs::path kFolder = fs::current_path() / "mf_reshard_across_jobs" / "model";

std::shared_ptr<mf::Model> named_mlp() {
  auto dense = [](int64_t units, const std::string& act, const std::string& name) {
    return mf::layers::Dense(units, {.activation = act, .name = name, .dtype = DType::F64});
  };
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      dense(16, "relu", "d0"), dense(7, "relu", "d1"), dense(3, "softmax", "d2")});
}

struct Job {
  Tensor x, y;
  mf::FitOptions first{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false};
  mf::FitOptions more{.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false};
};

Job setup() {
  Job r;
  std::tie(r.x, r.y) = data(30, {6}, 35);  // 30 rows: batches of 8 split 3/3/2 over 3 ranks
  return r;
}

TEST(ReshardAcrossJobs, SaveOnTwoRanksLoadOnThree) {
  const int n = mf::distributed::detect_world().size;
  ASSERT_TRUE(n == 2 || n == 3) << "run under mpirun -np 2 (save), then -np 3 (load)";
  Job run = setup();
  if (n == 2) {
    mf::ShardedStrategy s(mf::Mesh({{"data", 2}}), {.zero_stage = 3});
    s.set_bucket_options({.bucket_bytes = 232});
    std::shared_ptr<mf::Model> m;
    {
      auto scope = s.scope();
      m = named_mlp();
      compile(*m);
    }
    set_known_weights(*m, run.x, 0.0);
    m->fit({run.x}, {run.y}, run.first);
    if (s.process_rank() == 0) fs::remove_all(kFolder.parent_path());
    std::vector<double> sync{1.0};
    s.reduce_sums(sync);  // the old folder is gone before anyone saves
    m->save(kFolder.string());
    EXPECT_TRUE(fs::exists(kFolder / "optimizer.index.json")) << "rank " << s.process_rank();
    EXPECT_FALSE(fs::exists(kFolder / "optimizer.safetensors")) << "a ZeRO save writes one shard per rank";
    return;
  }
  ASSERT_TRUE(fs::exists(kFolder / "optimizer.index.json"))
      << kFolder << " is missing: ctest runs parallel_mpi_test_reshard_jobs_np2 first (the fixture)";
  auto reference = named_mlp();
  compile(*reference);
  set_known_weights(*reference, run.x, 0.0);
  reference->fit({run.x}, {run.y}, run.first);
  reference->fit({run.x}, {run.y}, run.more);

  mf::ShardedStrategy s(mf::Mesh({{"data", 3}}), {.zero_stage = 2});
  s.set_bucket_options({.bucket_bytes = 200});
  std::shared_ptr<mf::Model> m;
  {
    auto scope = s.scope();
    m = mf::load_model(kFolder.string());
  }
  EXPECT_EQ(m->strategy(), &s);
  m->fit({run.x}, {run.y}, run.more);
  EXPECT_TRUE(weights_near(*m, *reference, 1e-10)) << "rank " << s.process_rank() << " resumed on 3 ranks";
  // Each rank holds about a third of Adam's moments after the reshard.
  int64_t mine = 0, total = 0;
  for (const auto& e : m->optimizer()->slot_entries()) mine += e.value.numel();
  for (const auto& w : m->trainable_weights()) total += w.numel();
  EXPECT_LT(mine, total) << "rank " << s.process_rank() << " holds whole moments";
  std::vector<double> sum{double(mine)};
  s.reduce_sums(sum);
  EXPECT_EQ(sum[0], double(2 * total)) << "the 3 ranks' moments together cover each element once";

  // One process, no strategy, the same folder.
  if (s.process_rank() == 0) {
    auto alone = mf::load_model(kFolder.string());
    alone->fit({run.x}, {run.y}, run.more);
    EXPECT_TRUE(weights_near(*alone, *reference, 1e-10)) << "resumed in one process";
  }
  std::vector<double> done{1.0};
  s.reduce_sums(done);
  if (s.process_rank() == 0) fs::remove_all(kFolder.parent_path());
}

}  // namespace
