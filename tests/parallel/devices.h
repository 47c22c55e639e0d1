// Devices that are threads of one process: body(rank, communicator) on n threads joined by a
// LocalGroup, each thread's error collected by rank (the parallel tests' runner).
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "meshflow/distributed/communicator.h"

namespace mf_test {

// Runs body(rank, communicator) on n threads; returns each rank's error ("" when none).
inline std::vector<std::string> on_devices(
    int n, const std::function<void(int, std::shared_ptr<meshflow::distributed::Communicator>)>& body) {
  meshflow::distributed::LocalGroup group(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r, group.communicator(r));
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

inline void expect_no_errors(const std::vector<std::string>& errors) {
  for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

}  // namespace mf_test
