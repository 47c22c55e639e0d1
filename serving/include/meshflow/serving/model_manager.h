// The models a server serves: it scans each base path for integer-named version folders, loads
// the versions the policy picks (a new one becomes the default once loaded, without dropping a
// request), unloads the ones that leave, and reports every version's state.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "meshflow/serving/batcher.h"
#include "meshflow/serving/config.h"

namespace meshflow::serving {

// TF Serving's ModelVersionStatus.State numbers.
enum class VersionState { Unknown = 0, Start = 10, Loading = 20, Available = 30, Unloading = 40, End = 50 };
const char* version_state_name(VersionState s);

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::Unknown;
  std::string error;  // why a load failed ("" when it did not)
};

class ModelManager {
 public:
  // `threads`: threads per version that run requests (0: one per core); `intra_op_threads`: the
  // threads each of them gives one model call (0: the process's default).
  ModelManager(std::vector<ModelSpec> specs, std::optional<BatchingOptions> batching, int threads,
               Metrics* metrics = nullptr, int intra_op_threads = 0);
  ~ModelManager();
  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  // One scan of every base path: loads the versions the policy wants that are not loaded, unloads
  // the others. A version that fails to load is reported as END with its error and tried again
  // only when its folder changes; it never stops the others.
  void poll();
  // poll() every `seconds` on a thread of its own until stop().
  void start_watching(double seconds);
  void stop();
  // Every batcher stops waiting for fuller batches (shutdown).
  void flush();

  // The batcher of the version a request names: `version`, else `label`, else the highest
  // available version. Throws ServingError 404 naming the model, version or label.
  std::shared_ptr<Batcher> find(const std::string& model, std::optional<int64_t> version,
                                const std::string& label) const;
  // Every version's state (only `version`'s when given); throws 404 for an unknown model or version.
  std::vector<VersionStatus> status(const std::string& model, std::optional<int64_t> version) const;
  std::vector<std::string> model_names() const;
  bool has_model(const std::string& model) const;

 private:
  struct Version {
    VersionStatus status;
    std::shared_ptr<Batcher> batcher;  // set while AVAILABLE
    std::string fingerprint;           // the folder's files when a load failed (retried when it changes)
  };
  struct Model {
    ModelSpec spec;
    std::map<int64_t, Version> versions;
  };
  void poll_model(const std::string& name);

  std::vector<ModelSpec> specs_;
  std::optional<BatchingOptions> batching_;
  int threads_;
  int intra_op_threads_;
  Metrics* metrics_;
  mutable std::mutex mutex_;   // guards models_ (loading happens outside it)
  std::map<std::string, Model> models_;
  std::mutex poll_mutex_;      // one poll at a time
  std::vector<std::shared_ptr<Batcher>> retired_;  // unloaded, destroyed once no request holds them
  std::thread watcher_;
  std::mutex watch_mutex_;
  std::condition_variable watch_wake_;
  bool watching_ = false;
};

}  // namespace meshflow::serving
