// Tensor parallelism under mpirun (2 and 3 ranks): ShardedStrategy over Mesh(model=N), the MLP's
// first two layers split Megatron-style (16 hidden units over 3 ranks: 6, 5, 5), equals training
// in one process; a model saved from the split run (each rank writing its own parts of the Adam
// slots, nothing gathered) resumes exactly in one process, in a split run whose slots are cut to
// each rank's part again, and under ZeRO stage 3 on the same ranks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

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

std::string shard_file(int rank, int ranks) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "optimizer-%05d-of-%05d.safetensors", rank, ranks);
  return buf;
}

// The save wrote pieces, not gathered slots: for each slot of d0's kernel (6 x 16, columns split
// over the ranks) one box per rank, in that rank's file; for each slot of the replicated d2 one
// piece, written by rank 0 alone. This rank's file holds its own columns only.
void expect_own_pieces(mf::ShardedStrategy& s, const std::filesystem::path& folder) {
  const int n = s.num_processes(), rank = s.process_rank();
  EXPECT_FALSE(std::filesystem::exists(folder / "optimizer.safetensors"));
  std::ifstream in(folder / "optimizer.index.json");
  ASSERT_TRUE(in.good()) << "no optimizer.index.json in " << folder;
  const mf::Json index = mf::Json::parse(in);
  int split_slots = 0, whole_slots = 0;
  for (const auto& [key, t] : index.at("tensors").items()) {
    const auto& shards = t.at("shards");
    if (key.rfind("d0/kernel/", 0) == 0) {
      ++split_slots;
      ASSERT_EQ(shards.size(), static_cast<size_t>(n)) << key;
      for (int r = 0; r < n; ++r) {
        const auto [first, count] = mf::local_range(16, {"model"}, s.mesh(), r);
        EXPECT_EQ(shards[r].at("file"), shard_file(r, n)) << key;
        EXPECT_EQ(shards[r].at("start"), (std::vector<int64_t>{0, first})) << key;
        EXPECT_EQ(shards[r].at("extent"), (std::vector<int64_t>{6, count})) << key;
      }
    } else if (key.rfind("d2/", 0) == 0) {
      ++whole_slots;
      ASSERT_EQ(shards.size(), 1u) << key;
      EXPECT_EQ(shards[0].at("file"), shard_file(0, n)) << key;
    }
  }
  EXPECT_EQ(split_slots, 2);  // Adam's m and v
  EXPECT_EQ(whole_slots, 4);  // m and v of d2's kernel and bias
  const auto [first, count] = mf::local_range(16, {"model"}, s.mesh(), rank);
  int mine = 0;
  for (const auto& [key, t] : mf::read_safetensors((folder / shard_file(rank, n)).string()))
    if (key.rfind("d0/kernel/", 0) == 0) {
      ++mine;
      EXPECT_EQ(t.shape(), (mf::Shape{6, count})) << key << " on rank " << rank;
    }
  EXPECT_EQ(mine, 2) << "rank " << rank;
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
  expect_own_pieces(s, folder);

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

  // ZeRO stage 3 over the same ranks: the boxes are joined and cut again as runs of each slot.
  mf::ShardedStrategy zero(mf::Mesh({{"data", s.num_processes()}}), {.zero_stage = 3});
  std::shared_ptr<mf::Model> zeroed;
  {
    auto scope = zero.scope();
    zeroed = mf::load_model(folder.string());
  }
  zeroed->fit({x}, {y}, more);
  EXPECT_TRUE(weights_near(*zeroed, *reference, 1e-10)) << "rank " << s.process_rank();

  std::vector<double> done{1.0};
  s.reduce_sums(done);  // every rank has loaded before rank 0 removes the folder
  if (s.process_rank() == 0) {
    // An index that disagrees with its pieces is named, with the tensor: two boxes that overlap,
    // then a box that reaches past the slot.
    const auto index_path = folder / "optimizer.index.json";
    std::ifstream in(index_path);
    const mf::Json index = mf::Json::parse(in);
    in.close();
    mf::Json overlap = index;
    overlap["tensors"]["d0/kernel/momentum"]["shards"][1]["start"] = std::vector<int64_t>{0, 0};
    std::ofstream(index_path) << overlap.dump();
    EXPECT_MF_ERROR(mf::load_model(folder.string()), "optimizer.index.json", "'d0/kernel/momentum'",
                    "overlap at elements from 0");
    mf::Json outside = index;
    outside["tensors"]["d0/kernel/momentum"]["shards"][0]["start"] = std::vector<int64_t>{1, 0};
    std::ofstream(index_path) << outside.dump();
    EXPECT_MF_ERROR(mf::load_model(folder.string()), "optimizer.index.json", "'d0/kernel/momentum'",
                    "does not lie inside [6, 16]");
    std::filesystem::remove_all(folder.parent_path());
  }
}

}  // namespace
