// Saves the serving tests' models for the Python gRPC test: save_test_model FOLDER [KIND] writes
// one of serving_test_util.h's models as FOLDER/1. KIND: mlp (input "x" [4], softmax output
// "probs" [3]; the default), reg (output "value", one number), sigmoid (output "p", one sigmoid unit).
#include <filesystem>
#include <iostream>
#include <string>

#include "serving_test_util.h"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::cerr << "usage: save_test_model FOLDER [mlp|reg|sigmoid]\n";
    return 2;
  }
  const std::string kind = argc == 3 ? argv[2] : "mlp";
  try {
    std::shared_ptr<meshflow::Model> model;
    if (kind == "mlp") model = serving_test::make_mlp(91);
    else if (kind == "reg") model = serving_test::make_regressor(92);
    else if (kind == "sigmoid") model = serving_test::make_sigmoid(93);
    else {
      std::cerr << "save_test_model: unknown kind '" << kind << "'; use mlp, reg or sigmoid\n";
      return 2;
    }
    std::filesystem::create_directories(argv[1]);
    serving_test::publish(*model, argv[1], 1);
  } catch (const std::exception& e) {
    std::cerr << "save_test_model: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
