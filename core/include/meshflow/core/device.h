// Devices: the host `cpu`, virtual host devices `cpu:N`, and `cuda:N`.
#pragma once

#include <cstdint>
#include <string>

namespace meshflow {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };
inline constexpr int kNumDeviceTypes = 2;

// `cpu` and `cpu:0` are the same device. `cpu:N` (N > 0) is a virtual host device with its own
// allocator and memory statistics, so placement and mirrored code run without a GPU.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(DeviceType t, int i) : type(t), index(i) {}
  Device(const char* spec) : Device(std::string(spec)) {}  // NOLINT(google-explicit-constructor)
  // Parses "cpu", "cpu:1", "cuda:0", "gpu:1", "/gpu:0", "/device:GPU:1", "/device:CPU:0".
  Device(const std::string& spec);  // NOLINT(google-explicit-constructor)

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device& o) const = default;
};

const char* device_type_name(DeviceType t);

// The current device of this thread: `DeviceScope on("cuda:1");` makes factories (empty, zeros,
// randn, ...) that are given no device, and Keras's add_weight, create tensors there, and makes
// ops run there, copying inputs that live elsewhere (their gradients are copied back). Scopes nest
// and are per thread, like tf.device. See Note [Current device].
class DeviceScope {
 public:
  explicit DeviceScope(Device device);  // also DeviceScope on("/gpu:1"): Device parses the spec
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

  // The innermost scope's device, or null when no scope is open on this thread.
  static const Device* current();

 private:
  Device device_;
  const Device* outer_;
};

// The innermost DeviceScope's device, else `cpu`.
inline Device current_device() {
  const Device* d = DeviceScope::current();
  return d ? *d : Device();
}
inline Device cpu(int index = 0) { return Device(DeviceType::CPU, index); }
inline Device cuda(int index = 0) { return Device(DeviceType::CUDA, index); }

}  // namespace meshflow
