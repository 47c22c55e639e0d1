// Dataset: the plan/stage plumbing, iteration, and the tensor source every other source feeds.
#include "data/plan.h"

#include "meshflow/core/error.h"

namespace meshflow {
namespace data {

uint64_t mix_seed(uint64_t seed, uint64_t pass) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (pass + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

int64_t rows_of(const Tensors& t, const char* what, int64_t n, std::string& first) {
  for (size_t i = 0; i < t.size(); ++i) {
    std::string name = t.names()[i].empty() ? std::string(what) + "[" + std::to_string(i) + "]" : t.names()[i];
    MF_CHECK(t[i].defined() && !t[i].is_symbolic(), "Dataset::from_tensors: ", name, " is undefined or symbolic");
    MF_CHECK(t[i].dim() >= 1, "Dataset::from_tensors: ", name, " is a scalar; elements are rows of the first axis");
    if (n < 0) {
      n = t[i].size(0);
      first = name;
    }
    MF_CHECK(t[i].size(0) == n, "Dataset::from_tensors: ", name, " has ", t[i].size(0), " rows but ", first, " has ",
             n, "; every tensor needs the same first dimension");
  }
  return n;
}

Tensors row(const Tensors& t, int64_t i) {
  Tensors out;
  for (size_t k = 0; k < t.size(); ++k) out.push_back(t[k].slice(0, i, i + 1).squeeze(0), t.names()[k]);
  return out;
}

class TensorSource : public Stage {
 public:
  TensorSource(std::shared_ptr<const Element> data, int64_t n) : data_(std::move(data)), n_(n) {}
  std::optional<Element> next() override {
    if (i_ >= n_) return std::nullopt;
    Element e{row(data_->first, i_), row(data_->second, i_)};
    ++i_;
    return e;
  }

 private:
  std::shared_ptr<const Element> data_;
  int64_t n_;
  int64_t i_ = 0;
};

}  // namespace
}  // namespace data

Dataset::Dataset(std::shared_ptr<const data::Plan> plan) : plan_(std::move(plan)) {}
Dataset::Dataset(const Dataset& other) : plan_(other.plan_) {}
Dataset& Dataset::operator=(const Dataset& other) {
  if (this != &other) {
    active_.reset();
    plan_ = other.plan_;
    passes_ = 0;
  }
  return *this;
}
Dataset::Dataset(Dataset&&) noexcept = default;
Dataset& Dataset::operator=(Dataset&&) noexcept = default;
Dataset::~Dataset() = default;

Dataset Dataset::from_tensors(Tensors x, Tensors y) {
  MF_CHECK(!x.empty(), "Dataset::from_tensors: x is empty; give at least one tensor");
  std::string first;
  int64_t n = data::rows_of(x, "x", -1, first);
  n = data::rows_of(y, "y", n, first);
  auto shared = std::make_shared<const Element>(std::move(x), std::move(y));
  auto plan = std::make_shared<data::Plan>();
  plan->make = [shared, n](uint64_t) { return std::make_unique<data::TensorSource>(shared, n); };
  plan->cardinality = n;
  return Dataset(plan);
}

std::optional<Dataset::Element> Dataset::next() {
  MF_CHECK(plan_ != nullptr, "Dataset: this dataset was moved from");
  if (!active_) active_ = plan_->make(passes_++);
  auto e = active_->next();
  if (!e) active_.reset();
  return e;
}

void Dataset::reset() { active_.reset(); }

void Dataset::skip_passes(uint64_t n) {
  active_.reset();
  passes_ += n;
}

int64_t Dataset::cardinality() const { return plan_ ? plan_->cardinality : kUnknownCardinality; }

int64_t Dataset::num_shards() const { return plan_ ? plan_->shards : 1; }

}  // namespace meshflow
