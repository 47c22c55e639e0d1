// SlotOptimizer: per-variable slot tensors (moments, accumulators) keyed by variable identity.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "meshflow/models/optimizers.h"

namespace meshflow::detail {

// Note [Optimizer slots]: slots are found by the variable's TensorImpl*, so two handles to one
// variable share its moments and renaming a variable does not lose them. Each entry keeps its
// variable alive, so an address is never reused for a different variable while the optimizer
// holds slots for it. Checkpoints name slots "<variable name>/<slot>"; a state loaded before a
// variable's first update waits until that variable shows up.
class SlotOptimizer : public Optimizer {
 public:
  SlotOptimizer(std::string name, OptimizerOptions options, double default_lr, std::vector<std::string> slot_names);
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;
  std::vector<SlotEntry> slot_entries() const override;

 protected:
  // The variable's slots (in slot_names order), created on first use with initial_value(slot).
  std::vector<Tensor>& slots_for(const Variable& var);
  virtual double initial_value(size_t slot) const { return 0.0; }
  // A saved slot as var's slot: itself, or its slice when var is a slice of the saved weight.
  Tensor fit_slot(const Variable& var, const Tensor& saved, const std::string& key) const;

 private:
  struct Entry {
    Variable var;
    std::vector<Tensor> slots;
  };
  std::vector<std::string> slot_names_;
  std::vector<Entry> entries_;  // in first-use order
  std::unordered_map<TensorImpl*, size_t> index_;
  std::map<std::string, Tensor> pending_;
};

}  // namespace meshflow::detail
