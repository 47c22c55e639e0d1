// Callbacks that write files through the saving API: ModelCheckpoint and BackupAndRestore (a
// training process killed in epoch 4 and rerun resumes there and ends with the same weights).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "callback_fixtures.h"
#include "meshflow/models/data.h"
#include "meshflow/models/saving.h"

using namespace meshflow;
using namespace meshflow::callbacks;
namespace fs = std::filesystem;

namespace {

constexpr int kEpochs = 6;
constexpr int kKillEpoch = 4;
constexpr int64_t kKillBatch = 2;

FitOptions fit_options(std::vector<std::shared_ptr<Callback>> cbs) {
  // Shuffled: fit() replays the skipped epochs' shuffles, so a resumed run sees the same batches.
  return {.epochs = kEpochs, .batch_size = 16, .verbose = 0, .shuffle = true, .seed = 7, .callbacks = std::move(cbs)};
}

// Kills its own process, as a crash or a preempted job would, at one batch of one epoch.
class KillAt : public Callback {
 public:
  void on_epoch_begin(int epoch, Logs&) override { epoch_ = epoch; }
  void on_train_batch_begin(int64_t batch, Logs&) override {
    if (epoch_ == kKillEpoch && batch == kKillBatch) raise(SIGKILL);
  }

 private:
  int epoch_ = 0;
};

std::shared_ptr<Sequential> built_model() {
  auto model = cb_test::linear_model(0.05, "adam");
  model->predict(cb_test::regression_data().x);  // builds the weights a backup restores into
  return model;
}

}  // namespace

// The same data as a shuffled, batched pipeline: each pass's order depends only on its number.
Dataset pipeline() {
  auto data = cb_test::regression_data();
  return Dataset::from_tensors(data.x, data.y).shuffle(0, 11).batch(16);
}

// Trains from arrays, or from pipeline() when `dataset`.
void train(Model& model, bool dataset, std::vector<std::shared_ptr<Callback>> cbs) {
  auto data = cb_test::regression_data();
  if (dataset) {
    Dataset d = pipeline();
    model.fit(d, fit_options(std::move(cbs)));
  } else {
    model.fit(data.x, data.y, fit_options(std::move(cbs)));
  }
}

// Run only as the child of KilledRunResumesWithTheSameWeights (MESHFLOW_BACKUP_CHILD names the
// backup folder, MESHFLOW_BACKUP_DATASET=1 trains from the pipeline): trains with
// BackupAndRestore until KillAt kills the process.
TEST(BackupAndRestore, ChildTrainsUntilKilled) {
  const char* dir = std::getenv("MESHFLOW_BACKUP_CHILD");
  if (!dir) GTEST_SKIP() << "the child half of BackupAndRestore.KilledRunResumesWithTheSameWeights";
  auto model = built_model();
  const char* dataset = std::getenv("MESHFLOW_BACKUP_DATASET");
  train(*model, dataset && std::string(dataset) == "1",
        {std::make_shared<BackupAndRestore>(dir), std::make_shared<KillAt>()});
  ADD_FAILURE() << "the child was not killed";
}

class KilledRun : public ::testing::TestWithParam<bool> {};

TEST_P(KilledRun, ResumesWithTheSameWeights) {
  const bool dataset = GetParam();
  auto reference = built_model();
  train(*reference, dataset, {});

  std::string dir = cb_test::temp_dir(dataset ? "backup_dataset" : "backup");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // exec at once: the parent's OpenMP threads do not survive fork(), a fresh process is clean.
    setenv("MESHFLOW_BACKUP_CHILD", dir.c_str(), 1);
    setenv("MESHFLOW_BACKUP_DATASET", dataset ? "1" : "0", 1);
    setenv("OMP_NUM_THREADS", "2", 1);
    execl("/proc/self/exe", "child", "--gtest_filter=BackupAndRestore.ChildTrainsUntilKilled", (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
  auto backup = std::make_shared<BackupAndRestore>(dir);
  ASSERT_TRUE(fs::exists(backup->checkpoint_path()));

  auto resumed = built_model();
  auto recorder = std::make_shared<cb_test::Recorder>();
  // The rerun is the same program: fit() learns from the callback where to resume.
  train(*resumed, dataset, {backup, recorder});
  EXPECT_EQ(backup->initial_epoch_override(), kKillEpoch);  // epochs 0-3 were saved, 4 was cut short
  EXPECT_EQ(recorder->epochs_begun, (std::vector<int>{4, 5}));
  EXPECT_EQ(resumed->optimizer()->iterations(), reference->optimizer()->iterations());
  auto want = reference->get_weights(), got = resumed->get_weights();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(mf_test::tensors_near(got[i], want[i], 1e-6, 0)) << i;
  EXPECT_FALSE(fs::exists(backup->checkpoint_path()));  // a finished run leaves no backup behind
}

// From arrays (fit replays the skipped epochs' shuffles) and from a Dataset (fit skips its passes).
INSTANTIATE_TEST_SUITE_P(Source, KilledRun, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Dataset" : "Arrays"; });

// Without the skip, a resumed pipeline starts its shuffles from pass 0 and ends elsewhere: the
// test above could tell.
TEST(BackupAndRestore, PipelinePassesDependOnTheirNumberOnly) {
  Dataset a = pipeline(), b = pipeline();
  for (int pass = 0; pass < 3; ++pass)
    while (a.next()) {
    }
  b.skip_passes(3);
  auto first_a = a.next(), first_b = b.next();
  Dataset c = pipeline();
  auto first_c = c.next();
  ASSERT_TRUE(first_a && first_b && first_c);
  EXPECT_TRUE(mf_test::tensors_near(first_a->first[0], first_b->first[0], 0, 0));
  EXPECT_FALSE(mf_test::tensors_near(first_a->first[0], first_c->first[0], 1e-3, 0));
}

TEST(BackupAndRestore, UnbuiltModelIsAClearError) {
  std::string dir = cb_test::temp_dir("backup_unbuilt");
  auto model = built_model();
  save_checkpoint(*model, dir + "/checkpoint.safetensors", Json{{"epoch", 1}});
  auto fresh = cb_test::linear_model();
  BackupAndRestore backup(dir);
  backup.set_model(fresh.get());
  Logs none;
  EXPECT_MF_ERROR(backup.on_train_begin(none), "BackupAndRestore", "no weights yet", "build it before fit()");
}

TEST(ModelCheckpoint, SaveBestOnlyWritesImprovedEpochsByPattern) {
  std::string dir = cb_test::temp_dir("ckpt");
  auto model = built_model();
  ModelCheckpoint ckpt(dir + "/w-{epoch:02d}-{loss:.2f}.safetensors",
                       {.monitor = "loss", .save_best_only = true, .save_weights_only = true});
  ckpt.set_model(model.get());
  std::vector<double> losses = {0.9, 0.5, 0.7, 0.25};
  std::vector<std::vector<Tensor>> weights_at;
  for (int e = 0; e < 4; ++e) {
    model->set_weights({full({3, 1}, double(e)), full({1}, double(e) / 2)});
    weights_at.push_back(model->get_weights());
    Logs logs{{"loss", losses[size_t(e)]}};
    ckpt.on_epoch_end(e, logs);
  }
  std::vector<std::string> expected = {dir + "/w-01-0.90.safetensors", dir + "/w-02-0.50.safetensors",
                                       dir + "/w-04-0.25.safetensors"};
  EXPECT_EQ(ckpt.saved_paths(), expected);
  EXPECT_FALSE(fs::exists(dir + "/w-03-0.70.safetensors"));
  auto fresh = built_model();
  load_weights(*fresh, expected[1]);
  EXPECT_TRUE(mf_test::tensors_near(fresh->get_weights()[0], weights_at[1][0], 0, 0));
  EXPECT_TRUE(mf_test::tensors_near(fresh->get_weights()[1], weights_at[1][1], 0, 0));
}

TEST(ModelCheckpoint, FullCheckpointKeepsTheOptimizerAndEpoch) {
  std::string dir = cb_test::temp_dir("ckpt_full");
  auto model = built_model();
  auto data = cb_test::regression_data();
  auto ckpt = std::make_shared<ModelCheckpoint>(dir + "/ckpt-{epoch}.safetensors", ModelCheckpointOptions{});
  model->fit(data.x, data.y, {.epochs = 2, .batch_size = 16, .verbose = 0, .validation_split = 0.25,
                              .callbacks = {ckpt}});
  ASSERT_EQ(ckpt->saved_paths().size(), 2u);
  auto fresh = built_model();
  Json meta = load_checkpoint(*fresh, dir + "/ckpt-2.safetensors");
  EXPECT_EQ(meta["epoch"], 1);
  EXPECT_TRUE(meta["logs"].contains("val_loss"));
  EXPECT_EQ(fresh->optimizer()->iterations(), model->optimizer()->iterations());
  for (size_t i = 0; i < model->get_weights().size(); ++i)
    EXPECT_TRUE(mf_test::tensors_near(fresh->get_weights()[i], model->get_weights()[i], 0, 0));
}
