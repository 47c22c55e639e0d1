// meshflow-export SAVED_MODEL_DIR OUT.onnx [--opset N] [--static-batch N]: converts a folder written
// by Model::save (config.json + model.safetensors) into an ONNX model.
#include <cstdio>
#include <string>

#include "meshflow/export/onnx.h"
#include "meshflow/models/saving.h"

namespace mf = meshflow;

namespace {
const char* kUsage =
    "usage: meshflow-export SAVED_MODEL_DIR OUT.onnx [--opset N] [--static-batch N]\n"
    "  SAVED_MODEL_DIR  a folder written by Model::save (config.json, model.safetensors)\n"
    "  OUT.onnx         the ONNX model to write (replaced atomically)\n"
    "  --opset N        ai.onnx opset, 13 to 17 (default 17)\n"
    "  --static-batch N fix the batch dimension to N (default: a dynamic \"batch\" dimension)\n";

int64_t int_arg(const std::string& option, const std::string& value) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty()) throw mf::Error(option + " takes an integer, got '" + value + "'");
  return v;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> positional;
    mf::OnnxExportOptions options;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      if (a == "--opset" || a == "--static-batch") {
        if (i + 1 >= argc) throw mf::Error(a + " needs a value");
        int64_t v = int_arg(a, argv[++i]);
        if (a == "--opset") options.opset = v;
        else {
          options.dynamic_batch = false;
          options.batch_size = v;
        }
      } else if (a.rfind("--", 0) == 0) {
        throw mf::Error("unknown option '" + a + "'");
      } else {
        positional.push_back(a);
      }
    }
    if (positional.size() != 2) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    auto model = mf::load_model(positional[0], /*compile=*/false, mf::Device());
    mf::export_onnx(*model, positional[1], options);
    std::printf("wrote %s (model '%s', opset %lld, %s batch)\n", positional[1].c_str(), model->name().c_str(),
                static_cast<long long>(options.opset), options.dynamic_batch ? "dynamic" : "static");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "meshflow-export: %s\n", e.what());
    return 1;
  }
}
