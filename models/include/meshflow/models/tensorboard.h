// TensorBoard: a SummaryWriter for event files TensorBoard reads (scalars, histograms, the graph)
// and the TensorBoard callback that fit() drives.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/core/trace.h"
#include "meshflow/models/callbacks.h"

namespace meshflow {

class Model;

// Writes log_dir/events.out.tfevents.<unix time>.<host>.<pid>.<counter>: TFRecords (length,
// masked CRC32C of the length, an Event protobuf, masked CRC32C of it), the first holding
// file_version "brain.Event:2". Records reach the disk at flush(), close() and destruction.
class SummaryWriter {
 public:
  explicit SummaryWriter(const std::string& log_dir);
  ~SummaryWriter();
  SummaryWriter(const SummaryWriter&) = delete;
  SummaryWriter& operator=(const SummaryWriter&) = delete;

  void scalar(const std::string& tag, double value, int64_t step);
  // A histogram of the values (any dtype, any shape) in `buckets` equal-width buckets from the
  // minimum to the maximum.
  void histogram(const std::string& tag, const Tensor& values, int64_t step, int buckets = 30);
  // The op-level graph as a GraphDef: one node per op, placeholder and constant, grouped by the
  // layer scopes in their names.
  void graph(const Graph& graph);
  void flush();
  void close();
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The records of a TFRecord file, each CRC checked. A truncated file or a CRC mismatch throws
// naming the file, the record index and the byte offset.
std::vector<std::string> read_tfrecords(const std::string& path);

// The GraphDef bytes SummaryWriter::graph writes (exposed for tests and tools).
std::string graph_def_bytes(const Graph& graph);

// The model's op-level graph, traced through call() on symbolic inputs shaped like the data it
// was built with (batch dim unknown).
Graph trace_model(Model& model);

namespace callbacks {

struct TensorBoardOptions {
  int histogram_freq = 0;             // weight histograms every N epochs (0: none)
  bool write_grads = false;           // also gradient histograms, in the same epochs (Keras 1's name)
  bool write_graph = true;            // the traced op graph, once at train begin
  std::string update_freq = "epoch";  // "epoch", "batch", or a number of batches as digits
};

// Logs to log_dir/train and log_dir/validation: "epoch_<metric>" scalars per epoch (val_ keys go
// to validation without the prefix), "batch_<metric>" per update_freq batches, weight histograms
// ("<variable name>/histogram"), gradient histograms of the epoch's last batch ("<variable
// name>/gradient": the gradient the optimizer applied, averaged over replicas, before clipping)
// and the graph. Under a strategy only the chief (Model::is_chief) writes.
class TensorBoard : public Callback {
 public:
  explicit TensorBoard(std::string log_dir = "logs", TensorBoardOptions options = {});
  ~TensorBoard() override;
  void on_train_begin(Logs& logs) override;
  void on_epoch_begin(int epoch, Logs& logs) override;
  void on_train_batch_end(int64_t batch, Logs& logs) override;
  void on_train_batch_gradients(int64_t batch, const std::vector<Variable>& variables) override;
  void on_epoch_end(int epoch, Logs& logs) override;
  void on_train_end(Logs& logs) override;

 private:
  std::string log_dir_;
  TensorBoardOptions o_;
  int64_t batch_every_ = 0;   // 0: epoch-level only
  int64_t global_step_ = 0;
  bool graph_pending_ = false;  // the model is built by the first batch; the graph is written then
  bool writing_ = false;        // on the chief, between train begin and end
  bool histogram_epoch_ = false;
  std::vector<std::pair<std::string, Tensor>> last_grads_;  // copies from this epoch's latest batch
  void write_graph();
  bool histograms_due(int epoch) const;
  std::unique_ptr<SummaryWriter> train_, validation_;
};

}  // namespace callbacks

}  // namespace meshflow
