// ShardedStrategy (ZeRO stages 1 and 2 over a mesh's "data" axis) with ranks as threads of one
// process joined by a LocalGroup, against training on one device in float64; Mesh's arithmetic
// and errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "devices.h"
#include "dp_models.h"
#include "test_util.h"

namespace {

using namespace dp_test;
using mf_test::tensors_near;

// --- Mesh ----------------------------------------------------------------------------------------

TEST(Mesh, CoordinatesRunLastAxisFastest) {
  mf::Mesh m({{"data", 2}, {"model", 3}});
  EXPECT_EQ(m.size(), 6);
  EXPECT_EQ(m.str(), "Mesh(data=2, model=3)");
  EXPECT_EQ(m.coords(0), (std::vector<int>{0, 0}));
  EXPECT_EQ(m.coords(1), (std::vector<int>{0, 1}));
  EXPECT_EQ(m.coords(4), (std::vector<int>{1, 1}));
  for (int r = 0; r < 6; ++r) EXPECT_EQ(m.rank_of(m.coords(r)), r);
  EXPECT_EQ(m.axis_group(4, "model"), (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(m.axis_group(4, "data"), (std::vector<int>{1, 4}));
  EXPECT_EQ(m.axis_index("model"), 1);
  EXPECT_EQ(m.axis_size("data"), 2);
  EXPECT_TRUE(m.has_axis("data"));
  EXPECT_FALSE(m.has_axis("pipe"));
}

TEST(Mesh, BadMeshesAreNamed) {
  EXPECT_MF_ERROR(mf::Mesh(std::vector<mf::MeshAxis>{}), "at least one axis");
  EXPECT_MF_ERROR(mf::Mesh({{"data", 2}, {"data", 2}}), "'data'", "twice");
  EXPECT_MF_ERROR(mf::Mesh({{"", 2}}), "no name");
  EXPECT_MF_ERROR(mf::Mesh({{"data", 0}}), "'data'", "size 0");
  mf::Mesh m({{"data", 2}, {"model", 2}});
  EXPECT_MF_ERROR(m.axis_index("x"), "mesh axis 'x' is not in Mesh(data=2, model=2)");
  EXPECT_MF_ERROR(m.coords(4), "rank 4");
  EXPECT_MF_ERROR(m.rank_of({0, 2}), "coordinate");
}

TEST(ShardedStrategy, BadMeshesAndStagesAreNamed) {
  mf::distributed::LocalGroup group(2);
  auto comm = group.communicator(0);
  EXPECT_MF_ERROR(mf::ShardedStrategy(comm, mf::Mesh({{"data", 4}})), "Mesh(data=4) has 4 devices but the job has 2 ranks");
  EXPECT_MF_ERROR(mf::ShardedStrategy(comm, mf::Mesh({{"data", 1}, {"model", 2}}), {.zero_stage = 2}),
                  "zero_stage 2 with Mesh(data=1, model=2)", "tensor parallelism");
  EXPECT_MF_ERROR(mf::ShardedStrategy(comm, mf::Mesh({{"batch", 2}}), {.zero_stage = 1}), "zero_stage 1");
  EXPECT_MF_ERROR(mf::ShardedStrategy(comm, mf::Mesh({{"data", 2}}), {.zero_stage = 3, .live_buckets = 1}),
                  "live_buckets 1 must be at least 2");
  EXPECT_MF_ERROR(mf::ShardedStrategy(comm, mf::Mesh({{"data", 2}}), {.zero_stage = 4}), "zero_stage 4",
                  "not a ZeRO stage");
  EXPECT_MF_ERROR(mf::ShardedStrategy(nullptr, mf::Mesh({{"data", 2}})), "communicator is null");
  mf::ShardedStrategy ok(comm, mf::Mesh({{"data", 2}, {"model", 1}}), {.zero_stage = 2});
  EXPECT_EQ(ok.zero_stage(), 2);
  EXPECT_EQ(ok.mesh().str(), "Mesh(data=2, model=1)");
}

// --- Training -----------------------------------------------------------------------------------

std::shared_ptr<mf::Model> named_mlp();  // the MLP with fixed layer names (below)

// Runs body(rank, strategy) on n threads, each a rank of a ShardedStrategy over a LocalGroup.
std::vector<std::string> on_ranks(int n, mf::ShardedOptions options, size_t bucket_bytes,
                                  const std::function<void(int, mf::ShardedStrategy&)>& body) {
  return mf_test::on_devices(n, [&](int r, std::shared_ptr<mf::distributed::Communicator> comm) {
    mf::ShardedStrategy s(comm, mf::Mesh({{"data", n}}), options);
    s.set_bucket_options({.bucket_bytes = bucket_bytes});
    body(r, s);
  });
}

std::shared_ptr<mf::Optimizer> make_optimizer(const std::string& clip) {
  mf::optimizers::AdamOptions o;
  o.learning_rate = 0.01;
  if (clip == "clipnorm") o.clipnorm = 0.05;
  if (clip == "global_clipnorm") o.global_clipnorm = 0.08;
  return mf::optimizers::Adam(o);
}

void compile_with(mf::Model& m, const std::string& clip) {
  m.compile({.optimizer = make_optimizer(clip), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
}

// build() replicated and compiled (Adam, `clip`) inside the strategy's scope, as users write it.
std::shared_ptr<mf::Model> compiled_in(mf::Strategy& s, std::shared_ptr<mf::Model> (*build)(), const std::string& clip) {
  auto scope = s.scope();
  auto m = mf::replicate_model(build);
  compile_with(*m, clip);
  return m;
}

int64_t slot_elements(const mf::Optimizer& opt) {
  int64_t n = 0;
  for (const auto& e : opt.slot_entries()) n += e.value.numel();
  return n;
}

int64_t weight_elements(const mf::Model& m) {
  int64_t n = 0;
  for (const auto& w : m.trainable_weights()) n += w.numel();
  return n;
}

struct Case {
  int ranks;
  int stage;
  std::string clip;  // "", "clipnorm" or "global_clipnorm"
  size_t bucket_bytes;
};

// Trains the MLP with ZeRO on `ranks` threads (weights start different per rank: rank 0's win) and
// alone; both runs must agree to float64 rounding, every rank must hold the whole model, and each
// rank's Adam moments must cover only its share of the elements.
void expect_equivalent(const Case& c) {
  auto [x, y] = data(37, {6}, 21);  // batches of 8 leave a last one of 5, split unevenly
  auto [xv, yv] = data(9, {6}, 22);
  mf::FitOptions fo{.epochs = 3, .batch_size = 8, .verbose = 0, .shuffle = true, .seed = 3};
  fo.validation_data = std::make_pair(mf::Tensors{xv}, mf::Tensors{yv});

  auto reference = mlp();
  set_known_weights(*reference, x, 0.0);
  compile_with(*reference, c.clip);
  mf::History hr = reference->fit({x}, {y}, fo);
  const int64_t total = weight_elements(*reference);

  std::vector<int64_t> slots(c.ranks);
  auto errors = on_ranks(c.ranks, {.zero_stage = c.stage}, c.bucket_bytes, [&](int r, mf::ShardedStrategy& s) {
    auto m = compiled_in(s, mlp, c.clip);
    set_known_weights(*m, x, 0.03 * r);
    mf::History h = m->fit({x}, {y}, fo);
    EXPECT_TRUE(histories_near(h, hr, 1e-10)) << "rank " << r;
    EXPECT_TRUE(weights_near(*m, *reference, 1e-10)) << "rank " << r;
    slots[r] = slot_elements(*m->optimizer());
    if (c.stage >= 2)
      for (const auto& w : m->trainable_weights()) EXPECT_FALSE(w.grad().defined()) << w.name() << " kept a gradient";
  });
  for (int r = 0; r < c.ranks; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  // Adam keeps two moments per element: together the ranks hold each element's once, each rank
  // about 1/N of them (a bucket's split differs from an even one by at most a row per bucket).
  int64_t sum = 0;
  for (int r = 0; r < c.ranks; ++r) {
    sum += slots[r];
    if (c.stage >= 1) EXPECT_LE(slots[r], 2 * (total / c.ranks + 8)) << "rank " << r;
  }
  EXPECT_EQ(sum, c.stage >= 1 ? 2 * total : 2 * total * c.ranks);
}

TEST(ShardedStrategy, ZeroStage1OnTwoRanksEqualsOneDevice) { expect_equivalent({2, 1, "", 256}); }
TEST(ShardedStrategy, ZeroStage2OnTwoRanksEqualsOneDevice) { expect_equivalent({2, 2, "", 256}); }
TEST(ShardedStrategy, ZeroStage1OnThreeRanksUnevenSharesEqualsOneDevice) { expect_equivalent({3, 1, "", 200}); }
TEST(ShardedStrategy, ZeroStage2OnThreeRanksUnevenSharesEqualsOneDevice) { expect_equivalent({3, 2, "", 200}); }
TEST(ShardedStrategy, ZeroStage2OneBucketEqualsOneDevice) { expect_equivalent({3, 2, "", 25u << 20}); }
TEST(ShardedStrategy, ZeroStage3OnTwoRanksEqualsOneDevice) { expect_equivalent({2, 3, "", 256}); }
TEST(ShardedStrategy, ZeroStage3OnThreeRanksUnevenSharesEqualsOneDevice) { expect_equivalent({3, 3, "", 200}); }
TEST(ShardedStrategy, ZeroStage3GlobalClipnormEqualsOneDevice) { expect_equivalent({3, 3, "global_clipnorm", 200}); }

// Between ZeRO-3 steps (train_on_batch) every weight's memory is given back; reading a weight
// gathers its bucket from the ranks' shards (every rank reads the same), and equals one device's.
// A write into a sharded weight is refused instead of being lost at the next release.
TEST(ShardedStrategy, ZeroStage3ReleasesWeightsBetweenSteps) {
  auto [x, y] = data(27, {6}, 35);  // 3 steps of 9 rows, 3 per rank (train_on_batch takes equal shares)
  auto reference = named_mlp();
  set_known_weights(*reference, x, 0.0);
  compile_with(*reference, "");
  for (int k = 0; k < 3; ++k) reference->train_on_batch({x.slice(0, 9 * k, 9 * k + 9)}, {y.slice(0, 9 * k, 9 * k + 9)});
  auto errors = on_ranks(3, {.zero_stage = 3, .live_buckets = 2}, 200, [&](int r, mf::ShardedStrategy& s) {
    auto m = compiled_in(s, named_mlp, "");
    set_known_weights(*m, x, 0.0);
    for (int k = 0; k < 3; ++k) {
      auto rows = [&](const Tensor& t) { return t.slice(0, 9 * k + 3 * r, 9 * k + 3 * r + 3); };
      m->train_on_batch({rows(x)}, {rows(y)});
    }
    for (const auto& w : m->trainable_weights())
      EXPECT_TRUE(w.impl()->storage->is_released()) << w.name() << " holds its memory between steps on rank " << r;
    EXPECT_TRUE(weights_near(*m, *reference, 1e-10)) << "rank " << r;
    auto w0 = m->trainable_weights()[0];
    EXPECT_MF_ERROR(w0.assign(mf::zeros(w0.shape(), {.dtype = DType::F64})), "sharded between uses");
  });
  for (int r = 0; r < 3; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
}

TEST(ShardedStrategy, ZeroStage0IsPlainDataParallel) { expect_equivalent({2, 0, "", 256}); }
TEST(ShardedStrategy, ClipnormSumsSquaredNormsOverRanks) { expect_equivalent({3, 2, "clipnorm", 200}); }
TEST(ShardedStrategy, GlobalClipnormSumsSquaredNormsOverRanks) { expect_equivalent({3, 1, "global_clipnorm", 200}); }

// The MLP with fixed layer names, so a checkpoint loads into a model built again (the test layers'
// names are numbered, and the rank threads would number theirs in any order).
std::shared_ptr<mf::Model> named_mlp() {
  auto dense = [](int64_t units, const std::string& act, const std::string& name) {
    return mf::layers::Dense(units, {.activation = act, .name = name, .dtype = DType::F64});
  };
  return std::make_shared<mf::Sequential>(std::vector<std::shared_ptr<mf::Layer>>{
      dense(16, "relu", "d0"), dense(16, "relu", "d1"), dense(3, "softmax", "d2")});
}

// The MLP trained alone for `fo`, its optimizer slots then (copied), and the model after `more`.
std::pair<std::shared_ptr<mf::Model>, std::vector<std::pair<std::string, Tensor>>> reference_run(
    const Tensor& x, const Tensor& y, const mf::FitOptions& fo, const mf::FitOptions& more) {
  auto reference = named_mlp();
  set_known_weights(*reference, x, 0.0);
  compile_with(*reference, "");
  reference->fit({x}, {y}, fo);
  std::vector<std::pair<std::string, Tensor>> slots;
  for (const auto& [key, t] : reference->optimizer()->state()) slots.emplace_back(key, t.clone());
  reference->fit({x}, {y}, more);
  return {reference, slots};
}

// A checkpoint written under ZeRO holds the whole optimizer slots (gathered over the ranks), equal
// to a single device's; loading it into a fresh sharded run (slots sliced again) resumes exactly.
TEST(ShardedStrategy, CheckpointsHoldWholeSlotsAndResume) {
  auto [x, y] = data(24, {6}, 31);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false};
  auto run = reference_run(x, y, fo, {.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false});
  auto& reference = run.first;
  const auto& want = run.second;
  const auto dir = std::filesystem::temp_directory_path() / ("mf_sharded_ckpt_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);

  auto errors = on_ranks(3, {.zero_stage = 2}, 200, [&](int r, mf::ShardedStrategy& s) {
    const std::string path = (dir / ("rank" + std::to_string(r) + ".safetensors")).string();
    {
      auto m = compiled_in(s, named_mlp, "");
      set_known_weights(*m, x, 0.0);
      m->fit({x}, {y}, fo);
      mf::save_checkpoint(*m, path);  // every rank: gathering the slots is a collective
      auto saved = mf::read_safetensors(path);
      for (const auto& [key, t] : want) {
        const std::string k = renamed_slot(*reference, *m, key);
        auto it = std::find_if(saved.begin(), saved.end(), [&](const auto& e) { return e.first.ends_with(k); });
        ASSERT_NE(it, saved.end()) << k << " missing from rank " << r << "'s checkpoint";
        EXPECT_EQ(it->second.shape(), t.shape()) << k;
        EXPECT_TRUE(tensors_near(it->second, t, 1e-10, 1e-12)) << k << " rank " << r;
      }
    }
    // Resume: a fresh model loads the whole slots and trains one more epoch under ZeRO.
    auto m = compiled_in(s, named_mlp, "");
    m->predict_on_batch({x.slice(0, 0, 1)});
    mf::load_checkpoint(*m, path);
    m->fit({x}, {y}, {.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false});
    EXPECT_TRUE(weights_near(*m, *reference, 1e-10)) << "rank " << r << " after resuming";
  });
  for (int r = 0; r < 3; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  std::filesystem::remove_all(dir);
}


// save_model on every rank under ZeRO-2 writes one folder: each rank's slices of the optimizer
// slots in a shard file of its own and an index; it loads in one process with whole slots equal
// to one device's, and on 2 ranks under ZeRO-1 (sliced again) it resumes as one device does.
TEST(ShardedStrategy, ShardedSavesReshardOnLoad) {
  namespace fs = std::filesystem;
  auto [x, y] = data(24, {6}, 33);
  mf::FitOptions fo{.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle = false};
  mf::FitOptions more{.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false};
  auto run = reference_run(x, y, fo, more);
  auto& reference = run.first;
  const auto& want = run.second;
  const fs::path dir = fs::temp_directory_path() / ("mf_sharded_save_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string folder = (dir / "model").string();

  auto errors = on_ranks(3, {.zero_stage = 2}, 200, [&](int r, mf::ShardedStrategy& s) {
    auto m = compiled_in(s, named_mlp, "");
    set_known_weights(*m, x, 0.0);
    m->fit({x}, {y}, fo);
    m->save(folder);
    EXPECT_TRUE(fs::exists(fs::path(folder) / "optimizer.index.json")) << "rank " << r << " returned before publish";
  });
  for (int r = 0; r < 3; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
  EXPECT_FALSE(fs::exists(fs::path(folder) / "optimizer.safetensors"));
  int64_t total = 0;
  for (const auto& [key, t] : want) total += t.numel();
  for (int r = 0; r < 3; ++r) {
    char name[64];
    std::snprintf(name, sizeof(name), "optimizer-%05d-of-00003.safetensors", r);
    int64_t held = 0;
    for (const auto& [key, t] : mf::read_safetensors((fs::path(folder) / name).string())) held += t.numel();
    EXPECT_LE(held, total / 3 + 2 * 8) << name << " holds more than its third of the slots";
    EXPECT_GT(held, 0) << name;
  }

  // One process: the slots whole (Adam's moments and step must be right for the resumed run to
  // equal the reference's).
  auto loaded = mf::load_model(folder);
  loaded->fit({x}, {y}, more);
  EXPECT_TRUE(weights_near(*loaded, *reference, 1e-10)) << "resumed in one process";

  // Two ranks under ZeRO-1: the slots are sliced for the new partition.
  errors = on_ranks(2, {.zero_stage = 1}, 256, [&](int r, mf::ShardedStrategy& s) {
    std::shared_ptr<mf::Model> m;
    {
      auto scope = s.scope();
      m = mf::load_model(folder);
    }
    EXPECT_EQ(m->strategy(), &s);
    m->fit({x}, {y}, more);
    EXPECT_TRUE(weights_near(*m, *reference, 1e-10)) << "rank " << r << " resumed on 2 ranks";
  });
  for (int r = 0; r < 2; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;

  // An index whose shards leave a hole is named, with the tensor.
  const std::string index_path = (fs::path(folder) / "optimizer.index.json").string();
  std::ifstream in(index_path);
  mf::Json index = mf::Json::parse(in);
  in.close();
  auto& first = index["tensors"].begin().value();
  const std::string key = index["tensors"].begin().key();
  first["shards"].erase(first["shards"].begin());
  std::ofstream(index_path) << index.dump();
  EXPECT_MF_ERROR(mf::load_model(folder), "optimizer.index.json", key.c_str(), "leave out elements from 0");
  fs::remove_all(dir);
}

// Every rank of a data-parallel job saving the same folder: one save, never a rank's staging
// folder removed by another's (rank 0 writes, the others wait for it), and nothing left behind.
TEST(ShardedStrategy, EveryRankSavingOneFolderWritesOneSave) {
  namespace fs = std::filesystem;
  auto [x, y] = data(12, {6}, 34);
  const fs::path dir = fs::temp_directory_path() / ("mf_rank_save_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string folder = (dir / "model").string();
  mf::distributed::LocalGroup group(3);
  std::vector<std::string> errors(3);
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      try {
        mf::MultiWorkerMirroredStrategy s(group.communicator(r));
        auto m = compiled_in(s, named_mlp, "");
        m->fit({x}, {y}, {.epochs = 1, .batch_size = 4, .verbose = 0});
        for (int k = 0; k < 5; ++k) m->save(folder);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < 3; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  EXPECT_NO_THROW(mf::load_model(folder));
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string(), "model") << "left behind: " << e.path();
  fs::remove_all(dir);
}

}  // namespace
