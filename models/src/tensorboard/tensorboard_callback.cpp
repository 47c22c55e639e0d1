// The TensorBoard callback: epoch and batch scalars, weight and gradient histograms and the graph,
// written to log_dir/train and log_dir/validation as Keras lays them out, by the chief only.
#include <filesystem>
#include <iostream>

#include "meshflow/core/error.h"
#include "meshflow/models/model.h"
#include "meshflow/models/tensorboard.h"

namespace meshflow::callbacks {

TensorBoard::TensorBoard(std::string log_dir, TensorBoardOptions options)
    : log_dir_(std::move(log_dir)), o_(std::move(options)) {
  MF_CHECK(!log_dir_.empty(), "TensorBoard: log_dir is empty");
  MF_CHECK(o_.histogram_freq >= 0, "TensorBoard: histogram_freq must be >= 0, got ", o_.histogram_freq);
  if (o_.update_freq == "batch") {
    batch_every_ = 1;
  } else if (o_.update_freq != "epoch") {
    bool digits = !o_.update_freq.empty() && o_.update_freq.find_first_not_of("0123456789") == std::string::npos;
    MF_CHECK(digits && o_.update_freq.size() < 10 && std::stoll(o_.update_freq) > 0, "TensorBoard: update_freq must be "
             "\"epoch\", \"batch\" or a positive number of batches, got \"", o_.update_freq, "\"");
    batch_every_ = std::stoll(o_.update_freq);
  }
  MF_CHECK(!o_.write_grads || o_.histogram_freq > 0, "TensorBoard: write_grads needs histogram_freq > 0 (gradient ",
           "histograms are written in the epochs weight histograms are)");
}

TensorBoard::~TensorBoard() = default;

void TensorBoard::on_train_begin(Logs&) {
  namespace fs = std::filesystem;
  // Every process runs the callbacks; one set of event files is wanted.
  writing_ = model()->is_chief();
  if (!writing_) return;
  train_ = std::make_unique<SummaryWriter>((fs::path(log_dir_) / "train").string());
  validation_ = std::make_unique<SummaryWriter>((fs::path(log_dir_) / "validation").string());
  global_step_ = 0;
  // A model given no input shape is built by its first batch: its graph is known from then on.
  bool built = model()->is_functional() || !model()->input_shapes().empty();
  graph_pending_ = o_.write_graph && !built;
  if (o_.write_graph && built) write_graph();
}

void TensorBoard::write_graph() {
  graph_pending_ = false;
  try {
    train_->graph(trace_model(*model()));
  } catch (const Error& e) {
    // A model that cannot be traced still trains: the graph is a view, not a result.
    std::cerr << "TensorBoard: not writing the graph: " << e.what() << "\n";
  }
  train_->flush();
}

bool TensorBoard::histograms_due(int epoch) const { return o_.histogram_freq > 0 && epoch % o_.histogram_freq == 0; }

void TensorBoard::on_epoch_begin(int epoch, Logs&) {
  histogram_epoch_ = writing_ && o_.write_grads && histograms_due(epoch);
  last_grads_.clear();
}

void TensorBoard::on_train_batch_gradients(int64_t, const std::vector<Variable>& variables) {
  if (!histogram_epoch_) return;
  // Which batch is the epoch's last is known only when the epoch ends (a callback may stop it
  // early, a pipeline's length may be unknown), so each batch of a histogram epoch is kept.
  last_grads_.clear();
  for (const Variable& v : variables)
    if (v.grad().defined()) last_grads_.emplace_back(v.name() + "/gradient", v.grad().detach().clone());
}

void TensorBoard::on_train_batch_end(int64_t, Logs& logs) {
  if (!writing_) return;
  ++global_step_;
  if (graph_pending_) write_graph();
  if (batch_every_ == 0 || global_step_ % batch_every_ != 0) return;
  for (const auto& [key, value] : logs)
    if (key != "batch" && key != "size") train_->scalar("batch_" + key, value, global_step_);
}

void TensorBoard::on_epoch_end(int epoch, Logs& logs) {
  if (!writing_) return;
  MF_CHECK(train_, "TensorBoard: on_epoch_end before on_train_begin");
  for (const auto& [key, value] : logs) {
    if (key.rfind("val_", 0) == 0) validation_->scalar("epoch_" + key.substr(4), value, epoch);
    else train_->scalar("epoch_" + key, value, epoch);
  }
  if (histograms_due(epoch))
    for (const Variable& w : model()->weights()) train_->histogram(w.name() + "/histogram", w, epoch);
  for (const auto& [tag, grad] : last_grads_) train_->histogram(tag, grad, epoch);
  last_grads_.clear();
  histogram_epoch_ = false;
  train_->flush();
  validation_->flush();
}

void TensorBoard::on_train_end(Logs&) {
  if (train_) train_->close();
  if (validation_) validation_->close();
  writing_ = false;
}

}  // namespace meshflow::callbacks
