// The CUDA op sweep: every op of the registry on cuda:0 against its CPU kernel, on the same random
// inputs, forward and backward, in f64 (tight) and f32 (loose); then the edge cases that CUDA
// kernels get wrong: broadcasting, non-contiguous views, empty tensors, sizes that are not
// multiples of the vector width, and the half-precision dtypes.
#include <map>
#include <set>

#include "meshflow/core/optim.h"
#include "op_cases.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::random_tensor;
using mf_test::tensors_near;

namespace {

const Device kGpu = cuda(0);

struct Result {
  Tensor out;
  std::vector<Tensor> grads;
};

// Runs a case on `device`: inputs are copies of `host_inputs` there; the objective sum(out * w)
// with fixed weights w makes every output element's gradient matter.
Result run_case(const mf_test::Case& c, const std::vector<Tensor>& host_inputs, Device device, DType dtype) {
  std::vector<Tensor> xs;
  for (const Tensor& h : host_inputs) xs.push_back(h.to(dtype).to(device).detach().set_requires_grad(c.differentiable));
  Result r;
  r.out = c.fn(xs);
  if (c.differentiable && is_floating(r.out.dtype())) {
    Tensor w = random_tensor(r.out.shape(), 99, 0.5, 1.5).to(r.out.dtype()).to(r.out.device());
    sum(r.out * w).backward();
    for (const Tensor& x : xs) r.grads.push_back(x.grad());
  }
  return r;
}

double tol_for(DType d) { return d == DType::F64 ? 1e-9 : 2e-4; }

}  // namespace

TEST(CudaOps, EveryOpMatchesTheCpuKernelForwardAndBackward) {
  std::vector<std::string> missing;
  uint64_t seed = 1;
  for (auto& [name, c] : mf_test::op_cases()) {
    std::vector<Tensor> host;
    for (const auto& s : c.shapes) host.push_back(random_tensor(s, seed++, c.lo, c.hi));
    for (DType dtype : {DType::F64, DType::F32}) {
      Result ref = run_case(c, host, cpu(), dtype);
      Result got;
      try {
        got = run_case(c, host, kGpu, dtype);
      } catch (const Error& e) {
        std::string what = e.what();
        if (what.find("has no kernel for cuda") != std::string::npos) {
          missing.push_back(name + " (" + what.substr(0, what.find(" (")) + ")");
          break;
        }
        ADD_FAILURE() << "op " << name << " " << dtype_name(dtype) << ": " << what;
        break;
      }
      const double tol = tol_for(dtype);
      EXPECT_EQ(got.out.device(), kGpu) << "op " << name;
      EXPECT_TRUE(tensors_near(got.out.to(cpu()), ref.out, tol, tol)) << "op " << name << " " << dtype_name(dtype);
      ASSERT_EQ(got.grads.size(), ref.grads.size()) << "op " << name;
      for (size_t k = 0; k < ref.grads.size(); ++k) {
        if (!ref.grads[k].defined()) continue;
        ASSERT_TRUE(got.grads[k].defined()) << "op " << name << " input " << k;
        EXPECT_EQ(got.grads[k].device(), kGpu) << "op " << name << " input " << k;
        EXPECT_TRUE(tensors_near(got.grads[k].to(cpu()), ref.grads[k], tol, tol))
            << "op " << name << " " << dtype_name(dtype) << " gradient of input " << k;
      }
    }
  }
  std::string list;
  for (const auto& m : missing) list += "\n  " + m;
  EXPECT_TRUE(missing.empty()) << missing.size() << " op(s) have no CUDA kernel:" << list;
}

TEST(CudaOps, BroadcastingOddSizesAndViews) {
  // 1000003 elements: not a multiple of any vector width; a [n,1] x [1,m] broadcast; a permuted view.
  Tensor a = random_tensor({1000003}, 1, -2, 2, DType::F32);
  Tensor b = random_tensor({1000003}, 2, 0.5, 2, DType::F32);
  Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  EXPECT_TRUE(tensors_near((ga * gb + ga / gb).to(cpu()), a * b + a / b, 1e-6, 1e-6));
  EXPECT_TRUE(tensors_near(exp(tanh(ga)).to(cpu()), exp(tanh(a)), 1e-6, 1e-6));
  Tensor c = random_tensor({37, 1}, 3, -1, 1, DType::F32), d = random_tensor({1, 53}, 4, -1, 1, DType::F32);
  EXPECT_TRUE(tensors_near((c.to(kGpu) - d.to(kGpu)).to(cpu()), c - d, 0, 0));
  Tensor e = random_tensor({5, 7, 9}, 5, -1, 1, DType::F32);
  Tensor ev = e.to(kGpu).permute({2, 0, 1});
  EXPECT_FALSE(ev.is_contiguous());
  EXPECT_TRUE(tensors_near(relu(ev).to(cpu()), relu(e.permute({2, 0, 1})), 0, 0));
  EXPECT_TRUE(tensors_near(sum(ev, {1}).to(cpu()), sum(e.permute({2, 0, 1}), {1}), 1e-5, 1e-5));
  EXPECT_TRUE(tensors_near(ev.slice(0, 1, 9, 3).contiguous().to(cpu()), e.permute({2, 0, 1}).slice(0, 1, 9, 3), 0, 0));
  // Large reductions over each axis kind: the last (rows), the first (bias gradients), all.
  Tensor big = random_tensor({513, 2049}, 6, -1, 1, DType::F32);
  Tensor gbig = big.to(kGpu);
  EXPECT_TRUE(tensors_near(sum(gbig, {1}).to(cpu()), sum(big.to(DType::F64), {1}).to(DType::F32), 1e-3, 1e-5));
  EXPECT_TRUE(tensors_near(sum(gbig, {0}).to(cpu()), sum(big.to(DType::F64), {0}).to(DType::F32), 1e-3, 1e-5));
  EXPECT_NEAR(sum(gbig).item(), sum(big.to(DType::F64)).item(), 1e-2);
}

TEST(CudaOps, EmptyTensors) {
  Tensor e = zeros({0, 4}, {.device = kGpu});
  EXPECT_EQ((e + e).numel(), 0);
  EXPECT_EQ(exp(e).shape(), (Shape{0, 4}));
  Tensor s = sum(e, {0});
  EXPECT_TRUE(tensors_near(s.to(cpu()), zeros({4}), 0, 0));
  Tensor m = matmul(zeros({3, 0}, {.device = kGpu}), zeros({0, 5}, {.device = kGpu}));
  EXPECT_TRUE(tensors_near(m.to(cpu()), zeros({3, 5}), 0, 0));
}

TEST(CudaOps, HalfPrecisionMatchesTheCpuWithinTheirResolution) {
  Tensor a = random_tensor({64, 96}, 7, -1, 1, DType::F32), b = random_tensor({96, 48}, 8, -1, 1, DType::F32);
  for (DType d : {DType::BF16, DType::F16}) {
    const double tol = d == DType::BF16 ? 3e-2 : 4e-3;
    Tensor ha = a.to(d), hb = b.to(d);
    Tensor ref = matmul(ha.to(DType::F32), hb.to(DType::F32));
    EXPECT_TRUE(tensors_near(matmul(ha.to(kGpu), hb.to(kGpu)).to(cpu()).to(DType::F32), ref, tol * 4, tol))
        << dtype_name(d);
    EXPECT_TRUE(tensors_near((ha.to(kGpu) * hb.to(kGpu).slice(0, 0, 64).slice(1, 0, 1)).to(cpu()),
                             ha * hb.slice(0, 0, 64).slice(1, 0, 1), 0, 0))
        << dtype_name(d);
    EXPECT_TRUE(tensors_near(softmax(ha.to(kGpu), -1).to(cpu()).to(DType::F32), softmax(ha.to(DType::F32), -1), tol,
                             tol))
        << dtype_name(d);
  }
}

TEST(CudaOps, FusedOptimizerUpdatesMatchTheCpu) {
  for (DType dt : {DType::F64, DType::F32}) {
    auto [n_cpu, p_cpu] = mf_test::apply_every_inplace_op(cpu(), dt, {1031});
    auto [n_gpu, p_gpu] = mf_test::apply_every_inplace_op(kGpu, dt, {1031});
    const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
    EXPECT_EQ(p_gpu.device(), kGpu);
    EXPECT_NEAR(n_gpu, n_cpu, tol * n_cpu) << dtype_name(dt);
    EXPECT_TRUE(tensors_near(p_gpu.to(cpu()), p_cpu, tol, tol)) << dtype_name(dt);
  }
}

// The sum of halves that gradient reduction uses: one rounding from f32, as the CPU kernel.
TEST(CudaOps, AccumulateOfHalvesMatchesTheCpu) {
  for (DType dt : {DType::BF16, DType::F16}) {
    Tensor a = random_tensor({4099}, 51, -8, 8).to(dt), b = random_tensor({4099}, 52, -8, 8).to(dt);
    Tensor on_cpu = b.clone(), on_gpu = b.to(kGpu);
    optim::accumulate_(on_cpu, a);
    optim::accumulate_(on_gpu, a.to(kGpu));
    EXPECT_TRUE(tensors_near(on_gpu.to(cpu()), on_cpu, 0, 0)) << dtype_name(dt);
  }
}

TEST(CudaOps, ErrorsNameTheProblem) {
  try {
    (void)zeros({2}, {.device = cuda(device_count(DeviceType::CUDA))});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:"), std::string::npos) << e.what();
  }
  Tensor a = zeros({2, 3}, {.device = kGpu}), b = zeros({4, 5}, {.device = kGpu});
  EXPECT_THROW(matmul(a, b), Error);
}
