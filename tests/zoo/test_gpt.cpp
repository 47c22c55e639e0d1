// The model zoo's GPT (models/zoo): logits, loss and every weight's gradient equal PyTorch's on
// the same float64 weights (tests/zoo/gpt_torch.py); causal masking is exact; GPT-2 small has its
// published 124,439,808 parameters; training on text lowers the loss; generation is
// deterministic for a seed; a saved GPT loads with the same logits; bad configs are named.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "meshflow/meshflow.h"
#include "meshflow/zoo/gpt.h"
#include "meshflow/zoo/text.h"
#include "models/torch_io.h"
#include "test_util.h"

namespace mf = meshflow;
namespace zoo = meshflow::zoo;
using mf::DType;
using mf::Tensor;

namespace {

zoo::GptConfig tiny64() {
  zoo::GptConfig c;
  c.vocab_size = 23;
  c.context = 7;
  c.layers = 2;
  c.heads = 2;
  c.width = 8;
  c.dtype = DType::F64;
  return c;
}

Tensor ids_of(const std::vector<int64_t>& v, int64_t rows, int64_t cols) {
  return mf::from_vector(v, {rows, cols}, {.dtype = DType::I64});
}

}  // namespace

TEST(ZooGpt, LogitsLossAndGradientsEqualPyTorch) {
  if (!mf_test::torch_available()) GTEST_SKIP() << "PyTorch is not installed for /usr/bin/python3";
  mf::Generator g(3);
  const auto c = tiny64();
  auto model = zoo::gpt(c);
  // Biases and norms away from their zero/one starts, so every term is checked.
  for (auto& w : model->weights()) {
    mf::NoGradGuard no_grad;
    w.assign(mf::randn(w.shape(), {.dtype = DType::F64}, &g) * 0.3 + (w.name().ends_with("gamma") ? 1.0 : 0.0));
  }
  Tensor ids = mf::randint(0, c.vocab_size, {3, c.context}, {.dtype = DType::I64}, &g);
  Tensor targets = mf::randint(0, c.vocab_size, {3, c.context}, {.dtype = DType::I64}, &g);
  Tensor logits = (*model)(mf::Tensors{ids})[0];
  auto ce = mf::losses::SparseCategoricalCrossentropy({.from_logits = true});
  Tensor loss = (*ce)(targets, logits);
  loss.backward();

  mf_test::TempDir dir;
  std::vector<std::pair<std::string, Tensor>> in{{"ids", ids}, {"targets", targets}};
  for (const auto& w : model->weights()) in.emplace_back(w.name(), w.detach());
  mf::write_safetensors(dir.file("in.safetensors"), in);
  const std::string cmd = "/usr/bin/python3 " + std::string(std::getenv("MESHFLOW_SOURCE_DIR")) +
                          "/tests/zoo/gpt_torch.py " + dir.file("in.safetensors") + " " + dir.file("out.safetensors") +
                          " 2 2 1e-5";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::map<std::string, Tensor> ref;
  for (auto& [k, t] : mf::read_safetensors(dir.file("out.safetensors"))) ref[k] = t;
  EXPECT_TRUE(mf_test::tensors_near(logits.detach(), ref.at("logits"), 1e-10, 1e-10));
  EXPECT_NEAR(loss.item(), ref.at("loss").reshape({}).item(), 1e-12);
  int checked = 0;
  for (const auto& w : model->weights()) {
    ASSERT_TRUE(ref.count("grad/" + w.name())) << w.name();
    EXPECT_TRUE(mf_test::tensors_near(w.grad(), ref.at("grad/" + w.name()), 1e-10, 1e-9)) << w.name();
    ++checked;
  }
  EXPECT_EQ(checked, 2 + 2 * 16 + 2);  // embeddings, 16 per block, the final norm
}

TEST(ZooGpt, CausalMaskingIsExact) {
  // Changing the tokens from position t on leaves every logit before t unchanged, bit for bit,
  // and changes the logits at t.
  const auto c = tiny64();
  auto model = zoo::gpt(c);
  std::vector<int64_t> a{1, 5, 9, 2, 7, 3, 4}, b = a;
  for (int64_t t = c.context - 1; t >= 1; --t) {
    b[static_cast<size_t>(t)] = (a[static_cast<size_t>(t)] + 11) % c.vocab_size;
    Tensor la = model->predict({ids_of(a, 1, c.context)}, {.verbose = 0})[0];
    Tensor lb = model->predict({ids_of(b, 1, c.context)}, {.verbose = 0})[0];
    EXPECT_TRUE(mf_test::tensors_near(la.slice(1, 0, t), lb.slice(1, 0, t), 0.0, 0.0)) << "changed from " << t;
    EXPECT_FALSE(mf_test::tensors_near(la.slice(1, t, t + 1), lb.slice(1, t, t + 1), 1e-12, 1e-12)) << t;
  }
}

TEST(ZooGpt, Gpt2SmallHasItsPublishedParameterCount) {
  auto c = zoo::GptConfig::small();
  c.vocab_size = 50257;  // GPT-2's own vocabulary (the preset rounds it up to 50304)
  EXPECT_EQ(zoo::gpt_parameter_count(c), 124439808);
  auto model = zoo::gpt(c);
  EXPECT_EQ(model->count_params(), 124439808);
  EXPECT_EQ(zoo::gpt(tiny64())->count_params(), zoo::gpt_parameter_count(tiny64()));
}

TEST(ZooGpt, TrainingOnTextLowersTheLoss) {
  // Byte tokens of a text every Debian machine has; windows of 32, two epochs of AdamW.
  const std::string text = zoo::read_text_file("/usr/share/common-licenses/GPL-3").substr(0, 12000);
  auto tokens = zoo::ByteTokenizer().encode(text);
  auto c = zoo::GptConfig::tiny();
  c.context = 32;
  auto [x, y] = zoo::token_windows(tokens, c.context, {.seed = 1});
  mf::Generator g(5);
  auto model = zoo::gpt(c);
  mf::optimizers::AdamWOptions o;
  o.learning_rate = 3e-3;
  model->compile({.optimizer = mf::optimizers::AdamW(o),
                  .loss = mf::losses::SparseCategoricalCrossentropy({.from_logits = true})});
  auto h = model->fit({x}, {y}, {.epochs = 3, .batch_size = 16, .verbose = 0, .seed = 2});
  const auto& loss = h.history.at("loss");
  EXPECT_LT(loss.back(), 0.8 * loss.front()) << loss.front() << " -> " << loss.back();
  EXPECT_LT(loss.front(), std::log(256.0) + 0.5);  // starts near a uniform guess over bytes
}

TEST(ZooGpt, GenerationIsDeterministicForASeedAndGreedyTakesTheArgmax) {
  const auto c = tiny64();
  auto model = zoo::gpt(c);
  const std::vector<int64_t> prompt{3, 1, 4};
  auto a = zoo::generate(*model, prompt, {.max_new_tokens = 9, .top_k = 5, .seed = 7});
  auto b = zoo::generate(*model, prompt, {.max_new_tokens = 9, .top_k = 5, .seed = 7});
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 12u);
  EXPECT_EQ(std::vector<int64_t>(a.begin(), a.begin() + 3), prompt);
  // Greedy: the first new token is the argmax of the logits at the prompt's last position.
  auto greedy = zoo::generate(*model, prompt, {.max_new_tokens = 1});
  std::vector<int64_t> padded{3, 1, 4, 0, 0, 0, 0};
  Tensor logits = model->predict({ids_of(padded, 1, c.context)}, {.verbose = 0})[0];
  EXPECT_EQ(greedy.back(), mf::argmax(logits.slice(1, 2, 3).reshape({c.vocab_size}), 0).item());
  // Seeds differ: over a few seeds the samples are not all equal.
  bool differ = false;
  for (uint64_t s = 8; s < 12 && !differ; ++s)
    differ = zoo::generate(*model, prompt, {.max_new_tokens = 9, .top_k = 5, .seed = s}) != a;
  EXPECT_TRUE(differ);
  EXPECT_MF_ERROR(zoo::generate(*model, {}, {}), "prompt needs at least one token");
  EXPECT_MF_ERROR(zoo::generate(*model, {99}, {}), "id 99", "vocabulary of 23");
}

TEST(ZooGpt, SavedModelLoadsWithTheSameLogits) {
  const auto c = tiny64();
  auto model = zoo::gpt(c);
  const std::string dir = mf_test::temp_folder("zoo_gpt") + "/m";
  model->save(dir);
  auto loaded = mf::load_model(dir);
  Tensor ids = ids_of({1, 2, 3, 4, 5, 6, 7}, 1, c.context);
  EXPECT_TRUE(mf_test::tensors_near(loaded->predict({ids}, {.verbose = 0})[0], model->predict({ids}, {.verbose = 0})[0],
                                    0.0, 0.0));
  EXPECT_EQ(loaded->count_params(), model->count_params());  // the head is still tied: one table
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST(ZooGpt, BadConfigsAreNamed) {
  auto c = tiny64();
  c.heads = 3;
  EXPECT_MF_ERROR(zoo::gpt(c), "width 8", "multiple of heads 3");
  c = tiny64();
  c.dropout = 1.0;
  EXPECT_MF_ERROR(zoo::gpt(c), "dropout must be in [0, 1)");
  auto model = zoo::gpt(tiny64());
  EXPECT_MF_ERROR(model->predict({ids_of(std::vector<int64_t>(8, 1), 1, 8)}, {.verbose = 0}), "input 'token_ids'",
                  "expects shape [?, 7], got [1, 8]");
}
