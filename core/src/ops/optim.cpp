// The fused optimizer updates and clipping helpers as in-place ops (sgd_update, adam_update,
// rmsprop_update, adagrad_update, squared_norm, scale_inplace, clamp_inplace, scaled_copy, accumulate): the public
// functions of meshflow/core/optim.h check their operands here, once for every device, and run
// the device's kernel (core/kernels/{cpu,cuda}/optim.*). See Note [Fused optimizer updates].
#include "meshflow/core/optim.h"

#include <cmath>

#include "meshflow/core/error.h"
#include "meshflow/core/op.h"
#include "meshflow/core/op_list.h"

namespace meshflow::optim {
namespace {

void check_param(const char* op, const Tensor& p) {
  MF_CHECK(p.defined() && !p.is_symbolic(), op, ": the parameter is undefined or symbolic");
  MF_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F64, op, ": the parameter is ", dtype_name(p.dtype()),
           "; fused updates support f32 and f64");
  MF_CHECK(p.is_contiguous(), op, ": the parameter must be contiguous (shape ", shape_str(p.shape()), ")");
}

// Every other operand must match the parameter in shape, dtype, device and be contiguous.
void check_like(const char* op, const Tensor& p, const Tensor& t, const char* what) {
  MF_CHECK(t.defined() && !t.is_symbolic(), op, ": ", what, " is undefined or symbolic");
  MF_CHECK(t.shape() == p.shape(), op, ": ", what, " has shape ", shape_str(t.shape()), " but the parameter has ",
           shape_str(p.shape()));
  MF_CHECK(t.dtype() == p.dtype(), op, ": ", what, " is ", dtype_name(t.dtype()), " but the parameter is ",
           dtype_name(p.dtype()));
  MF_CHECK(t.device() == p.device(), op, ": ", what, " is on ", t.device().str(), " but the parameter is on ",
           p.device().str());
  MF_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous (make it contiguous() first)");
}

// In-place ops have no outputs; the infer function only checks the operand count.
std::vector<TensorMeta> infer_inplace(const std::vector<TensorMeta>& in, const Attrs&) {
  MF_CHECK(!in.empty(), current_op_name(), ": needs operands");
  return {};
}
std::vector<TensorMeta> infer_squared_norm(const std::vector<TensorMeta>& in, const Attrs&) {
  return {{Shape{}, DType::F64, in[0].device}};
}

MF_STATIC_INIT {
  for (const char* name : {"sgd_update", "adam_update", "rmsprop_update", "adagrad_update", "scale_inplace",
                           "clamp_inplace", "scaled_copy", "accumulate"})
    define_op(name).infer = infer_inplace;
  define_op("squared_norm").infer = infer_squared_norm;
}

// A slot that an update does not use (momentum 0, no amsgrad) is passed as the parameter itself,
// so kernels see a fixed operand list; the attrs say whether it is read.
const Tensor& or_param(bool used, const Tensor& slot, const Tensor& param) { return used ? slot : param; }

}  // namespace

void sgd_update_(Tensor& param, const Tensor& grad, Tensor& buf, double lr, double momentum, bool nesterov) {
  const char* op = "sgd_update_";
  check_param(op, param);
  check_like(op, param, grad, "the gradient");
  if (momentum != 0.0) check_like(op, param, buf, "the momentum buffer");
  static const OpDef& def = ops::sgd_update();
  run_inplace(def, {param, grad, or_param(momentum != 0.0, buf, param)},
              {{"lr", lr}, {"momentum", momentum}, {"nesterov", nesterov}});
}

void adam_update_(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& v_max, double lr, double beta1,
                  double beta2, double eps, int64_t step, bool amsgrad, double weight_decay) {
  const char* op = "adam_update_";
  check_param(op, param);
  check_like(op, param, grad, "the gradient");
  check_like(op, param, m, "the first moment");
  check_like(op, param, v, "the second moment");
  if (amsgrad) check_like(op, param, v_max, "the amsgrad maximum");
  MF_CHECK(step >= 1, op, ": step must be >= 1 (the 1-based count of updates), got ", step);
  // The bias corrections fold into one step size, computed in double (Keras's alpha).
  const double alpha = lr * std::sqrt(1.0 - std::pow(beta2, double(step))) / (1.0 - std::pow(beta1, double(step)));
  static const OpDef& def = ops::adam_update();
  run_inplace(def, {param, grad, m, v, or_param(amsgrad, v_max, param)},
              {{"alpha", alpha}, {"beta1", beta1}, {"beta2", beta2}, {"eps", eps}, {"amsgrad", amsgrad},
               {"decay", lr * weight_decay}});
}

void AdamBatch::resize(size_t n) { operands_.resize(5 * n); }

void AdamBatch::bind(size_t i, const Tensor& param, Tensor&& grad, const Tensor& m, const Tensor& v,
                     const Tensor& v_max) {
  MF_CHECK(i < size(), "adam_update_: parameter ", i, " bound in a batch of ", size());
  // Copy a handle only when another tensor is bound there (Note [Prepared Adam step]).
  auto keep = [](Tensor& slot, const Tensor& t) {
    if (slot.impl() != t.impl()) slot = t;
  };
  Tensor* o = &operands_[5 * i];
  keep(o[0], param);
  o[1] = std::move(grad);
  keep(o[2], m);
  keep(o[3], v);
  keep(o[4], v_max.defined() ? v_max : param);
}

void AdamBatch::run(double lr, double beta1, double beta2, double eps, int64_t step, bool amsgrad,
                    double weight_decay) {
  const char* op = "adam_update_";
  if (operands_.empty()) return;
  MF_CHECK(step >= 1, op, ": step must be >= 1 (the 1-based count of updates), got ", step);
  // Whatever happens below, this step's gradients are not kept alive until the next one.
  struct Release {
    std::vector<Tensor>& o;
    ~Release() {
      for (size_t k = 1; k < o.size(); k += 5) o[k] = Tensor();
    }
  } release{operands_};
  const Device device = operands_[0].device();
  for (size_t k = 0; k < operands_.size(); k += 5) {
    const Tensor& p = operands_[k];
    MF_CHECK(p.defined(), op, ": parameter ", k / 5, " of the batch was never bound");
    check_param(op, p);
    MF_CHECK(p.device() == device, op, ": the parameters are on ", device.str(), " and ", p.device().str(),
             "; update each device's in its own call");
    check_like(op, p, operands_[k + 1], "the gradient");
    check_like(op, p, operands_[k + 2], "the first moment");
    check_like(op, p, operands_[k + 3], "the second moment");
    if (amsgrad) {
      MF_CHECK(operands_[k + 4].impl() != p.impl(), op, ": amsgrad needs the amsgrad maximum of parameter ", k / 5);
      check_like(op, p, operands_[k + 4], "the amsgrad maximum");
    }
  }
  const double alpha = lr * std::sqrt(1.0 - std::pow(beta2, double(step))) / (1.0 - std::pow(beta1, double(step)));
  // set() replaces in place after the first step: no allocation.
  attrs_.set("alpha", alpha).set("beta1", beta1).set("beta2", beta2).set("eps", eps).set("amsgrad", amsgrad);
  attrs_.set("decay", lr * weight_decay);
  static const OpDef& def = ops::adam_update();
  run_inplace(def, operands_, attrs_);
}

void rmsprop_update_(Tensor& param, const Tensor& grad, Tensor& ms, Tensor& mg, Tensor& mom, double lr, double rho,
                     double momentum, double eps, bool centered) {
  const char* op = "rmsprop_update_";
  check_param(op, param);
  check_like(op, param, grad, "the gradient");
  check_like(op, param, ms, "the mean square");
  if (centered) check_like(op, param, mg, "the mean gradient");
  if (momentum > 0) check_like(op, param, mom, "the momentum buffer");
  static const OpDef& def = ops::rmsprop_update();
  run_inplace(def, {param, grad, ms, or_param(centered, mg, param), or_param(momentum > 0, mom, param)},
              {{"lr", lr}, {"rho", rho}, {"momentum", momentum}, {"eps", eps}, {"centered", centered}});
}

void adagrad_update_(Tensor& param, const Tensor& grad, Tensor& acc, double lr, double eps) {
  const char* op = "adagrad_update_";
  check_param(op, param);
  check_like(op, param, grad, "the gradient");
  check_like(op, param, acc, "the accumulator");
  static const OpDef& def = ops::adagrad_update();
  run_inplace(def, {param, grad, acc}, {{"lr", lr}, {"eps", eps}});
}

double squared_norm(const Tensor& t) {
  check_param("squared_norm", t);
  static const OpDef& def = ops::squared_norm();
  // The result is an f64 scalar on t's device; the kernel writes it through the second operand.
  Tensor out = empty({}, {.dtype = DType::F64, .device = t.device()});
  run_inplace(def, {t, out});
  return out.item();
}

void scale_(Tensor& t, double factor) {
  check_param("scale_", t);
  static const OpDef& def = ops::scale_inplace();
  run_inplace(def, {t}, {{"factor", factor}});
}

void scaled_copy_(Tensor& dst, const Tensor& src, double factor) {
  check_param("scaled_copy_", dst);
  check_like("scaled_copy_", dst, src, "the source");
  static const OpDef& def = ops::scaled_copy();
  run_inplace(def, {dst, src}, {{"factor", factor}});
}

void accumulate_(Tensor& inout, const Tensor& in) {
  MF_CHECK(inout.defined() && !inout.is_symbolic(), "accumulate_: the destination is undefined or symbolic");
  const DType t = inout.dtype();
  MF_CHECK(t == DType::F32 || t == DType::F64 || t == DType::BF16 || t == DType::F16, "accumulate_: the destination is ",
           dtype_name(t), "; sums support f32, f64, bf16 and f16");
  MF_CHECK(inout.is_contiguous(), "accumulate_: the destination must be contiguous (shape ", shape_str(inout.shape()),
           ")");
  check_like("accumulate_", inout, in, "the addend");
  static const OpDef& def = ops::accumulate();
  run_inplace(def, {inout, in});
}

void clamp_(Tensor& t, double lo, double hi) {
  check_param("clamp_", t);
  MF_CHECK(lo <= hi, "clamp_: lo (", lo, ") must not exceed hi (", hi, ")");
  static const OpDef& def = ops::clamp_inplace();
  run_inplace(def, {t}, {{"lo", lo}, {"hi", hi}});
}

}  // namespace meshflow::optim
