// Callbacks: hooks fit(), evaluate() and predict() call at each stage, with Keras's logs dict.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/models/layer.h"  // Variable

namespace meshflow {

class Model;
using Logs = std::map<std::string, double>;

class Callback {
 public:
  virtual ~Callback() = default;
  void set_model(Model* model) { model_ = model; }
  Model* model() const { return model_; }
  // Keras's params: epochs, steps, verbose.
  void set_params(const std::map<std::string, double>& params) { params_ = params; }
  const std::map<std::string, double>& params() const { return params_; }

  virtual void on_train_begin(Logs&) {}
  virtual void on_train_end(Logs&) {}
  virtual void on_epoch_begin(int, Logs&) {}
  virtual void on_epoch_end(int, Logs&) {}
  virtual void on_train_batch_begin(int64_t, Logs&) {}
  virtual void on_train_batch_end(int64_t, Logs&) {}
  virtual void on_test_begin(Logs&) {}
  virtual void on_test_end(Logs&) {}
  virtual void on_test_batch_begin(int64_t, Logs&) {}
  virtual void on_test_batch_end(int64_t, Logs&) {}
  virtual void on_predict_begin(Logs&) {}
  virtual void on_predict_end(Logs&) {}
  virtual void on_predict_batch_begin(int64_t, Logs&) {}
  virtual void on_predict_batch_end(int64_t, Logs&) {}
  // A Meshflow hook Keras does not have: called by fit() in each training step once the gradients
  // are final (averaged over every replica and process) and before the optimizer clips, applies
  // and clears them. variables[i].grad() is the gradient of variables[i] (undefined: none this
  // step). Look, do not modify; copy what must outlive the call.
  virtual void on_train_batch_gradients(int64_t /*batch*/, const std::vector<Variable>& /*variables*/) {}

  // The epoch fit() should start from, asked after on_train_begin (BackupAndRestore resuming a
  // killed run); -1 leaves FitOptions::initial_epoch as it is.
  virtual int initial_epoch_override() const { return -1; }

 private:
  Model* model_ = nullptr;
  std::map<std::string, double> params_;
};

// What fit() returns: per-epoch values by key ("loss", "val_loss", "accuracy", ...).
struct History {
  std::vector<int> epoch;
  std::map<std::string, std::vector<double>> history;
  const std::vector<double>& operator[](const std::string& key) const;
};

namespace callbacks {

// The built-in callbacks, as in Keras. A `monitor` key missing from the epoch's logs is an error
// naming the keys there (Keras only warns; a run that silently never stops or never saves for
// hours is worse than one that fails at its first epoch end). A "val_" key on an epoch without
// validation (validation_freq > 1) is skipped.

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;     // a change smaller than this is no improvement
  int patience = 0;           // epochs without improvement before stopping
  std::string mode = "auto";  // "min", "max", or "auto" (max for accuracy-like names)
  std::optional<double> baseline;  // training stops unless the model beats it within patience
  bool restore_best_weights = false;
  int start_from_epoch = 0;   // epochs of warm-up before monitoring starts
  int verbose = 0;
};

// Stops training (model()->stop_training) when `monitor` stops improving.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(Logs& logs) override;
  int stopped_epoch() const { return stopped_epoch_; }  // 0 when it never stopped training
  int best_epoch() const { return best_epoch_; }
  double best() const { return best_; }

 private:
  EarlyStoppingOptions o_;
  bool minimize_;
  int wait_ = 0, stopped_epoch_ = 0, best_epoch_ = 0;
  double best_ = 0;
  std::vector<Tensor> best_weights_;  // empty until the first monitored epoch
};

struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  int verbose = 0;
  bool save_best_only = false;     // only when `monitor` improved on the best so far
  bool save_weights_only = false;  // save_weights(); otherwise save_checkpoint() with the optimizer
  std::string mode = "auto";
  std::optional<double> initial_value_threshold;  // the best value to beat at the start
};

// Saves the model at each epoch end to `filepath`, a pattern with fields from the epoch number
// (1-based, as Keras) and the logs: "ckpt-{epoch:02d}-{val_loss:.2f}.safetensors".
class ModelCheckpoint : public Callback {
 public:
  ModelCheckpoint(std::string filepath, ModelCheckpointOptions options = {});
  void on_epoch_end(int epoch, Logs& logs) override;
  double best() const { return best_; }
  const std::vector<std::string>& saved_paths() const { return saved_; }

 private:
  std::string filepath_;
  ModelCheckpointOptions o_;
  bool minimize_;
  double best_;
  std::vector<std::string> saved_;
};

// Python-style formatting of a checkpoint path: {name} or {name:spec} with spec
// [0][width][.precision][d|f|e|g|%]; "epoch" is `epoch` + 1, other names come from `logs`.
// "{{" and "}}" are literal braces. Unknown names and bad specs throw naming the field.
std::string format_checkpoint_path(const std::string& pattern, int epoch, const Logs& logs);

struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  double factor = 0.1;     // new_lr = lr * factor, in (0, 1)
  int patience = 10;
  int verbose = 0;
  std::string mode = "auto";
  double min_delta = 1e-4;
  int cooldown = 0;        // epochs to wait after a reduction before counting again
  double min_lr = 0.0;
};

// Multiplies the optimizer's learning rate by `factor` when `monitor` stops improving; adds
// "learning_rate" to the epoch logs.
class ReduceLROnPlateau : public Callback {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
  void on_train_begin(Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;

 private:
  ReduceLROnPlateauOptions o_;
  bool minimize_;
  double best_ = 0;
  int wait_ = 0, cooldown_counter_ = 0;
};

// Sets the learning rate at each epoch begin to schedule(epoch, current learning rate).
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int epoch, double lr)> schedule, int verbose = 0);
  void on_epoch_begin(int epoch, Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;

 private:
  std::function<double(int, double)> schedule_;
  int verbose_;
};

// Stops training at the first batch whose loss is NaN or infinite.
class TerminateOnNaN : public Callback {
 public:
  void on_train_batch_end(int64_t batch, Logs& logs) override;
};

// Streams the epoch logs to a CSV file: a header "epoch,<keys sorted>", then one row per epoch
// (0-based epoch, as Keras), flushed at each row; "NA" where an epoch lacks a key.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::string filename, char separator = ',', bool append = false);
  ~CSVLogger() override;
  void on_train_begin(Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(Logs& logs) override;

 private:
  std::string filename_;
  char separator_;
  bool append_;
  std::vector<std::string> keys_;
  struct File;
  std::unique_ptr<File> file_;
};

// Prints Keras's progress: "Epoch i/N", then a bar (live on a terminal, one line per epoch
// elsewhere) with the batch logs, finished with the epoch logs. Reads "epochs", "steps" and
// "verbose" from params(); with "steps" unknown (<= 0) only the final line is printed. fit() adds
// one writing to std::cout when verbose != 0 and its callbacks have none (as Keras).
class ProgbarLogger : public Callback {
 public:
  explicit ProgbarLogger(std::ostream* out = nullptr);  // null: std::cout
  ~ProgbarLogger() override;
  void on_train_begin(Logs& logs) override;
  void on_epoch_begin(int epoch, Logs& logs) override;
  void on_train_batch_end(int64_t batch, Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;

 private:
  std::ostream* out_;
  int64_t batches_seen_ = 0;  // this epoch's, for the final line when "steps" is unknown
  struct Bar;
  std::unique_ptr<Bar> bar_;
};

// The order Keras prints logs in: loss, per-output losses, metrics, val_loss, val_ metrics.
std::vector<std::pair<std::string, double>> ordered_logs(const Logs& logs);

struct BackupAndRestoreOptions {
  bool delete_checkpoint = true;  // remove the backup when training ends normally
};

// Fault tolerance: at each epoch end, writes weights, optimizer state and the epoch to
// backup_dir/checkpoint.safetensors (atomically: a kill mid-write keeps the previous backup).
// At train begin, a backup left by a killed run is restored and fit() continues with the next
// epoch (initial_epoch_override()).
class BackupAndRestore : public Callback {
 public:
  explicit BackupAndRestore(std::string backup_dir, BackupAndRestoreOptions options = {});
  void on_train_begin(Logs& logs) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(Logs& logs) override;
  int initial_epoch_override() const override { return resume_epoch_; }
  std::string checkpoint_path() const;

 private:
  std::string backup_dir_;
  BackupAndRestoreOptions o_;
  int resume_epoch_ = -1;
};

}  // namespace callbacks

}  // namespace meshflow
