// ByteTokenizer, token windows and reading text files (see text.h).
#include "meshflow/zoo/text.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "meshflow/core/error.h"

namespace meshflow::zoo {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string s;
  s.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    MF_CHECK(ids[i] >= 0 && ids[i] < 256, "ByteTokenizer::decode: id ", ids[i], " at position ", i,
             " is not a byte (0 to 255)");
    s.push_back(static_cast<char>(ids[i]));
  }
  return s;
}

std::pair<Tensor, Tensor> token_windows(const std::vector<int64_t>& tokens, int64_t context,
                                        const TokenWindowOptions& o) {
  MF_CHECK(context > 0, "token_windows: context must be positive, got ", context);
  const int64_t stride = o.stride == 0 ? context : o.stride;
  MF_CHECK(stride > 0, "token_windows: stride must be positive (0: the context), got ", o.stride);
  MF_CHECK(o.ranks >= 1 && o.rank >= 0 && o.rank < o.ranks, "token_windows: rank ", o.rank, " of ", o.ranks,
           " ranks is not a rank");
  const int64_t n = static_cast<int64_t>(tokens.size());
  MF_CHECK(n >= context + 1, "token_windows: ", n, " tokens make no window of context ", context, " + 1");
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + context + 1 <= n; s += stride) starts.push_back(s);
  if (o.shuffle) {
    std::mt19937_64 rng(o.seed);
    std::shuffle(starts.begin(), starts.end(), rng);
  }
  std::vector<int64_t> mine;
  for (size_t i = static_cast<size_t>(o.rank); i < starts.size(); i += static_cast<size_t>(o.ranks))
    mine.push_back(starts[i]);
  MF_CHECK(!mine.empty(), "token_windows: ", starts.size(), " windows leave none for rank ", o.rank, " of ", o.ranks);
  const int64_t w = static_cast<int64_t>(mine.size());
  std::vector<int64_t> x(static_cast<size_t>(w * context)), y(x.size());
  for (int64_t i = 0; i < w; ++i)
    for (int64_t t = 0; t < context; ++t) {
      x[static_cast<size_t>(i * context + t)] = tokens[static_cast<size_t>(mine[static_cast<size_t>(i)] + t)];
      y[static_cast<size_t>(i * context + t)] = tokens[static_cast<size_t>(mine[static_cast<size_t>(i)] + t + 1)];
    }
  return {from_vector(x, {w, context}, {.dtype = DType::I64}), from_vector(y, {w, context}, {.dtype = DType::I64})};
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MF_CHECK(in.good(), "read_text_file: cannot open '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  MF_CHECK(!in.bad(), "read_text_file: error while reading '", path, "'");
  return s.str();
}

}  // namespace meshflow::zoo
