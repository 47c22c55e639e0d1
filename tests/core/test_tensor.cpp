// Tensor basics: dtypes, views, strides, element access, printing, devices, memory statistics.
#include "test_util.h"

using namespace meshflow;
using mf_test::tensors_near;
using mf_test::values;

TEST(DType, HalfConversionsRoundTrip) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 3.14159f}) {
    EXPECT_NEAR(static_cast<float>(f16(f)), f, std::fabs(f) * 1e-3f + 1e-7f) << f;
    EXPECT_NEAR(static_cast<float>(bf16(f)), f, std::fabs(f) * 8e-3f) << f;
  }
  EXPECT_TRUE(std::isinf(static_cast<float>(f16(1e6f))));
  EXPECT_EQ(f16(1.0f).bits, 0x3c00);
  EXPECT_EQ(bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(promote_types(DType::I32, DType::F32), DType::F32);
  EXPECT_EQ(promote_types(DType::F16, DType::BF16), DType::F32);
  EXPECT_EQ(promote_types(DType::I64, DType::Bool), DType::I64);
}

TEST(Tensor, FactoriesAndElementAccess) {
  Tensor t = arange(6).reshape({2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.strides(), (Strides{3, 1}));
  EXPECT_DOUBLE_EQ(t.at({1, 2}), 5.0);
  EXPECT_DOUBLE_EQ(t.at({-1, -1}), 5.0);
  t.set({0, 1}, 42);
  EXPECT_DOUBLE_EQ(t.at({0, 1}), 42.0);
  EXPECT_MF_ERROR(t.at({2, 0}), "index 2", "dimension 0", "[2, 3]");
  for (DType dt : {DType::Bool, DType::I32, DType::I64, DType::F16, DType::BF16, DType::F32, DType::F64}) {
    Tensor f = full({2, 2}, 3, {.dtype = dt});
    EXPECT_EQ(f.dtype(), dt);
    EXPECT_DOUBLE_EQ(f.at({1, 1}), dt == DType::Bool ? 1.0 : 3.0);
  }
}

TEST(Tensor, ViewsShareStorageAndHaveRightStrides) {
  Tensor t = arange(24, {.dtype = DType::F64}).reshape({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Strides{1, 12, 4}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_DOUBLE_EQ(p.at({3, 1, 2}), t.at({1, 2, 3}));
  Tensor s = t.slice(2, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_DOUBLE_EQ(s.at({1, 2, 1}), t.at({1, 2, 3}));
  EXPECT_EQ(s.raw_data(), static_cast<char*>(t.raw_data()) + 8);  // shares storage
  Tensor c = p.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_TRUE(tensors_near(c, p));
  Tensor r = p.reshape({8, 3});  // not viewable: copies
  EXPECT_DOUBLE_EQ(r.at({7, 2}), p.at({3, 1, 2}));
  Tensor ex = mf_test::from_values({1, 2, 3}, {3, 1}).expand({3, 4});
  EXPECT_EQ(ex.strides(), (Strides{1, 0}));
  EXPECT_DOUBLE_EQ(ex.at({2, 3}), 3.0);
  EXPECT_MF_ERROR(t.reshape({5, 5}), "reshape", "[2, 3, 4]", "24 elements", "[5, 5]");
  EXPECT_MF_ERROR(ex.expand({3, 5}), "expand", "[3, 4]", "[3, 5]");
}

TEST(Tensor, ReshapeViewsWhenStridesAllow) {
  Tensor t = arange(24, {.dtype = DType::F64}).reshape({4, 6});
  Tensor tt = t.t();                       // [6, 4], strides [1, 6]
  Tensor v = tt.reshape({6, 2, 2});        // splitting the last dim is a view
  EXPECT_EQ(v.raw_data(), tt.raw_data());
  EXPECT_EQ(v.strides(), (Strides{1, 12, 6}));
  EXPECT_DOUBLE_EQ(v.at({5, 1, 0}), tt.at({5, 2}));
  Tensor f = tt.reshape({24});             // merging transposed dims must copy
  EXPECT_NE(f.raw_data(), tt.raw_data());
  EXPECT_DOUBLE_EQ(f.at({5}), tt.at({1, 1}));
}

TEST(Tensor, PrintsValues) {
  Tensor t = mf_test::from_values({1.5, -2, 3, 4}, {2, 2}, DType::F32);
  std::string s = t.str();
  EXPECT_NE(s.find("f32[2, 2]"), std::string::npos) << s;
  EXPECT_NE(s.find("[[1.5000, -2.0000],\n [3.0000, 4.0000]]"), std::string::npos) << s;
  std::string big = arange(100).str();
  EXPECT_NE(big.find("0.0000, 1.0000, 2.0000, ..., 97.0000"), std::string::npos) << big;
}

TEST(Device, VirtualCpuDevicesHaveOwnAllocatorsAndExplicitCopies) {
  EXPECT_EQ(Device("cpu"), cpu(0));
  EXPECT_EQ(Device("/gpu:1"), cuda(1));
  EXPECT_EQ(Device("/device:CPU:2"), cpu(2));
  EXPECT_MF_ERROR(Device("tpu:0"), "tpu");
  reset_peak_memory(cpu(3));
  int64_t before = memory_stats(cpu(3)).current_bytes;
  {
    Tensor a = ones({1000}, {.device = cpu(3)});
    EXPECT_EQ(memory_stats(cpu(3)).current_bytes - before, 4032);  // 4000 rounded to 64
    Tensor b = ones({1000}, {.device = cpu(2)});
    // Mixed devices: the op runs on the first input's device and the other input is copied there.
    Tensor mixed = add(a, b);
    EXPECT_EQ(mixed.device(), cpu(3));
    EXPECT_DOUBLE_EQ(mixed.at({999}), 2.0);
    Tensor c = add(a, b.to(cpu(3)));
    EXPECT_EQ(c.device(), cpu(3));
    EXPECT_DOUBLE_EQ(c.at({999}), 2.0);
  }
  EXPECT_EQ(memory_stats(cpu(3)).current_bytes, before);
  EXPECT_GE(memory_stats(cpu(3)).peak_bytes - before, 4 * 4032);
  EXPECT_MF_ERROR(ones({2}, {.device = cuda(0)}), "cuda:0");
}

