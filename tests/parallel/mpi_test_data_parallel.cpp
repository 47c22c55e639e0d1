// MultiWorkerMirroredStrategy under mpirun (2 and 3 ranks, 1 or 2 local devices each): fit equals
// single-process fit on the same global batches; every rank's History is the same; only rank 0 prints.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "dp_models.h"
#include "test_util.h"

namespace {

using namespace dp_test;

mf::MultiWorkerMirroredStrategy& strategy() {
  static mf::MultiWorkerMirroredStrategy s;
  return s;
}

// Two replica threads per rank (cpu:0, cpu:1): gradients go through the hierarchical communicator.
mf::MultiWorkerMirroredStrategy& two_device_strategy() {
  static mf::MultiWorkerMirroredStrategy s(std::vector<mf::Device>{"cpu:0", "cpu:1"});
  return s;
}

struct Case {
  std::function<std::shared_ptr<mf::Model>()> build;
  Shape sample_shape;
  bool shuffle;
};

// Trains the same model twice: under the strategy, starting from weights that differ per rank
// (only rank 0 has the reference's), and alone in this process as the reference. 50 samples
// in batches of 8 leave a last batch of 2, split unevenly (3 ranks: 1, 1 and none; with two
// devices per rank some replicas get none).
void expect_equivalent(const Case& c, mf::MultiWorkerMirroredStrategy& s = strategy()) {
  ASSERT_GE(s.num_processes(), 2) << "run under mpirun -np 2 or more";
  auto [x, y] = data(50, c.sample_shape, 11);
  auto [xv, yv] = data(13, c.sample_shape, 12);
  mf::FitOptions fo{.epochs = 3, .batch_size = 8, .verbose = 0, .shuffle = c.shuffle, .seed = 5};
  fo.validation_data = std::make_pair(mf::Tensors{xv}, mf::Tensors{yv});

  std::shared_ptr<mf::Model> dist;
  {
    auto scope = s.scope();
    dist = mf::replicate_model(c.build);
    compile(*dist);
  }
  EXPECT_EQ(dist->strategy(), &s);
  set_known_weights(*dist, x, 0.05 * s.process_rank());  // rank 0's values must win
  auto reference = c.build();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  EXPECT_EQ(reference->strategy(), nullptr);

  mf::History hd = dist->fit({x}, {y}, fo);
  mf::History hr = reference->fit({x}, {y}, fo);
  EXPECT_TRUE(histories_near(hd, hr, 1e-10));
  EXPECT_TRUE(weights_near(*dist, *reference, 1e-10));
  EXPECT_EQ(hd.history.count("val_accuracy"), 1u);

  // Every rank holds bitwise the same weights and History as rank 0.
  std::vector<Tensor> mine = dist->get_weights(), chief;
  for (auto& w : mine) chief.push_back(w.clone());
  s.broadcast_from_chief(chief);
  for (size_t i = 0; i < mine.size(); ++i)
    EXPECT_EQ(mine[i].to_vector<double>(), chief[i].to_vector<double>()) << "weight " << i;
  for (const auto& [k, v] : hd.history) {
    std::vector<Tensor> t{mf::from_vector(v, {int64_t(v.size())}, {.dtype = DType::F64})};
    s.broadcast_from_chief(t);
    EXPECT_EQ(t[0].to_vector<double>(), v) << k;
  }

  // evaluate() sums over the ranks' shares: it equals the reference on all of the data.
  auto ed = dist->evaluate({x}, {y}, {.batch_size = 7, .verbose = 0});
  auto er = reference->evaluate({x}, {y}, {.batch_size = 7, .verbose = 0});
  for (const auto& [k, v] : er) EXPECT_NEAR(ed.at(k), v, 1e-10 * std::max(1.0, std::abs(v))) << k;
}

TEST(MultiWorkerMirrored, MlpEqualsSingleProcessWithoutShuffle) { expect_equivalent({mlp, {6}, false}); }
TEST(MultiWorkerMirrored, MlpEqualsSingleProcessWithShuffle) { expect_equivalent({mlp, {6}, true}); }
TEST(MultiWorkerMirrored, CnnEqualsSingleProcessWithoutShuffle) { expect_equivalent({cnn, {6, 6, 2}, false}); }
TEST(MultiWorkerMirrored, CnnEqualsSingleProcessWithShuffle) { expect_equivalent({cnn, {6, 6, 2}, true}); }

// fit(Dataset): every rank iterates the same pipeline; each batch is a global batch split over the
// ranks. 49 shuffled rows in batches of 8 end with a batch of 1 (3 ranks: two get a placeholder).
TEST(MultiWorkerMirrored, FitOnADatasetEqualsSingleProcess) {
  auto& s = strategy();
  auto [x, y] = data(49, {6}, 13);
  auto pipeline = [&] { return mf::Dataset::from_tensors({x}, {y}).shuffle(49, 3).batch(8); };
  auto dist = replicated(s);
  set_known_weights(*dist, x, 0.05 * s.process_rank());
  auto reference = mlp();
  compile(*reference);
  set_known_weights(*reference, x, 0.0);
  mf::Dataset dd = pipeline(), dr = pipeline();
  mf::History hd = dist->fit(dd, {.epochs = 3, .verbose = 0});
  mf::History hr = reference->fit(dr, {.epochs = 3, .verbose = 0});
  EXPECT_TRUE(histories_near(hd, hr, 1e-10));
  EXPECT_TRUE(weights_near(*dist, *reference, 1e-10));
  for (const auto& [k, v] : hd.history) {
    std::vector<Tensor> t{mf::from_vector(v, {int64_t(v.size())}, {.dtype = DType::F64})};
    s.broadcast_from_chief(t);
    EXPECT_EQ(t[0].to_vector<double>(), v) << k;
  }
  // steps_per_epoch runs epochs across passes (7 batches a pass, 4 per epoch).
  hd = dist->fit(dd, {.epochs = 2, .verbose = 0, .steps_per_epoch = 4});
  hr = reference->fit(dr, {.epochs = 2, .verbose = 0, .steps_per_epoch = 4});
  EXPECT_TRUE(histories_near(hd, hr, 1e-10));
  EXPECT_TRUE(weights_near(*dist, *reference, 1e-10));

  // Ranks whose pipelines differ in length are told so together, before any step (no hang).
  mf::Dataset uneven = mf::Dataset::from_tensors({x}, {y}).batch(s.process_rank() == 0 ? 5 : 7);
  EXPECT_MF_ERROR(dist->fit(uneven, {.epochs = 1, .verbose = 0}), "different numbers of batches", "same pipeline");
  // Per-rank shards (each rank would train on 1/P of its own batches) are refused on every rank,
  // also when one rank alone shards and when the shards have equal lengths.
  mf::Dataset sharded = mf::Dataset::from_tensors({x}, {y}).shard(s.num_processes(), s.process_rank()).batch(5);
  EXPECT_MF_ERROR(dist->fit(sharded, {.epochs = 1, .verbose = 0}), "sharded", "unsharded pipeline");
  mf::Dataset one = s.process_rank() == 1 ? sharded : mf::Dataset::from_tensors({x}, {y}).batch(5);
  EXPECT_MF_ERROR(dist->fit(one, {.epochs = 1, .verbose = 0, .steps_per_epoch = 2}), "1 rank(s) pass a sharded");
}

TEST(MultiWorkerMirrored, OnlyTheChiefWritesTensorBoardFiles) {
  auto& s = strategy();
  auto [x, y] = data(20, {6}, 4);
  auto model = replicated(s);
  // One folder per rank, so each rank can see what it wrote itself.
  auto dir = std::filesystem::temp_directory_path() /
             ("meshflow_tb_chief_" + std::to_string(::getppid()) + "_" + std::to_string(s.process_rank()));
  std::filesystem::remove_all(dir);
  auto tb = std::make_shared<mf::callbacks::TensorBoard>(
      dir.string(), mf::callbacks::TensorBoardOptions{.histogram_freq = 1, .write_grads = true});
  model->fit({x}, {y}, {.epochs = 2, .batch_size = 8, .verbose = 0, .callbacks = {tb}});
  EXPECT_EQ(std::filesystem::exists(dir / "train"), s.is_chief()) << dir;
  std::filesystem::remove_all(dir);
}

TEST(MultiWorkerMirrored, TwoDevicesPerRankMlpEqualsSingleProcess) {
  auto& s = two_device_strategy();
  EXPECT_EQ(s.num_local_replicas(), 2);
  EXPECT_EQ(s.num_replicas_in_sync(), 2 * s.num_processes());
  EXPECT_EQ(s.replica_communicator(1)->backend(), "hierarchical");
  EXPECT_EQ(s.replica_communicator(1)->rank(), 2 * s.process_rank() + 1);
  expect_equivalent({mlp, {6}, true}, s);
}
TEST(MultiWorkerMirrored, TwoDevicesPerRankCnnEqualsSingleProcess) {
  expect_equivalent({cnn, {6, 6, 2}, false}, two_device_strategy());
}

TEST(MultiWorkerMirrored, ReplicaErrorsNameTheReplicaAndProcess) {
  auto& s = two_device_strategy();
  const int p = s.process_rank();
  const std::string who =
      "replica " + std::to_string(2 * p + 1) + " (process " + std::to_string(p) + ", local replica 1 on cpu:1) failed";
  EXPECT_MF_ERROR(s.run_replicas([](int r) {
                    if (r == 1) throw meshflow::Error("boom");
                  }),
                  who.c_str(), "boom");
}

TEST(MultiWorkerMirrored, OnlyTheChiefPrints) {
  auto& s = strategy();
  auto [x, y] = data(20, {6}, 3);
  auto model = replicated(s);
  EXPECT_EQ(model->is_chief(), s.process_rank() == 0);
  testing::internal::CaptureStdout();
  model->fit({x}, {y}, {.epochs = 2, .batch_size = 8, .verbose = 2});
  model->evaluate({x}, {y}, {.batch_size = 8, .verbose = 1});
  std::string out = testing::internal::GetCapturedStdout();
  if (s.is_chief()) {
    EXPECT_NE(out.find("Epoch 2/2"), std::string::npos) << out;
  } else {
    EXPECT_EQ(out, "");
  }
}

TEST(MultiWorkerMirrored, ScopeSetsTheCurrentStrategy) {
  EXPECT_EQ(mf::current_strategy(), nullptr);
  EXPECT_EQ(mf::get_strategy().name(), "DefaultStrategy");
  {
    auto scope = strategy().scope();
    EXPECT_EQ(mf::current_strategy(), &strategy());
    EXPECT_EQ(mf::get_strategy().num_replicas_in_sync(), strategy().num_processes());
  }
  EXPECT_EQ(mf::current_strategy(), nullptr);
}

}  // namespace
