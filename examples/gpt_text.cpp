// A small GPT learns the bytes of a text every Debian machine ships (the GNU GPL, version 3, in
// /usr/share/common-licenses) and writes samples of what it learned.
//   gpt_text [--quick] [--text FILE] [--epochs N] [--context T]
// --quick (CI): the first 16 KB, two epochs. Exits non-zero unless the loss fell by a fifth.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "meshflow/meshflow.h"
#include "meshflow/zoo/gpt.h"
#include "meshflow/zoo/text.h"

namespace mf = meshflow;
namespace zoo = meshflow::zoo;

int main(int argc, char** argv) {
  std::string path = "/usr/share/common-licenses/GPL-3";
  int epochs = 4;
  int64_t context = 64;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--text" && i + 1 < argc) path = argv[++i];
    else if (a == "--epochs" && i + 1 < argc) epochs = std::atoi(argv[++i]);
    else if (a == "--context" && i + 1 < argc) context = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: gpt_text [--quick] [--text FILE] [--epochs N] [--context T]\n");
      return 2;
    }
  }
  try {
    std::string text = zoo::read_text_file(path);
    if (quick) {
      text = text.substr(0, 16000);
      epochs = 2;
    }
    zoo::ByteTokenizer bytes;
    auto [x, y] = zoo::token_windows(bytes.encode(text), context, {.stride = context / 2, .seed = 1});
    zoo::GptConfig c = zoo::GptConfig::tiny();
    c.context = context;
    c.layers = 2;
    c.width = 64;
    c.heads = 4;
    auto model = zoo::gpt(c);
    mf::optimizers::AdamWOptions o;
    o.learning_rate = 2e-3;
    o.global_clipnorm = 1.0;
    model->compile({.optimizer = mf::optimizers::AdamW(o),
                    .loss = mf::losses::SparseCategoricalCrossentropy({.from_logits = true})});
    std::printf("gpt_text: %s, %zu bytes, %lld windows of %lld; %lld parameters\n", path.c_str(), text.size(),
                static_cast<long long>(x.size(0)), static_cast<long long>(context),
                static_cast<long long>(model->count_params()));
    const double before = model->evaluate({x}, {y}, {.batch_size = 64, .verbose = 0}).at("loss");
    model->fit({x}, {y}, {.epochs = epochs, .batch_size = 32, .verbose = 2, .seed = 3});
    const double after = model->evaluate({x}, {y}, {.batch_size = 64, .verbose = 0}).at("loss");
    for (uint64_t seed : {1, 2}) {
      auto ids = zoo::generate(*model, bytes.encode("This License"), {.max_new_tokens = 120, .top_k = 8, .seed = seed});
      std::printf("--- sample (seed %llu) ---\n%s\n", static_cast<unsigned long long>(seed), bytes.decode(ids).c_str());
    }
    std::printf("loss %.3f -> %.3f (a uniform guess over bytes: %.3f)\n", before, after, std::log(256.0));
    return after < 0.8 * before ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt_text: %s\n", e.what());
    return 1;
  }
}
