// The f32 GEMM library choice (kernels.h): each library, forced, against float64 references for
// every transpose and for batches run inside the thread pool; the measured table (a decision per
// shape class, its file shared between processes, a decision read back instead of re-measured,
// a corrupt file ignored); bad settings named.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>

#include "meshflow/core/kernels.h"
#include "meshflow/core/ops/conv.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::random_tensor;
using mf_test::tensors_near;

namespace {

// A temporary cache file for one test, and the process's table emptied around it.
class KernelTable : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "kernel_choices_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".txt";
    std::remove(path_.c_str());
    ::setenv("MESHFLOW_KERNEL_CACHE", path_.c_str(), 1);
    reset_cpu_kernel_table();
    set_cpu_gemm_library(GemmLibrary::Auto);
    set_cpu_conv_algorithm(ConvAlgorithm::Auto);
  }
  void TearDown() override {
    std::remove(path_.c_str());
    ::unsetenv("MESHFLOW_KERNEL_CACHE");
    reset_cpu_kernel_table();
    set_cpu_gemm_library(GemmLibrary::Auto);
  }
  std::string file_text() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string path_;
};

// f32 matmul of f64 operands against the f64 matmul (OpenBLAS dgemm, checked against loops in
// test_linalg), for each transpose combination.
void expect_matches_f64(int64_t m, int64_t n, int64_t k, uint64_t seed) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, seed + 2 * ta + tb);
      Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, seed + 7 + 2 * ta + tb);
      Tensor want = matmul(a, b, ta, tb);
      Tensor got = matmul(a.to(DType::F32), b.to(DType::F32), ta, tb);
      EXPECT_TRUE(tensors_near(got, want, 2e-5 * std::sqrt(static_cast<double>(k)), 1e-4))
          << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb;
    }
}

TEST_F(KernelTable, EachLibraryForcedMatchesFloat64) {
  for (GemmLibrary lib : {GemmLibrary::OpenBlas, GemmLibrary::OneDnn, GemmLibrary::Auto}) {
    if (lib == GemmLibrary::OneDnn && !onednn_available()) continue;
    set_cpu_gemm_library(lib);
    expect_matches_f64(1, 1, 1, 1);
    expect_matches_f64(3, 5, 7, 2);
    expect_matches_f64(37, 129, 65, 3);
    expect_matches_f64(128, 64, 300, 4);
  }
}

TEST_F(KernelTable, BatchesSplitOverThePoolMatchFloat64) {
  // 16 small GEMMs: matmul spreads them over the threads, each library then runs inside the
  // parallel region (single-threaded there, and keyed as one thread).
  for (GemmLibrary lib : {GemmLibrary::OpenBlas, GemmLibrary::OneDnn, GemmLibrary::Auto}) {
    if (lib == GemmLibrary::OneDnn && !onednn_available()) continue;
    set_cpu_gemm_library(lib);
    Tensor a = random_tensor({16, 24, 40}, 11), b = random_tensor({16, 32, 40}, 12);
    Tensor want = matmul(a, b, false, true);
    EXPECT_TRUE(tensors_near(matmul(a.to(DType::F32), b.to(DType::F32), false, true), want, 2e-4, 1e-4));
  }
}

TEST_F(KernelTable, AutoMeasuresEachShapeClassOnceAndKeepsTheFaster) {
  if (!onednn_available()) GTEST_SKIP() << "oneDNN is not built in: OpenBLAS runs every GEMM";
  Tensor a = random_tensor({100, 200}, 1, -1, 1, DType::F32), b = random_tensor({200, 300}, 2, -1, 1, DType::F32);
  (void)matmul(a, b);
  (void)matmul(a, b);  // the same shape: no second measurement
  Tensor a2 = random_tensor({90, 190}, 3, -1, 1, DType::F32), b2 = random_tensor({190, 290}, 4, -1, 1, DType::F32);
  (void)matmul(a2, b2);
  const std::vector<KernelChoice> choices = cpu_kernel_choices();
  ASSERT_GE(choices.size(), 1u);
  const KernelChoice& c = choices[0];
  EXPECT_EQ(c.op, "sgemm");
  EXPECT_EQ(c.shape, "NN 128x384x256");  // 100 -> 128, 300 -> 384, 200 -> 256
  EXPECT_TRUE(c.measured_here);
  ASSERT_EQ(c.gflops.size(), 2u);
  EXPECT_EQ(c.gflops[0].first, "OpenBLAS");
  EXPECT_EQ(c.gflops[1].first, "oneDNN");
  EXPECT_GT(c.gflops[0].second, 0.1);
  EXPECT_GT(c.gflops[1].second, 0.1);
  EXPECT_EQ(c.chosen, c.gflops[0].second >= c.gflops[1].second ? "OpenBLAS" : "oneDNN");
  // 90 x 290 x 190 falls in 96 x 384 x 192: a second class, measured once.
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[1].shape, "NN 96x384x192");
  // Both decisions are in the file, one line each.
  const std::string text = file_text();
  EXPECT_NE(text.find("\tsgemm\t0,0,128,384,256,0\tNN 128x384x256\t" + c.chosen + "\t"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_NE(cpu_kernel_summary().find("sgemm shape classes:"), std::string::npos) << cpu_kernel_summary();
}

TEST_F(KernelTable, ADecisionInTheFileIsTakenWithoutMeasuring) {
  if (!onednn_available()) GTEST_SKIP() << "oneDNN is not built in";
  // Measure one class to learn this machine's CPU line, then write the opposite decision for it, as
  // another process would have: this process must follow the file, not its own timing.
  Tensor a = random_tensor({64, 64}, 5, -1, 1, DType::F32), b = random_tensor({64, 64}, 6, -1, 1, DType::F32);
  Tensor want = matmul(a.to(DType::F64), b.to(DType::F64));
  (void)matmul(a, b);
  std::string line = file_text();
  ASSERT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  const std::string measured = cpu_kernel_choices().at(0).chosen;
  const std::string other = measured == "oneDNN" ? "OpenBLAS" : "oneDNN";
  const size_t at = line.find("\t" + measured + "\t");
  ASSERT_NE(at, std::string::npos) << line;
  line.replace(at + 1, measured.size(), other);
  {
    std::ofstream out(path_, std::ios::trunc);
    out << "garbage line without tabs\n" << "a\tb\tc\td\te\tf\tg\n" << line;
  }
  reset_cpu_kernel_table();
  EXPECT_TRUE(tensors_near(matmul(a, b), want, 1e-4, 1e-4));
  const std::vector<KernelChoice> choices = cpu_kernel_choices();
  ASSERT_EQ(choices.size(), 1u);
  EXPECT_FALSE(choices[0].measured_here);
  EXPECT_EQ(choices[0].chosen, other);
}

// Convolutions: each of the three kernels gets a decision per geometry, and Auto gives what the
// forced im2col path gives (itself checked against float64 loops in test_conv.cpp).
TEST_F(KernelTable, ConvolutionsChooseTheirKernelPerGeometry) {
  if (!onednn_available()) GTEST_SKIP() << "oneDNN is not built in: im2col runs every convolution";
  Tensor x = random_tensor({4, 9, 9, 3}, 21, -1, 1, DType::F32), w = random_tensor({3, 3, 3, 8}, 22, -1, 1, DType::F32);
  x.set_requires_grad();
  w.set_requires_grad();
  auto run = [&](ConvAlgorithm alg) {
    set_cpu_conv_algorithm(alg);
    Tensor y = conv2d(x, w, {.strides = {2, 1}, .padding = "same"});
    std::vector<Tensor> g = grad({sum(mul(y, y))}, {x, w});
    set_cpu_conv_algorithm(ConvAlgorithm::Auto);
    return std::vector<Tensor>{y.detach(), g[0], g[1]};
  };
  std::vector<Tensor> forced = run(ConvAlgorithm::Im2col);
  for (const KernelChoice& c : cpu_kernel_choices()) EXPECT_EQ(c.op, "sgemm") << "forced im2col measured " << c.shape;
  std::vector<Tensor> chosen = run(ConvAlgorithm::Auto);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(tensors_near(chosen[i], forced[i], 1e-4, 1e-4)) << "output " << i;
  std::set<std::string> ops;
  for (const KernelChoice& c : cpu_kernel_choices()) {
    if (c.op == "sgemm") continue;
    ops.insert(c.op);
    ASSERT_EQ(c.gflops.size(), 2u) << c.op;
    EXPECT_EQ(c.chosen, c.gflops[0].second >= c.gflops[1].second ? "im2col" : "oneDNN") << c.op << " " << c.shape;
  }
  EXPECT_EQ(ops, (std::set<std::string>{"conv2d", "conv2d_grad_input", "conv2d_grad_weight"}));
}

TEST_F(KernelTable, NoFileMeansMeasuredInMemoryOnly) {
  ::setenv("MESHFLOW_KERNEL_CACHE", "", 1);
  reset_cpu_kernel_table();
  EXPECT_EQ(kernel_cache_path(), "");
  Tensor a = random_tensor({33, 17}, 7, -1, 1, DType::F32), b = random_tensor({17, 9}, 8, -1, 1, DType::F32);
  EXPECT_TRUE(tensors_near(matmul(a, b), matmul(a.to(DType::F64), b.to(DType::F64)), 1e-5, 1e-5));
  if (onednn_available()) EXPECT_EQ(cpu_kernel_choices().size(), 1u);
  EXPECT_NE(cpu_kernel_summary().find("table not kept"), std::string::npos) << cpu_kernel_summary();
}

TEST_F(KernelTable, AnUnwritableFolderStillRuns) {
  ::setenv("MESHFLOW_KERNEL_CACHE", "/nonexistent-folder/kernel_choices.txt", 1);
  reset_cpu_kernel_table();
  Tensor a = random_tensor({20, 30}, 9, -1, 1, DType::F32), b = random_tensor({30, 10}, 10, -1, 1, DType::F32);
  EXPECT_TRUE(tensors_near(matmul(a, b), matmul(a.to(DType::F64), b.to(DType::F64)), 1e-5, 1e-5));
}

TEST(KernelLibrary, ForcingOneDnnWithoutItIsAnError) {
  if (onednn_available()) {
    EXPECT_NO_THROW(set_cpu_gemm_library(GemmLibrary::OneDnn));
    set_cpu_gemm_library(GemmLibrary::Auto);
    return;
  }
  try {
    set_cpu_gemm_library(GemmLibrary::OneDnn);
    FAIL() << "expected meshflow::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no oneDNN"), std::string::npos) << e.what();
  }
}

// Run by ctest with MESHFLOW_GEMM set (core_test_kernels_env_*); alone, without it, nothing to check.
TEST(KernelLibrary, TheEnvironmentSetsTheStartingLibrary) {
  const char* env = std::getenv("MESHFLOW_GEMM");
  if (!env) GTEST_SKIP() << "MESHFLOW_GEMM is not set (ctest runs this with it)";
  const std::string v = env;
  if (v == "openblas") {
    EXPECT_EQ(cpu_gemm_library(), GemmLibrary::OpenBlas);
    Tensor a = random_tensor({64, 64}, 1, -1, 1, DType::F32);
    (void)matmul(a, a);
    EXPECT_TRUE(cpu_kernel_choices().empty());  // forced: nothing measured
    EXPECT_NE(cpu_kernel_summary().find("OpenBLAS (forced)"), std::string::npos) << cpu_kernel_summary();
    return;
  }
  try {
    (void)cpu_gemm_library();
    FAIL() << "MESHFLOW_GEMM=" << v << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MESHFLOW_GEMM: expected auto, openblas or onednn, got '" + v + "'"),
              std::string::npos)
        << e.what();
  }
  // The matmul that would use it says the same, and the process goes on.
  Tensor a = random_tensor({4, 4}, 1, -1, 1, DType::F32);
  EXPECT_THROW((void)matmul(a, a), Error);
}

}  // namespace
