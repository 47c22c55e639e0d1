// Dataset stages: map, shuffle, batch, repeat and shard (prefetch has its own file).
#include <random>

#include "data/plan.h"
#include "meshflow/core/error.h"
#include "meshflow/core/ops/shape.h"

namespace meshflow {
namespace data {
namespace {

class MapStage : public Stage {
 public:
  MapStage(std::unique_ptr<Stage> parent, std::function<Element(Element)> fn)
      : parent_(std::move(parent)), fn_(std::move(fn)) {}
  std::optional<Element> next() override {
    auto e = parent_->next();
    if (!e) return std::nullopt;
    return fn_(std::move(*e));
  }

 private:
  std::unique_ptr<Stage> parent_;
  std::function<Element(Element)> fn_;
};

// Keeps a buffer of elements and hands out a random one, refilling from the parent (tf.data's
// shuffle); a buffer as large as the data set gives a uniform permutation.
class ShuffleStage : public Stage {
 public:
  ShuffleStage(std::unique_ptr<Stage> parent, size_t buffer, uint64_t seed)
      : parent_(std::move(parent)), capacity_(buffer), rng_(seed) {}
  std::optional<Element> next() override {
    while (!exhausted_ && buffer_.size() < capacity_) {
      auto e = parent_->next();
      if (!e) exhausted_ = true;
      else buffer_.push_back(std::move(*e));
    }
    if (buffer_.empty()) return std::nullopt;
    std::uniform_int_distribution<size_t> pick(0, buffer_.size() - 1);
    size_t i = pick(rng_);
    std::swap(buffer_[i], buffer_.back());
    Element e = std::move(buffer_.back());
    buffer_.pop_back();
    return e;
  }

 private:
  std::unique_ptr<Stage> parent_;
  size_t capacity_;
  std::mt19937_64 rng_;
  std::vector<Element> buffer_;
  bool exhausted_ = false;
};

Tensors stack_part(const std::vector<Element>& items, bool labels) {
  const Tensors& first = labels ? items[0].second : items[0].first;
  Tensors out;
  for (size_t k = 0; k < first.size(); ++k) {
    std::vector<Tensor> parts;
    parts.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const Tensors& t = labels ? items[i].second : items[i].first;
      MF_CHECK(t.size() == first.size(), "Dataset::batch: element ", i, " has ", t.size(), " ", labels ? "y" : "x",
               " tensors but the first has ", first.size());
      MF_CHECK(t[k].shape() == first[k].shape(), "Dataset::batch: element ", i, " has ", labels ? "y" : "x", "[", k,
               "] of shape ", shape_str(t[k].shape()), " but the first element's is ", shape_str(first[k].shape()),
               "; batch needs equal shapes");
      parts.push_back(t[k]);
    }
    out.push_back(stack(parts, 0), first.names()[k]);
  }
  return out;
}

class BatchStage : public Stage {
 public:
  BatchStage(std::unique_ptr<Stage> parent, size_t n, bool drop) : parent_(std::move(parent)), n_(n), drop_(drop) {}
  std::optional<Element> next() override {
    std::vector<Element> items;
    items.reserve(n_);
    while (items.size() < n_) {
      auto e = parent_->next();
      if (!e) break;
      items.push_back(std::move(*e));
    }
    if (items.empty() || (drop_ && items.size() < n_)) return std::nullopt;
    return Element{stack_part(items, false), stack_part(items, true)};
  }

 private:
  std::unique_ptr<Stage> parent_;
  size_t n_;
  bool drop_;
};

class RepeatStage : public Stage {
 public:
  RepeatStage(std::shared_ptr<const Plan> parent, int64_t count, uint64_t pass)
      : parent_(std::move(parent)), count_(count), pass_(pass) {}
  std::optional<Element> next() override {
    while (count_ < 0 || round_ < count_) {
      if (!current_) {
        current_ = parent_->make(mix_seed(pass_, static_cast<uint64_t>(round_)));
        yielded_ = false;
      }
      if (auto e = current_->next()) {
        yielded_ = true;
        return e;
      }
      current_.reset();
      ++round_;
      // An empty pass would make repeat() spin forever.
      if (!yielded_) break;
    }
    return std::nullopt;
  }

 private:
  std::shared_ptr<const Plan> parent_;
  int64_t count_;
  uint64_t pass_;
  int64_t round_ = 0;
  std::unique_ptr<Stage> current_;
  bool yielded_ = false;
};

class ShardStage : public Stage {
 public:
  ShardStage(std::unique_ptr<Stage> parent, int64_t shards, int64_t index)
      : parent_(std::move(parent)), shards_(shards), index_(index) {}
  std::optional<Element> next() override {
    while (auto e = parent_->next()) {
      if (position_++ % shards_ == index_) return e;
    }
    return std::nullopt;
  }

 private:
  std::unique_ptr<Stage> parent_;
  int64_t shards_, index_;
  int64_t position_ = 0;
};

bool finite(int64_t c) { return c >= 0; }

}  // namespace
}  // namespace data

Dataset Dataset::map(std::function<Element(Element)> fn) const {
  MF_CHECK(fn != nullptr, "Dataset::map: the function is empty");
  auto parent = plan_;
  auto plan = std::make_shared<data::Plan>();
  plan->shards = parent->shards;
  plan->make = [parent, fn](uint64_t pass) { return std::make_unique<data::MapStage>(parent->make(pass), fn); };
  plan->cardinality = parent->cardinality;
  return Dataset(plan);
}

Dataset Dataset::shuffle(int64_t buffer_size, uint64_t seed) const {
  auto parent = plan_;
  MF_CHECK(buffer_size > 0 || parent->cardinality != kInfiniteCardinality, "Dataset::shuffle: a full shuffle ",
           "(buffer_size <= 0) of an infinite dataset never ends; give a buffer size or shuffle before repeat()");
  size_t buffer = buffer_size > 0 ? static_cast<size_t>(buffer_size) : SIZE_MAX;
  auto plan = std::make_shared<data::Plan>();
  plan->shards = parent->shards;
  plan->make = [parent, buffer, seed](uint64_t pass) {
    return std::make_unique<data::ShuffleStage>(parent->make(pass), buffer, data::mix_seed(seed, pass));
  };
  plan->cardinality = parent->cardinality;
  return Dataset(plan);
}

Dataset Dataset::batch(int64_t n, bool drop_remainder) const {
  MF_CHECK(n > 0, "Dataset::batch: the batch size must be positive, got ", n);
  auto parent = plan_;
  auto plan = std::make_shared<data::Plan>();
  plan->shards = parent->shards;
  plan->make = [parent, n, drop_remainder](uint64_t pass) {
    return std::make_unique<data::BatchStage>(parent->make(pass), static_cast<size_t>(n), drop_remainder);
  };
  int64_t c = parent->cardinality;
  plan->cardinality = data::finite(c) ? (drop_remainder ? c / n : (c + n - 1) / n) : c;
  return Dataset(plan);
}

Dataset Dataset::repeat(int64_t count) const {
  MF_CHECK(count >= -1, "Dataset::repeat: count must be -1 (forever) or >= 0, got ", count);
  auto parent = plan_;
  auto plan = std::make_shared<data::Plan>();
  plan->shards = parent->shards;
  plan->make = [parent, count](uint64_t pass) { return std::make_unique<data::RepeatStage>(parent, count, pass); };
  int64_t c = parent->cardinality;
  if (count == 0 || c == 0) plan->cardinality = 0;
  else if (count < 0) plan->cardinality = data::finite(c) ? kInfiniteCardinality : c;
  else plan->cardinality = data::finite(c) ? c * count : c;
  return Dataset(plan);
}

Dataset Dataset::shard(int64_t num_shards, int64_t index) const {
  MF_CHECK(num_shards > 0 && index >= 0 && index < num_shards, "Dataset::shard: need 0 <= index < num_shards, got ",
           "index ", index, " of ", num_shards, " shards");
  auto parent = plan_;
  auto plan = std::make_shared<data::Plan>();
  plan->shards = parent->shards;
  plan->make = [parent, num_shards, index](uint64_t pass) {
    return std::make_unique<data::ShardStage>(parent->make(pass), num_shards, index);
  };
  plan->shards = parent->shards * num_shards;
  int64_t c = parent->cardinality;
  plan->cardinality = data::finite(c) ? (c > index ? (c - index - 1) / num_shards + 1 : 0) : c;
  return Dataset(plan);
}

}  // namespace meshflow
