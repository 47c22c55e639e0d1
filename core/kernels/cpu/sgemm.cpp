// f32 GEMM: OpenBLAS's cblas_sgemm or oneDNN's dnnl_sgemm, chosen per shape class by the kernel
// table (Note [Kernels by measurement] in core/src/kernel_choice.cpp), or forced by
// set_cpu_gemm_library / MESHFLOW_GEMM.
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "internal/blas.h"
#include "internal/kernel_choice.h"
#include "meshflow/core/error.h"
#include "meshflow/core/kernels.h"

#ifdef MESHFLOW_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace meshflow {
namespace {

constexpr int kUnset = -1;
std::atomic<int> g_library{kUnset};

GemmLibrary library_from_env() {
  const char* env = std::getenv("MESHFLOW_GEMM");
  const std::string v = env ? env : "auto";
  if (v == "auto" || v.empty()) return GemmLibrary::Auto;
  if (v == "openblas") return GemmLibrary::OpenBlas;
  if (v == "onednn") {
    MF_CHECK(onednn_available(), "MESHFLOW_GEMM=onednn, but this build has no oneDNN (install libdnnl-dev and "
                                 "reconfigure, or use auto or openblas)");
    return GemmLibrary::OneDnn;
  }
  MF_THROW("MESHFLOW_GEMM: expected auto, openblas or onednn, got '", v, "'");
}

void openblas_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

#ifdef MESHFLOW_HAVE_DNNL
void onednn_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  MF_CHECK(st == dnnl_success, "sgemm: oneDNN's dnnl_sgemm failed (status ", static_cast<int>(st), ") for ",
           ta ? "T" : "N", tb ? "T" : "N", " m=", m, " n=", n, " k=", k, " lda=", lda, " ldb=", ldb, " ldc=", ldc);
}

// Scratch operands of the measured shape (at most about 2^30 multiply-adds, so a first call of a
// huge GEMM does not pay for several more), and one candidate per library.
std::vector<internal::KernelCandidate> sgemm_candidates(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  while (static_cast<double>(m) * n * k > static_cast<double>(1 << 30)) {
    int64_t& big = m >= n && m >= k ? m : (n >= k ? n : k);
    big = (big + 1) / 2;
  }
  struct Scratch {
    std::vector<float> a, b, c;
  };
  auto s = std::make_shared<Scratch>();
  s->a.resize(static_cast<size_t>(m * k));
  s->b.resize(static_cast<size_t>(k * n));
  s->c.resize(static_cast<size_t>(m * n));
  for (size_t i = 0; i < s->a.size(); ++i) s->a[i] = static_cast<float>(i % 13) * 0.125f - 0.75f;
  for (size_t i = 0; i < s->b.size(); ++i) s->b[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  return {
      {"OpenBLAS", [=] { openblas_sgemm(ta, tb, m, n, k, 1.f, s->a.data(), lda, s->b.data(), ldb, 0.f, s->c.data(), n); }},
      {"oneDNN", [=] { onednn_sgemm(ta, tb, m, n, k, 1.f, s->a.data(), lda, s->b.data(), ldb, 0.f, s->c.data(), n); }},
  };
}

bool pick_onednn(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  const GemmLibrary lib = cpu_gemm_library();
  if (lib != GemmLibrary::Auto) return lib == GemmLibrary::OneDnn;
  internal::KernelKey key;
  key.op = "sgemm";
  key.dims = {ta, tb, internal::kernel_bucket(m), internal::kernel_bucket(n), internal::kernel_bucket(k), 0};
  key.threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (int c = internal::recent_kernel(key); c >= 0) return c == 1;
  static const std::vector<const char*> names = {"OpenBLAS", "oneDNN"};
  const std::string shape = std::string(ta ? "T" : "N") + (tb ? "T " : "N ") + std::to_string(key.dims[2]) + "x" +
                            std::to_string(key.dims[3]) + "x" + std::to_string(key.dims[4]);
  const double flops = 2.0 * static_cast<double>(m) * n * k;
  return internal::choose_kernel(key, flops, shape, names, [&] { return sgemm_candidates(ta, tb, m, n, k); }) == 1;
}
#endif

}  // namespace

bool onednn_available() {
#ifdef MESHFLOW_HAVE_DNNL
  return true;
#else
  return false;
#endif
}

void set_cpu_gemm_library(GemmLibrary library) {
  MF_CHECK(library != GemmLibrary::OneDnn || onednn_available(),
           "set_cpu_gemm_library(OneDnn): this build has no oneDNN (install libdnnl-dev and reconfigure)");
  g_library.store(static_cast<int>(library));
}

GemmLibrary cpu_gemm_library() {
  int v = g_library.load(std::memory_order_relaxed);
  if (v == kUnset) {
    v = static_cast<int>(library_from_env());
    int expected = kUnset;
    g_library.compare_exchange_strong(expected, v);
    v = g_library.load();
  }
  return static_cast<GemmLibrary>(v);
}

namespace internal {

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
#ifdef MESHFLOW_HAVE_DNNL
  if (m > 0 && n > 0 && k > 0 && pick_onednn(ta, tb, m, n, k)) {
    onednn_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#else
  (void)cpu_gemm_library();  // a bad MESHFLOW_GEMM is an error here too
#endif
  openblas_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace internal
}  // namespace meshflow
