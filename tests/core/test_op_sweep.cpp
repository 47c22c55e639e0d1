// The op sweep: every registered op is exercised here, through its public function, with a
// float64 finite-difference gradient check (when differentiable) and a cross-device check (the
// same op on the virtual device cpu:1 gives the same values as on cpu:0). A newly registered op
// that is missing from this table fails the test.
#include <map>
#include <set>

#include <algorithm>

#include "meshflow/core/op_list.h"
#include "meshflow/core/optim.h"
#include "op_cases.h"
#include "test_util.h"

using namespace meshflow;
using mf_test::gradcheck;
using mf_test::random_tensor;
using mf_test::tensors_near;
using mf_test::Case;
const auto& cases = mf_test::op_cases;

namespace {

// Ops that are never called directly by users; each is exercised through the public op named.
const std::map<std::string, std::string> kCoveredBy = {
    {"conv2d_grad_input", "conv2d"},     {"conv2d_grad_weight", "conv2d"},  {"max_pool2d_grad", "max_pool2d"},
    {"avg_pool2d_grad", "avg_pool2d"},   {"gather_backward", "gather"},      {"gelu_derivative", "gelu"},      {"relu_grad", "relu"},
    {"bias_relu_backward", "bias_relu"},
    {"equal_mask", "max"},               {"layer_norm_backward", "layer_norm"},
    {"batch_norm_backward", "batch_norm_train"}, {"to_device", "to_device (Device.CopiesAreDifferentiable)"},
    // In-place ops (run_inplace): InplaceOps.VirtualDeviceGivesTheSameValues below; their values
    // against float64 references are in tests/models/test_optimizers.cpp and test_tensor.cpp.
    {"assign", "Tensor::copy_"}, {"sgd_update", "optim::sgd_update_"}, {"adam_update", "optim::adam_update_"},
    {"rmsprop_update", "optim::rmsprop_update_"}, {"adagrad_update", "optim::adagrad_update_"},
    {"squared_norm", "optim::squared_norm"}, {"scale_inplace", "optim::scale_"}, {"clamp_inplace", "optim::clamp_"},
    // The reduction primitives; closed forms in tests/core/test_optim.cpp, halves in test_half_sum.cpp.
    {"scaled_copy", "optim::scaled_copy_"}, {"accumulate", "optim::accumulate_"},
};

}  // namespace

TEST(OpSweep, EveryRegisteredOpIsCovered) {
  auto table = cases();
  for (const auto& name : registered_ops())
    EXPECT_TRUE(table.count(name) || kCoveredBy.count(name))
        << "op '" << name << "' is registered but not in the sweep: add a case in tests/core/test_op_sweep.cpp";
}

TEST(OpSweep, GradientsMatchFiniteDifferences) {
  uint64_t seed = 1;
  for (auto& [name, c] : cases()) {
    if (!c.differentiable) continue;
    std::vector<Tensor> inputs;
    for (const auto& s : c.shapes) inputs.push_back(random_tensor(s, seed++, c.lo, c.hi));
    EXPECT_TRUE(gradcheck(c.fn, inputs)) << "op " << name;
  }
}

TEST(OpSweep, VirtualDeviceGivesTheSameValues) {
  uint64_t seed = 100;
  for (auto& [name, c] : cases()) {
    std::vector<Tensor> on0, on1;
    for (const auto& s : c.shapes) {
      Tensor t = random_tensor(s, seed++, c.lo, c.hi);
      on0.push_back(t);
      on1.push_back(t.to(cpu(1)));
    }
    Tensor r0, r1;
    {
      NoGradGuard ng;
      r0 = c.fn(on0);
      r1 = c.fn(on1);
    }
    EXPECT_EQ(r1.device(), cpu(1)) << "op " << name;
    EXPECT_TRUE(tensors_near(r1.to(cpu(0)), r0, 0, 0)) << "op " << name;
  }
}

TEST(Device, CopiesAreDifferentiable) {
  Tensor x = random_tensor({3}, 5);
  x.set_requires_grad();
  Tensor y = sum(square(x.to(cpu(2))));
  EXPECT_EQ(y.device(), cpu(2));
  y.backward();
  EXPECT_EQ(x.grad().device(), cpu(0));
  EXPECT_TRUE(tensors_near(x.grad(), x.detach() * 2.0, 1e-12));
}

// Every in-place op run on the virtual device cpu:1 writes what it writes on cpu:0.
TEST(InplaceOps, VirtualDeviceGivesTheSameValues) {
  auto [n0, t0] = mf_test::apply_every_inplace_op(cpu(0), DType::F64, {7, 5});
  auto [n1, t1] = mf_test::apply_every_inplace_op(cpu(1), DType::F64, {7, 5});
  EXPECT_EQ(t1.device(), cpu(1));
  EXPECT_EQ(n0, n1);
  EXPECT_GT(n0, 0.0);
  EXPECT_TRUE(tensors_near(t1.to(cpu(0)), t0, 0, 0));
}

// The typed handles (op_list.h) and the registry hold the same names, and no kernel was
// registered under a name that no op defines (a misspelt register_kernel would make one).
TEST(OpList, MatchesTheRegistry) {
  std::vector<std::string> listed = ops::listed_names();
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, registered_ops());
  EXPECT_TRUE(kernels_without_definition().empty())
      << "kernels registered for an op nobody defines: " << kernels_without_definition()[0];
}

// Every op has a sharding-rule slot beside its shape inference (Note [Sharding rules]); asking an
// op without a rule for it names the op instead of returning a silent default. (The rules
// themselves are checked against one device in tests/parallel/test_partitioner.cpp.)
TEST(OpList, AnOpWithoutShardingRuleSaysSo) {
  for (const auto& name : registered_ops()) {
    const OpDef& op = get_op(name);
    if (op.sharding) continue;
    const std::string expected = "op " + name + " has no sharding rule";
    EXPECT_MF_ERROR(sharding_rule(op), expected.c_str());
  }
  // Backward-only ops have none (the partitioner splits the forward; autograd runs on the parts).
  EXPECT_MF_ERROR(sharding_rule(ops::relu_grad()), "op relu_grad has no sharding rule");
  EXPECT_NE(sharding_rule(ops::matmul()), nullptr);
  EXPECT_NE(sharding_rule(ops::dropout()), nullptr);
}

TEST(BiasGelu, EqualsGeluOfTheSumInBothForms) {
  Tensor x = random_tensor({5, 7}, 3, -3, 3), b = random_tensor({7}, 4, -1, 1);
  for (bool approximate : {false, true})
    EXPECT_TRUE(tensors_near(bias_gelu(x, b, approximate), gelu(x + b, approximate), 1e-15, 0)) << approximate;
  EXPECT_THROW(bias_gelu(x, random_tensor({5}, 5)), Error);
  EXPECT_THROW(bias_gelu(x, random_tensor({7}, 5).to(DType::F32)), Error);
}
