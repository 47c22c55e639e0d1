// One loaded model version: the model rebuilt by load_model from its folder, its signature, and a
// run() that computes it on host tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "meshflow/core/tensor.h"
#include "meshflow/serving/signature.h"

namespace meshflow {
class Model;
}

namespace meshflow::serving {

class Servable {
 public:
  // Loads the folder Model::save wrote; reads the signature from its config.json and runs the model
  // once on a one-row batch of zeros to learn the output shapes (TF Serving's warm-up). Throws
  // meshflow::Error naming the folder and what is wrong.
  static std::shared_ptr<Servable> load(const std::string& model_name, int64_t version, const std::string& folder);

  const std::string& model_name() const { return model_name_; }
  int64_t version() const { return version_; }
  const Signature& signature() const { return signature_; }

  // The model on `inputs` (one per signature input, in order, batch first): one output per
  // signature output, contiguous on the host. One call at a time runs (a model's layers keep
  // state while they run); callers on several threads wait their turn.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);

 private:
  Servable() = default;
  std::string model_name_;
  int64_t version_ = 0;
  Signature signature_;
  std::shared_ptr<Model> model_;
  std::mutex run_mutex_;
};

}  // namespace meshflow::serving
