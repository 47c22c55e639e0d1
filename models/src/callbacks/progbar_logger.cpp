// ProgbarLogger: Keras's progress output as a callback ("Epoch i/N" and a bar per epoch).
#include <algorithm>
#include <iostream>

#include "meshflow/models/callbacks.h"
#include "progbar.h"

namespace meshflow::callbacks {

std::vector<std::pair<std::string, double>> ordered_logs(const Logs& logs) {
  auto is_loss = [](const std::string& k) { return k.size() > 5 && k.compare(k.size() - 5, 5, "_loss") == 0; };
  auto is_val = [](const std::string& k) { return k.rfind("val_", 0) == 0; };
  std::vector<std::pair<std::string, double>> v;
  if (auto it = logs.find("loss"); it != logs.end()) v.push_back(*it);
  for (const auto& kv : logs)
    if (kv.first != "loss" && is_loss(kv.first) && !is_val(kv.first)) v.push_back(kv);
  for (const auto& kv : logs)
    if (kv.first != "loss" && !is_loss(kv.first) && !is_val(kv.first)) v.push_back(kv);
  if (auto it = logs.find("val_loss"); it != logs.end()) v.push_back(*it);
  for (const auto& kv : logs)
    if (is_val(kv.first) && kv.first != "val_loss") v.push_back(kv);
  return v;
}

struct ProgbarLogger::Bar {
  meshflow::detail::Progbar bar;
  int64_t steps;
  int verbose;
};

ProgbarLogger::ProgbarLogger(std::ostream* out) : out_(out ? out : &std::cout) {}
ProgbarLogger::~ProgbarLogger() = default;

namespace {
double param(const Callback& cb, const char* key, double fallback) {
  auto it = cb.params().find(key);
  return it == cb.params().end() ? fallback : it->second;
}
}  // namespace

void ProgbarLogger::on_train_begin(Logs&) { bar_.reset(); }

void ProgbarLogger::on_epoch_begin(int epoch, Logs&) {
  batches_seen_ = 0;
  int verbose = static_cast<int>(param(*this, "verbose", 1));
  if (verbose == 0) return;
  auto steps = static_cast<int64_t>(param(*this, "steps", 0));
  *out_ << "Epoch " << epoch + 1 << "/" << static_cast<int>(param(*this, "epochs", 1)) << "\n";
  bool live = out_ == &std::cout && meshflow::detail::stdout_is_terminal();
  bar_.reset(new Bar{meshflow::detail::Progbar(std::max<int64_t>(steps, 0), verbose, live, *out_), steps, verbose});
}

void ProgbarLogger::on_train_batch_end(int64_t batch, Logs& logs) {
  batches_seen_ = batch + 1;
  if (bar_ && bar_->verbose == 1 && batch + 1 < bar_->steps) bar_->bar.update(batch + 1, ordered_logs(logs));
}

void ProgbarLogger::on_epoch_end(int, Logs& logs) {
  if (!bar_) return;
  bar_->bar.update(bar_->steps > 0 ? bar_->steps : batches_seen_, ordered_logs(logs), true);
  bar_.reset();
}

}  // namespace meshflow::callbacks
