// Which library runs the CPU's f32 GEMMs (matmul, batched matmul, Dense, im2col convolution):
// OpenBLAS or oneDNN, picked per shape by measurement (Note [Kernels by measurement] in
// core/src/kernel_choice.cpp; docs/kernels.md).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace meshflow {

// Auto (the default) times both libraries on the first GEMM of each shape class and keeps the
// faster; the others force one. The environment variable MESHFLOW_GEMM=auto|openblas|onednn sets
// the starting value. OneDnn throws meshflow::Error where oneDNN is not built in.
enum class GemmLibrary { Auto, OpenBlas, OneDnn };
void set_cpu_gemm_library(GemmLibrary library);
GemmLibrary cpu_gemm_library();
bool onednn_available();

// One decision of the kernel table: the op ("sgemm"), its shape class (e.g. "NT 128x512x784",
// dimensions rounded up to the table's buckets), the thread count, the library that won and each
// candidate's measured GFLOP/s (empty where the library was forced).
struct KernelChoice {
  std::string op;
  std::string shape;
  int threads = 0;
  std::string chosen;
  std::vector<std::pair<std::string, double>> gflops;
  bool measured_here = false;  // false: read from the cache file, measured by an earlier process
};

// The decisions this process has used so far, in first-use order.
std::vector<KernelChoice> cpu_kernel_choices();
// "sgemm: oneDNN 5, OpenBLAS 1 (cache: PATH)": a line for benchmarks' headers.
std::string cpu_kernel_summary();
// The file the table is kept in between runs: MESHFLOW_KERNEL_CACHE when set (empty: none), else
// kernel_choices.txt in the build folder. Entries are keyed by CPU model and thread count.
std::string kernel_cache_path();
// Forgets this process's decisions (the file stays): the next GEMM of each shape class reads the
// file again, or measures. For tests and for benchmarks that change MESHFLOW_KERNEL_CACHE.
void reset_cpu_kernel_table();

}  // namespace meshflow
