// Private to parallel/src: the check of the local devices a strategy runs its replica threads on.
#pragma once

#include <vector>

#include "meshflow/core/device.h"

namespace meshflow::detail {

// At least one device, each a CPU device (cpu:N; cuda:N comes with the CUDA backend), none twice.
void check_local_devices(const std::vector<Device>& devices, const char* strategy);

}  // namespace meshflow::detail
