// Saves the serving tests' models for the Python gRPC test: save_test_model FOLDER writes the MLP
// of serving_test_util.h (input "x" [4], output "probs" [3]) as FOLDER/1.
#include <filesystem>
#include <iostream>

#include "serving_test_util.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: save_test_model FOLDER\n";
    return 2;
  }
  try {
    std::filesystem::create_directories(argv[1]);
    serving_test::publish(*serving_test::make_mlp(91), argv[1], 1);
  } catch (const std::exception& e) {
    std::cerr << "save_test_model: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
