// Seed 004's custom callback: a Callback subclass printing the training loss and accuracy at the
// end of each epoch, passed to fit() with callbacks = {...}.
#include "example_util.h"

namespace mf = meshflow;
namespace L = meshflow::layers;

class MyCustomCallback : public mf::Callback {
 public:
  void on_epoch_end(int epoch, mf::Logs& logs) override {
    std::printf("End of epoch %d. Training loss: %.4f, Training accuracy: %.4f\n", epoch, logs.at("loss"),
                logs.at("accuracy"));
    ++epochs_seen;
  }
  int epochs_seen = 0;
};

int main(int argc, char** argv) {
  mf::DeviceScope on(example::parse_device(argc, argv));
  mf::Sequential model({mf::make_input_layer({784}), L::Dense(64, {.activation = "relu"}),
                        L::Dense(10, {.activation = "softmax"})});
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});

  // Made-up "images": the label is the brightest of the first ten pixels.
  mf::Tensor x_train = example::uniform({2048, 784}, 4);
  mf::Tensor y_train = mf::argmax(x_train.slice(1, 0, 10), 1);
  auto callback = std::make_shared<MyCustomCallback>();
  auto history = model.fit(x_train, y_train, {.epochs = 5, .verbose = 0, .callbacks = {callback}});
  if (callback->epochs_seen != 5) {
    std::printf("FAILED: the callback saw %d epoch ends, not 5\n", callback->epochs_seen);
    return 1;
  }
  return example::report(history);
}
