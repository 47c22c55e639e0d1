// LIME and kernel SHAP without Eigen: each entry point says what is missing.
#include "meshflow/core/error.h"
#include "meshflow/interpret/lime.h"

namespace meshflow::interpret {

namespace {
[[noreturn]] void missing(const char* what) {
  MF_THROW(what, " needs Eigen, and this build has none (install libeigen3-dev and configure with "
                 "-DMESHFLOW_WITH_EIGEN=AUTO)");
}
}  // namespace

LimeTabularExplainer::LimeTabularExplainer(const Tensor&, LimeOptions) { missing("LimeTabularExplainer"); }
Explanation LimeTabularExplainer::explain_instance(const Tensor&, const PredictFn&, ExplainOptions) {
  missing("LimeTabularExplainer::explain_instance");
}
std::vector<std::pair<std::string, double>> Explanation::as_list() const { return {}; }
std::string Explanation::as_table() const { return {}; }
ShapValues kernel_shap(const PredictFn&, const Tensor&, const Tensor&, KernelShapOptions) { missing("kernel_shap"); }

}  // namespace meshflow::interpret
