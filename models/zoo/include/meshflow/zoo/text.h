// The text pipeline for language models: a byte-level tokenizer, GPT-2's byte-pair encoding read
// from its standard encoder.json / vocab.bpe files, and fixed-length token windows for training.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow::zoo {

// Each byte of the UTF-8 text is a token (vocabulary 256): nothing to download, any text round-trips.
class ByteTokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int64_t>& ids) const;  // throws on an id outside [0, 256)
  int64_t vocab_size() const { return 256; }
};

// GPT-2's byte-level BPE: the text is split into words by GPT-2's pattern (contractions, letters,
// digits, other symbols, spaces), each word's bytes are mapped to printable characters, merged
// pair by pair in vocab.bpe's rank order, and looked up in encoder.json. Letters and digits are
// classified by the C library's Unicode tables (iswalpha/iswdigit), which agree with the reference
// encoders on ASCII and Latin text.
class Gpt2Tokenizer {
 public:
  static Gpt2Tokenizer from_files(const std::string& encoder_json, const std::string& vocab_bpe);
  std::vector<int64_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t vocab_size() const { return static_cast<int64_t>(decoder_.size()); }

 private:
  std::vector<std::string> bpe(const std::string& word) const;
  std::map<std::string, int64_t> encoder_;
  std::map<int64_t, std::string> decoder_;
  std::map<std::pair<std::string, std::string>, int64_t> ranks_;
  std::vector<std::string> byte_to_unicode_;     // byte -> its printable stand-in (UTF-8)
  std::map<std::string, uint8_t> unicode_to_byte_;
};

struct TokenWindowOptions {
  int64_t stride = 0;      // tokens between window starts; 0: the context (no overlap)
  bool shuffle = true;     // the windows' order, from `seed`
  uint64_t seed = 0;
  int rank = 0, ranks = 1; // this rank takes windows rank, rank + ranks, ... of the shuffled order
};

// Windows of context + 1 consecutive tokens: x = the first context, y = the same shifted by one
// (next-token targets), as i64 [windows, context] each.
std::pair<Tensor, Tensor> token_windows(const std::vector<int64_t>& tokens, int64_t context,
                                        const TokenWindowOptions& options = {});

// A whole file's bytes (throws naming the path when it cannot be read).
std::string read_text_file(const std::string& path);

}  // namespace meshflow::zoo
