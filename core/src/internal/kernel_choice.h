// The measured kernel table behind meshflow/core/kernels.h: a key per op and shape class, the
// winning candidate's index, measured once per machine and thread count.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace meshflow::internal {

struct KernelKey {
  const char* op = "";                  // a string literal ("sgemm")
  std::array<int64_t, 6> dims{};        // the shape class (already bucketed by the caller)
  int threads = 1;
  bool operator==(const KernelKey& o) const;
};

struct KernelCandidate {
  const char* name;                     // as printed and stored ("OpenBLAS", "oneDNN")
  std::function<void()> run;            // one call on scratch buffers of the key's shape
};

// The index of the candidate to run for `key`. Known keys cost a lookup. An unknown key is read
// from the cache file if another process measured it, else timed here with make_candidates()
// (each candidate run alternately, best of a few) and written back. `shape` prints the key.
// Between processes on one host the file's lock makes every process take the same choice.
// The fast path: this thread's recent decision for `key`, or -1 (then call choose_kernel).
int recent_kernel(const KernelKey& key);
// `names` are the candidates' names in index order (a decision read from the file is matched by
// name); make_candidates() is called only to measure, so a known key allocates nothing.
int choose_kernel(const KernelKey& key, double flops, const std::string& shape, const std::vector<const char*>& names,
                  const std::function<std::vector<KernelCandidate>()>& make_candidates);

// Rounds a dimension up to the table's buckets: exact to 8, then 2^j or 3 * 2^(j-1).
int64_t kernel_bucket(int64_t x);

}  // namespace meshflow::internal
