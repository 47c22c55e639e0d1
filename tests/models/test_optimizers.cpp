// Optimizers against torch.optim over several steps, clipping and schedules by hand, slots, errors.
#include <cmath>

#include "meshflow/core/ops/elementwise.h"
#include "meshflow/core/ops/linalg.h"
#include "meshflow/core/optim.h"
#include "meshflow/models/losses.h"
#include "meshflow/models/metrics.h"
#include "meshflow/models/optimizers.h"
#include "test_util.h"
#include "torch_ref.h"

using namespace meshflow;
using mf_test::py_tensor;
using mf_test::random_tensor;
using mf_test::values;

namespace {

constexpr int kSteps = 6;

// Two variables of different shapes, so slots must be kept per variable.
struct Problem {
  std::vector<Tensor> init;                    // initial values
  std::vector<std::vector<Tensor>> grads;      // grads[step][variable]
  Problem() {
    init = {random_tensor({3, 4}, 101), random_tensor({4}, 102)};
    for (int s = 0; s < kSteps; ++s)
      grads.push_back({random_tensor({3, 4}, 200 + s, -2, 2), random_tensor({4}, 300 + s, -2, 2)});
  }
  std::vector<Variable> variables() const {
    return {Variable(init[0].clone(), "dense/kernel", true), Variable(init[1].clone(), "dense/bias", true)};
  }
  // Values of both variables after each step, flattened in order.
  std::vector<double> run(Optimizer& opt) const {
    auto vars = variables();
    std::vector<double> trace;
    for (int s = 0; s < kSteps; ++s) {
      opt.apply_gradients(grads[s], vars);
      for (const auto& v : vars)
        for (double x : values(v)) trace.push_back(x);
    }
    return trace;
  }
  // A torch script applying the same gradients with `make_opt` (a Python expression over
  // `params`); `before_step` runs before each step with `t` the 1-based step number.
  std::string torch_script(const std::string& make_opt, const std::string& before_step = "") const {
    std::string s = "params = [" + py_tensor(init[0]) + ".requires_grad_(), " + py_tensor(init[1]) +
                    ".requires_grad_()]\ngrads = [";
    for (int k = 0; k < kSteps; ++k) s += "[" + py_tensor(grads[k][0]) + ", " + py_tensor(grads[k][1]) + "],";
    s += "]\nopt = " + make_opt + "\n";
    s += "for t in range(1, " + std::to_string(kSteps + 1) + "):\n";
    s += "    for p, g in zip(params, grads[t - 1]): p.grad = g.clone()\n";
    if (!before_step.empty()) s += "    " + before_step + "\n";
    s += "    opt.step()\n    out(*[p.detach() for p in params])\n";
    return s;
  }
};

::testing::AssertionResult traces_near(const std::vector<double>& ours, const std::vector<double>& ref,
                                       double rtol = 1e-10) {
  if (ours.size() != ref.size())
    return ::testing::AssertionFailure() << "sizes differ: " << ours.size() << " vs " << ref.size();
  for (size_t i = 0; i < ours.size(); ++i)
    if (!(std::fabs(ours[i] - ref[i]) <= rtol * std::max(std::fabs(ref[i]), 1e-3)))
      return ::testing::AssertionFailure() << "value " << i << " (step " << i / 16 + 1 << "): " << ours[i] << " vs "
                                           << ref[i];
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(Optimizers, SgdMatchesTorch) {
  Problem pb;
  std::vector<std::shared_ptr<Optimizer>> ours;
  std::string script;
  ours.push_back(optimizers::SGD({{.learning_rate = 0.1}}));
  script += pb.torch_script("torch.optim.SGD(params, lr=0.1)");
  for (bool nesterov : {false, true}) {
    optimizers::SGDOptions o;
    o.learning_rate = 0.05;
    o.momentum = 0.9;
    o.nesterov = nesterov;
    ours.push_back(optimizers::SGD(o));
    script += pb.torch_script(std::string("torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=") +
                              (nesterov ? "True" : "False") + ")");
  }
  MF_TORCH_OR_SKIP(all, script);
  auto refs = mf_test::split_equal(all, ours.size());
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(traces_near(pb.run(*ours[i]), refs[i])) << "case " << i;
}

// Keras adds epsilon to sqrt(v) before the bias correction of the step size; torch adds it after
// dividing sqrt(v) by sqrt(1 - beta2^t). Both agree when torch's eps is eps / sqrt(1 - beta2^t),
// which the script sets before each step. epsilon is large here so a misplaced one would show.
TEST(Optimizers, AdamAndAmsgradMatchTorchWithKerasEpsilon) {
  Problem pb;
  std::vector<std::shared_ptr<Optimizer>> ours;
  std::string script;
  for (bool amsgrad : {false, true}) {
    optimizers::AdamOptions o;
    o.learning_rate = 0.01;
    o.beta_1 = 0.8;
    o.beta_2 = 0.95;
    o.epsilon = 1e-2;
    o.amsgrad = amsgrad;
    ours.push_back(optimizers::Adam(o));
    std::string ams = amsgrad ? "True" : "False";
    script += pb.torch_script("torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.95), amsgrad=" + ams + ")",
                              "opt.param_groups[0]['eps'] = 1e-2 / (1 - 0.95 ** t) ** 0.5");
  }
  MF_TORCH_OR_SKIP(all, script);
  auto refs = mf_test::split_equal(all, ours.size());
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(traces_near(pb.run(*ours[i]), refs[i])) << "amsgrad=" << i;
}

TEST(Optimizers, AdamWMatchesTorch) {
  Problem pb;
  optimizers::AdamWOptions o;
  o.learning_rate = 0.02;
  o.epsilon = 1e-3;
  o.weight_decay = 0.1;
  auto opt = optimizers::AdamW(o);
  MF_TORCH_OR_SKIP(ref, pb.torch_script("torch.optim.AdamW(params, lr=0.02, betas=(0.9, 0.999), weight_decay=0.1)",
                                        "opt.param_groups[0]['eps'] = 1e-3 / (1 - 0.999 ** t) ** 0.5"));
  EXPECT_TRUE(traces_near(pb.run(*opt), ref));
}

TEST(Optimizers, RmspropMatchesTorch) {
  Problem pb;
  std::vector<std::shared_ptr<Optimizer>> ours;
  std::string script;
  for (auto [momentum, centered] : {std::pair{0.0, false}, {0.5, false}, {0.0, true}, {0.7, true}}) {
    optimizers::RMSpropOptions o;
    o.learning_rate = 0.01;
    o.rho = 0.8;
    o.momentum = momentum;
    o.epsilon = 1e-3;
    o.centered = centered;
    ours.push_back(optimizers::RMSprop(o));
    script += pb.torch_script("torch.optim.RMSprop(params, lr=0.01, alpha=0.8, eps=1e-3, momentum=" +
                              std::to_string(momentum) + ", centered=" + (centered ? "True" : "False") + ")");
  }
  MF_TORCH_OR_SKIP(all, script);
  auto refs = mf_test::split_equal(all, ours.size());
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(traces_near(pb.run(*ours[i]), refs[i])) << "case " << i;
}

TEST(Optimizers, AdagradMatchesTorch) {
  Problem pb;
  optimizers::AdagradOptions o;
  o.learning_rate = 0.1;
  o.initial_accumulator_value = 0.3;
  o.epsilon = 1e-3;
  auto opt = optimizers::Adagrad(o);
  MF_TORCH_OR_SKIP(ref, pb.torch_script("torch.optim.Adagrad(params, lr=0.1, initial_accumulator_value=0.3, eps=1e-3)"));
  EXPECT_TRUE(traces_near(pb.run(*opt), ref));
}

TEST(Optimizers, Float32VariablesFollowTheFloat64Result) {
  Problem pb;
  auto opt64 = optimizers::Adam({{.learning_rate = 0.01}});
  auto opt32 = optimizers::Adam({{.learning_rate = 0.01}});
  Variable w64(pb.init[0].clone(), "w", true), w32(pb.init[0].to(DType::F32), "w", true);
  for (int s = 0; s < kSteps; ++s) {
    opt64->apply_gradients({pb.grads[s][0]}, {w64});
    opt32->apply_gradients({pb.grads[s][0].to(DType::F32)}, {w32});
  }
  EXPECT_TRUE(mf_test::tensors_near(w32.to(DType::F64), w64, 1e-5, 1e-5));
}

TEST(Optimizers, ClipnormScalesEachGradientToItsLimit) {
  // SGD with lr 1 makes the update equal to minus the clipped gradient.
  auto opt = optimizers::SGD({{.learning_rate = 1.0, .clipnorm = 1.0}});
  Variable a(zeros({2}, {.dtype = DType::F64}), "a", true), b(zeros({2}, {.dtype = DType::F64}), "b", true);
  Tensor ga = mf_test::from_values({3, 4}, {2}), gb = mf_test::from_values({0.3, 0.4}, {2});
  opt->apply_gradients({ga, gb}, {a, b});
  EXPECT_TRUE(mf_test::tensors_near(a, mf_test::from_values({-0.6, -0.8}, {2}), 1e-15));  // norm 5 -> 1
  EXPECT_TRUE(mf_test::tensors_near(b, mf_test::from_values({-0.3, -0.4}, {2}), 1e-15));  // norm 0.5: unchanged
  EXPECT_TRUE(mf_test::tensors_near(ga, mf_test::from_values({3, 4}, {2}), 0));           // caller's gradient kept
}

TEST(Optimizers, GlobalClipnormScalesAllGradientsTogether) {
  auto opt = optimizers::SGD({{.learning_rate = 1.0, .global_clipnorm = 2.6}});
  Variable a(zeros({2}, {.dtype = DType::F64}), "a", true), b(zeros({1}, {.dtype = DType::F64}), "b", true);
  // Global norm sqrt(9 + 16 + 144) = 13, so every gradient is scaled by 2.6 / 13 = 0.2.
  opt->apply_gradients({mf_test::from_values({3, 4}, {2}), mf_test::from_values({12}, {1})}, {a, b});
  EXPECT_TRUE(mf_test::tensors_near(a, mf_test::from_values({-0.6, -0.8}, {2}), 1e-15));
  EXPECT_TRUE(mf_test::tensors_near(b, mf_test::from_values({-2.4}, {1}), 1e-15));
  // Below the limit nothing changes.
  opt->apply_gradients({mf_test::from_values({1, 1}, {2}), mf_test::from_values({1}, {1})}, {a, b});
  EXPECT_TRUE(mf_test::tensors_near(a, mf_test::from_values({-1.6, -1.8}, {2}), 1e-15));
}

TEST(Optimizers, ClipvalueClampsEachElement) {
  auto opt = optimizers::SGD({{.learning_rate = 0.5, .clipvalue = 0.25}});
  Variable a(zeros({4}, {.dtype = DType::F64}), "a", true);
  opt->apply_gradients({mf_test::from_values({-3, -0.1, 0.2, 7}, {4})}, {a});
  EXPECT_TRUE(mf_test::tensors_near(a, mf_test::from_values({0.125, 0.05, -0.1, -0.125}, {4}), 1e-15));
}

TEST(Optimizers, BroadcastGradientViewsAreMadeDense) {
  auto o1 = optimizers::Adam({{.learning_rate = 0.1}}), o2 = optimizers::Adam({{.learning_rate = 0.1}});
  Tensor row = random_tensor({1, 4}, 5);
  Variable a(random_tensor({3, 4}, 6), "a", true), b(a.clone(), "b", true);
  o1->apply_gradients({row.expand({3, 4})}, {a});  // stride 0 along the first axis
  o2->apply_gradients({row.expand({3, 4}).contiguous()}, {b});
  EXPECT_TRUE(mf_test::tensors_near(a, b, 0, 0));
}

TEST(Optimizers, ScheduleIsReadAtEachIteration) {
  auto sched = schedules::ExponentialDecay(0.1, 2, 0.5);
  OptimizerOptions base;
  base.schedule = sched;
  auto opt = optimizers::SGD({base});
  Variable w(zeros({1}, {.dtype = DType::F64}), "w", true);
  double expected = 0;
  for (int s = 0; s < 4; ++s) {
    double lr = 0.1 * std::pow(0.5, s / 2.0);
    EXPECT_DOUBLE_EQ(opt->learning_rate(), lr);
    opt->apply_gradients({mf_test::from_values({1.0}, {1})}, {w});
    expected -= lr;
    EXPECT_EQ(opt->iterations(), s + 1);
  }
  EXPECT_NEAR(w.item(), expected, 1e-15);
  opt->set_learning_rate(0.5);
  EXPECT_EQ(opt->learning_rate(), 0.5);
}

TEST(Optimizers, StepUsesAndClearsGradsAndSkipsVariablesWithout) {
  auto opt = optimizers::SGD({{.learning_rate = 0.5}});
  Variable a(mf_test::from_values({1, 2}, {2}), "a", true), b(mf_test::from_values({5}, {1}), "b", true);
  a.set_grad(mf_test::from_values({2, -2}, {2}));
  opt->step({a, b});
  EXPECT_TRUE(mf_test::tensors_near(a, mf_test::from_values({0, 3}, {2}), 0));
  EXPECT_TRUE(mf_test::tensors_near(b, mf_test::from_values({5}, {1}), 0));
  EXPECT_FALSE(a.grad().defined());
  EXPECT_EQ(opt->iterations(), 1);
}

TEST(Optimizers, SlotStateRoundTripsThroughCheckpointNames) {
  Problem pb;
  auto full = optimizers::Adam({{.learning_rate = 0.01}});
  auto vars_full = pb.variables();
  for (int s = 0; s < kSteps; ++s) full->apply_gradients(pb.grads[s], vars_full);

  auto first = optimizers::Adam({{.learning_rate = 0.01}});
  auto vars = pb.variables();
  for (int s = 0; s < 3; ++s) first->apply_gradients(pb.grads[s], vars);
  auto state = first->state();
  std::vector<std::string> keys;
  for (const auto& [k, t] : state) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"dense/kernel/momentum", "dense/kernel/velocity", "dense/bias/momentum",
                                            "dense/bias/velocity"}));
  // A fresh optimizer loads the state before it has seen the variables, then continues.
  auto resumed = optimizers::Adam({{.learning_rate = 0.01}});
  resumed->load_state(state);
  resumed->set_iterations(first->iterations());
  for (int s = 3; s < kSteps; ++s) resumed->apply_gradients(pb.grads[s], vars);
  EXPECT_TRUE(mf_test::tensors_near(vars[0], vars_full[0], 0, 0));
  EXPECT_TRUE(mf_test::tensors_near(vars[1], vars_full[1], 0, 0));
  // The same variable through another handle shares its slots.
  Variable alias = vars[0];
  resumed->apply_gradients({pb.grads[0][0]}, {alias});
  EXPECT_EQ(resumed->state().size(), 4u);
}

TEST(Optimizers, ByNameWithKerasDefaults) {
  EXPECT_DOUBLE_EQ(optimizers::get("sgd")->learning_rate(), 0.01);
  EXPECT_DOUBLE_EQ(optimizers::get("Adam")->learning_rate(), 0.001);
  EXPECT_EQ(optimizers::get("adamw")->get_config()["weight_decay"], 0.004);
  EXPECT_DOUBLE_EQ(optimizers::get("rmsprop")->learning_rate(), 0.001);
  EXPECT_EQ(optimizers::get("adagrad")->get_config()["initial_accumulator_value"], 0.1);
}

TEST(Optimizers, ErrorsNameTheProblem) {
  EXPECT_MF_ERROR(optimizers::get("adamax"), "unknown optimizer 'adamax'", "sgd", "adam", "adamw", "rmsprop",
                  "adagrad");
  EXPECT_MF_ERROR(optimizers::SGD({{.clipnorm = 1.0, .clipvalue = 1.0}}), "only one of clipnorm, clipvalue");
  auto opt = optimizers::Adam();
  Variable w(zeros({3, 4}), "dense/kernel", true);
  EXPECT_MF_ERROR(opt->apply_gradients({zeros({4, 3})}, {w}), "adam", "dense/kernel", "[4, 3]", "[3, 4]");
  EXPECT_MF_ERROR(opt->apply_gradients({zeros({3, 4}), zeros({3, 4})}, {w}), "2 gradients for 1 variables");
  EXPECT_MF_ERROR(schedules::PiecewiseConstantDecay({10, 20}, {1.0, 0.5}), "PiecewiseConstantDecay",
                  "2 boundaries and 2 values");
}

// The pieces together: a loss, its gradient, an optimizer step and a metric fit a separable problem.
TEST(Training, LogisticRegressionLearnsWithAdamAndBinaryCrossentropy) {
  Tensor x = random_tensor({200, 2}, 81);
  std::vector<double> xv = values(x), yv;
  for (size_t i = 0; i < 200; ++i) yv.push_back(xv[2 * i] + 2 * xv[2 * i + 1] > 0 ? 1.0 : 0.0);
  Tensor y = mf_test::from_values(yv, {200, 1});
  Variable w(zeros({2, 1}, {.dtype = DType::F64}), "w", true), b(zeros({1}, {.dtype = DType::F64}), "b", true);
  auto loss = losses::BinaryCrossentropy({.from_logits = true});
  auto opt = optimizers::Adam({{.learning_rate = 0.1}});
  std::vector<double> history;
  for (int s = 0; s < 100; ++s) {
    Tensor l = (*loss)(y, matmul(x, w) + b);
    history.push_back(l.item());
    l.backward();
    opt->step({w, b});
  }
  EXPECT_NEAR(history.front(), std::log(2.0), 1e-12);  // zero weights: every logit is 0
  EXPECT_LT(history[50], 0.35);
  EXPECT_LT(history.back(), 0.8 * history[50]);  // still falling: the data are separable
  auto accuracy = metrics::get("accuracy", loss->name(), 1);
  accuracy->update_state(y, sigmoid(matmul(x, w) + b).detach());
  EXPECT_GT(accuracy->result(), 0.97);
}

TEST(Schedules, MatchKerasClosedForms) {
  auto exp_decay = schedules::ExponentialDecay(0.1, 10, 0.96);
  auto exp_stair = schedules::ExponentialDecay(0.1, 10, 0.96, true);
  auto piecewise = schedules::PiecewiseConstantDecay({100, 200}, {1.0, 0.5, 0.1});
  auto cosine = schedules::CosineDecay(0.2, 50, 0.1);
  auto inverse = schedules::InverseTimeDecay(0.5, 4, 2.0);
  auto inverse_stair = schedules::InverseTimeDecay(0.5, 4, 2.0, true);
  for (int64_t s : {0, 1, 9, 10, 25, 50, 60, 100, 101, 200, 201}) {
    EXPECT_DOUBLE_EQ((*exp_decay)(s), 0.1 * std::pow(0.96, s / 10.0)) << s;
    EXPECT_DOUBLE_EQ((*exp_stair)(s), 0.1 * std::pow(0.96, double(s / 10))) << s;
    EXPECT_DOUBLE_EQ((*piecewise)(s), s <= 100 ? 1.0 : s <= 200 ? 0.5 : 0.1) << s;
    double c = 0.5 * (1 + std::cos(M_PI * double(std::min<int64_t>(s, 50)) / 50.0));
    EXPECT_NEAR((*cosine)(s), 0.2 * ((1 - 0.1) * c + 0.1), 1e-15) << s;
    EXPECT_DOUBLE_EQ((*inverse)(s), 0.5 / (1 + 2.0 * s / 4.0)) << s;
    EXPECT_DOUBLE_EQ((*inverse_stair)(s), 0.5 / (1 + 2.0 * double(s / 4))) << s;
  }
  EXPECT_NEAR((*cosine)(50), 0.02, 1e-15);  // alpha * initial at the end
}

TEST(Schedules, CosineDecayWarmsUpThenDecaysFromItsTarget) {
  // Keras 3: linear from `initial` to warmup_target over warmup_steps, then the cosine from the target.
  auto s = schedules::CosineDecay(0.0, 100, 0.1, 10, 0.5);
  EXPECT_DOUBLE_EQ((*s)(0), 0.0);
  EXPECT_DOUBLE_EQ((*s)(5), 0.25);
  EXPECT_DOUBLE_EQ((*s)(10), 0.5);
  for (int64_t t : {10, 35, 60, 85, 110, 200}) {
    const double c = 0.5 * (1 + std::cos(M_PI * double(std::min<int64_t>(t - 10, 100)) / 100.0));
    EXPECT_NEAR((*s)(t), 0.5 * ((1 - 0.1) * c + 0.1), 1e-15) << t;
  }
  EXPECT_NEAR((*s)(110), 0.05, 1e-15);
  // The config round-trips, warm-up included.
  auto back = schedules::from_config(s->get_config());
  for (int64_t t : {0, 3, 10, 50, 120}) EXPECT_DOUBLE_EQ((*back)(t), (*s)(t)) << t;
  // Without warm-up it is the plain cosine (the target defaults to the initial rate).
  auto plain = schedules::CosineDecay(0.2, 50, 0.0, 0);
  EXPECT_DOUBLE_EQ((*plain)(0), 0.2);
  EXPECT_MF_ERROR(schedules::CosineDecay(0.1, 10, 0.0, -1), "warmup_steps must be >= 0");
  EXPECT_MF_ERROR(schedules::CosineDecay(0.1, 10, 0.0, 0, 0.5), "warmup_target", "warmup_steps is 0");
}
