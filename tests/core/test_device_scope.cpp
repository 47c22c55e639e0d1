// The current device (DeviceScope) and mixed-device inputs: factories and ops follow the scope,
// inputs living elsewhere are copied to the op's device, and gradients travel back.
#include <thread>

#include "meshflow/core/optim.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::random_tensor;
using mf_test::tensors_near;

TEST(DeviceScope, FactoriesFollowTheInnermostScope) {
  EXPECT_EQ(DeviceScope::current(), nullptr);
  EXPECT_EQ(zeros({2}).device(), cpu(0));
  {
    DeviceScope outer("cpu:1");
    EXPECT_EQ(current_device(), cpu(1));
    EXPECT_EQ(zeros({2}).device(), cpu(1));
    EXPECT_EQ(ones({2}).device(), cpu(1));
    EXPECT_EQ(randn({2}).device(), cpu(1));
    EXPECT_EQ(from_vector(std::vector<double>{1, 2}, {2}).device(), cpu(1));
    {
      DeviceScope inner("/device:CPU:2");
      EXPECT_EQ(empty({2}).device(), cpu(2));
      // An explicit device wins over the scope.
      EXPECT_EQ(zeros({2}, {.device = cpu(0)}).device(), cpu(0));
    }
    EXPECT_EQ(full({2}, 3.0).device(), cpu(1));
  }
  EXPECT_EQ(DeviceScope::current(), nullptr);
  EXPECT_EQ(zeros({2}).device(), cpu(0));
}

TEST(DeviceScope, IsPerThread) {
  DeviceScope here("cpu:1");
  Device seen;
  std::thread([&] { seen = zeros({1}).device(); }).join();
  EXPECT_EQ(seen, cpu(0));
  EXPECT_EQ(zeros({1}).device(), cpu(1));
}

TEST(DeviceScope, OpsRunOnTheScopeDeviceAndGradientsComeBack) {
  Tensor a = random_tensor({3, 4}, 1).set_requires_grad();  // on cpu:0
  Tensor b = random_tensor({4, 2}, 2).set_requires_grad();
  Tensor y;
  {
    DeviceScope on("cpu:1");
    y = sum(square(matmul(a, b)));
  }
  EXPECT_EQ(y.device(), cpu(1));
  y.backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_EQ(a.grad().device(), cpu(0));
  EXPECT_EQ(b.grad().device(), cpu(0));
  // The same computation on one device: identical values and gradients.
  Tensor a0 = a.detach().set_requires_grad(), b0 = b.detach().set_requires_grad();
  Tensor y0 = sum(square(matmul(a0, b0)));
  y0.backward();
  EXPECT_TRUE(tensors_near(y.to(cpu(0)), y0, 0, 0));
  EXPECT_TRUE(tensors_near(a.grad(), a0.grad(), 0, 0));
  EXPECT_TRUE(tensors_near(b.grad(), b0.grad(), 0, 0));
}

TEST(MixedDevices, InputsAreCopiedToTheFirstInputsDeviceWithGradientsBack) {
  Tensor a = random_tensor({3, 4}, 3).to(cpu(1)).detach().set_requires_grad();
  Tensor b = random_tensor({3, 4}, 4).set_requires_grad();  // cpu:0
  Tensor y = a * b;                                           // runs on cpu:1, b is copied there
  EXPECT_EQ(y.device(), cpu(1));
  sum(y).backward();
  EXPECT_EQ(a.grad().device(), cpu(1));
  EXPECT_EQ(b.grad().device(), cpu(0));
  EXPECT_TRUE(tensors_near(b.grad(), a.detach().to(cpu(0)), 0, 0));
  EXPECT_TRUE(tensors_near(a.grad().to(cpu(0)), b.detach(), 0, 0));
}

TEST(MixedDevices, ViewsStayWithTheirInput) {
  Tensor a = random_tensor({2, 6}, 5).to(cpu(1));
  DeviceScope on("cpu:2");
  Tensor v = a.reshape({3, 4});
  EXPECT_EQ(v.device(), cpu(1));
  EXPECT_EQ(v.impl()->storage, a.impl()->storage);
}

TEST(InplaceOps, CopyAndFillOnAVirtualDevice) {
  Tensor t = zeros({2, 3}, {.dtype = DType::F32, .device = cpu(1)});
  t.fill_(2.5);
  EXPECT_EQ(t.device(), cpu(1));
  EXPECT_DOUBLE_EQ(t.to(cpu(0)).at({1, 2}), 2.5);
  Tensor src = from_vector(std::vector<double>{1, 2, 3}, {3}, {.dtype = DType::F64});  // cpu:0, f64, broadcast
  t.copy_(src);
  EXPECT_DOUBLE_EQ(t.to(cpu(0)).at({1, 2}), 3.0);
  EXPECT_DOUBLE_EQ(t.to(cpu(0)).at({0, 0}), 1.0);
}

TEST(InplaceOps, OperandsOnAnotherDeviceAreNamed) {
  // Operands on different devices are refused before any kernel runs.
  Tensor p = zeros({3}, {.device = cpu(1)});
  Tensor g = zeros({3});
  Tensor none;
  try {
    optim::sgd_update_(p, g, none, 0.1, 0.0, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the gradient is on cpu:0 but the parameter is on cpu:1"), std::string::npos)
        << e.what();
  }
}

// A scope naming a GPU this machine lacks is an error naming it; TF's spellings name the same
// devices as ours; a virtual cpu:N always exists.
TEST(DeviceScope, SpellingsAndDevicesThatDoNotExist) {
  EXPECT_MF_ERROR(DeviceScope on("cuda:7"), "DeviceScope", "cuda:7 does not exist");
  EXPECT_MF_ERROR(DeviceScope on("/device:GPU:9"), "cuda:9 does not exist");
  EXPECT_EQ(Device("/device:CPU:1"), cpu(1));
  EXPECT_EQ(Device("/cpu:0"), cpu(0));
  EXPECT_EQ(Device("/gpu:1"), cuda(1));
  EXPECT_EQ(Device("/device:GPU:1"), cuda(1));
  DeviceScope on("/cpu:3");
  EXPECT_EQ(zeros({2}).device(), cpu(3));
}
