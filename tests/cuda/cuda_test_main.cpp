// main() of the cuda-labelled tests: without a GPU (or without the CUDA backend) the program says
// so and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE), never as passed.
#include <gtest/gtest.h>

#include <cstdio>

#include "meshflow/core/allocator.h"

int main(int argc, char** argv) {
  if (meshflow::device_count(meshflow::DeviceType::CUDA) == 0) {
    std::printf("skipped: no GPU is visible to this process (meshflow::device_count(cuda) == 0: no CUDA backend "
                "built in, no driver, or no device)\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
