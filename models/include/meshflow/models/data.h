// Dataset: an input pipeline of (x, y) elements, like tf.data: sources (tensors, IDX files, CSV),
// then map, shuffle, batch, repeat, shard and prefetch stages; fit() and evaluate() take one.
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "meshflow/models/tensors.h"

namespace meshflow {

namespace data {
// One step of a pipeline, pulled by the stage after it. Stages are made fresh for each pass.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::optional<std::pair<Tensors, Tensors>> next() = 0;
};
struct Plan;
}  // namespace data

struct CsvOptions {
  int header_lines = 1;                  // lines to skip before the data (0: none)
  std::vector<int> label_columns = {-1};  // negative counts from the end; empty: no labels (y is empty)
  char separator = ',';
  DType dtype = DType::F32;              // of the features
  DType label_dtype = DType::F32;        // of the labels (I64 for class ids)
};

inline constexpr int64_t kUnknownCardinality = -1;
inline constexpr int64_t kInfiniteCardinality = -2;

class Dataset {
 public:
  using Element = std::pair<Tensors, Tensors>;

  // Sources: one element per row of the first axis (every tensor needs the same length).
  static Dataset from_tensors(Tensors x, Tensors y);
  // IDX images and labels (MNIST, Fashion-MNIST; ".gz" is read in-process): x is f32 pixels
  // 0..255 of shape [rows, cols] per element, y an i64 class id.
  static Dataset from_idx(const std::string& images_path, const std::string& labels_path);
  // Numeric CSV (".gz" read in-process): features from every column that is not a label
  // column; y is [rows] for one label column, [rows, k] for k.
  static Dataset from_csv(const std::string& path, CsvOptions options = {});

  // Stages; each returns a new Dataset and leaves this one as it was.
  Dataset map(std::function<Element(Element)> fn) const;
  // A buffer of `buffer_size` elements sampled at random (<= 0: the whole data set); each pass
  // over the data gets a new order, the same for the same seed.
  Dataset shuffle(int64_t buffer_size, uint64_t seed = 0) const;
  // Stacks n consecutive elements along a new first axis; the last smaller batch is kept unless
  // drop_remainder.
  Dataset batch(int64_t n, bool drop_remainder = false) const;
  Dataset repeat(int64_t count = -1) const;  // -1: forever
  // Every num_shards-th element starting at index (one shard per worker).
  Dataset shard(int64_t num_shards, int64_t index) const;
  // Produces up to n elements ahead on one background thread; errors there are rethrown by next().
  Dataset prefetch(int64_t n) const;

  // The next element of the current pass, or nullopt at its end (the next call starts a new
  // pass, reshuffled).
  std::optional<Element> next();
  // Drops the current pass; the next next() starts from the beginning.
  void reset();
  // Drops the current pass and skips n more without reading them: the next pass shuffles as the
  // (n+1)-th from here would (a resumed fit() uses it to see an uninterrupted run's order).
  void skip_passes(uint64_t n);
  // Elements per pass when known, kUnknownCardinality or kInfiniteCardinality otherwise.
  int64_t cardinality() const;
  // How many shards this pipeline keeps one of (the product of its shard() stages; 1: unsharded).
  int64_t num_shards() const;

  // for (auto& [x, y] : dataset): one pass.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Element;
    using difference_type = std::ptrdiff_t;
    using pointer = Element*;
    using reference = Element&;
    iterator() = default;
    explicit iterator(Dataset* d) : d_(d) { ++*this; }
    Element& operator*() { return *current_; }
    Element* operator->() { return &*current_; }
    iterator& operator++() {
      current_ = d_->next();
      if (!current_) d_ = nullptr;
      return *this;
    }
    bool operator==(const iterator& o) const { return d_ == o.d_; }

   private:
    Dataset* d_ = nullptr;
    std::optional<Element> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

  Dataset(const Dataset& other);
  Dataset& operator=(const Dataset& other);
  Dataset(Dataset&&) noexcept;
  Dataset& operator=(Dataset&&) noexcept;
  ~Dataset();

 private:
  explicit Dataset(std::shared_ptr<const data::Plan> plan);
  std::shared_ptr<const data::Plan> plan_;
  std::unique_ptr<data::Stage> active_;  // the pass in progress
  uint64_t passes_ = 0;
};

}  // namespace meshflow
