// GPT-2's byte-level byte-pair encoding from encoder.json and vocab.bpe (see text.h).
#include <clocale>
#include <cwctype>
#include <limits>
#include <locale.h>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meshflow/core/error.h"
#include "meshflow/zoo/text.h"

namespace meshflow::zoo {

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// Code points with the byte offsets where each starts; invalid UTF-8 bytes stand for themselves
// (U+DC80 + byte is not needed: they are classified as symbols and their bytes kept as they are).
struct CodePoint {
  uint32_t cp;
  size_t begin, end;
};

std::vector<CodePoint> decode_utf8(std::string_view s) {
  std::vector<CodePoint> out;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    bool ok = len != 0 && i + len <= s.size();
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; ok && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      ok = (c >> 6) == 0x2;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (!ok) {
      len = 1;
      cp = 0xFFFD;
    }
    out.push_back({cp, i, i + len});
    i += len;
  }
  return out;
}

// Unicode classes from the C library's tables under a UTF-8 locale.
struct Classes {
  locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  bool letter(uint32_t cp) const { return loc ? iswalpha_l(static_cast<wint_t>(cp), loc) : std::iswalpha(static_cast<wint_t>(cp)); }
  bool number(uint32_t cp) const {
    if (cp >= '0' && cp <= '9') return true;
    return loc && !letter(cp) && iswalnum_l(static_cast<wint_t>(cp), loc);
  }
  bool space(uint32_t cp) const { return loc ? iswspace_l(static_cast<wint_t>(cp), loc) : std::iswspace(static_cast<wint_t>(cp)); }
};

const Classes& classes() {
  static const Classes c;
  return c;
}

// GPT-2's pre-tokenizer: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::vector<std::string> split_words(std::string_view text) {
  const Classes& k = classes();
  const auto cps = decode_utf8(text);
  std::vector<std::string> words;
  size_t i = 0;
  const size_t n = cps.size();
  auto piece = [&](size_t a, size_t b) { return std::string(text.substr(cps[a].begin, cps[b - 1].end - cps[a].begin)); };
  while (i < n) {
    const uint32_t c = cps[i].cp;
    if (c == '\'' && i + 1 < n) {
      const uint32_t a = cps[i + 1].cp, b = i + 2 < n ? cps[i + 2].cp : 0;
      size_t len = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') len = 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) len = 3;
      if (len) {
        words.push_back(piece(i, i + len));
        i += len;
        continue;
      }
    }
    const size_t start = i;
    const size_t j = c == ' ' && i + 1 < n ? i + 1 : i;  // the optional leading space
    auto run = [&](auto pred) {
      size_t e = j;
      while (e < n && pred(cps[e].cp)) ++e;
      return e;
    };
    const uint32_t d = cps[j].cp;
    size_t end = start;
    if (k.letter(d)) end = run([&](uint32_t x) { return k.letter(x); });
    else if (k.number(d)) end = run([&](uint32_t x) { return k.number(x); });
    else if (!k.space(d)) end = run([&](uint32_t x) { return !k.space(x) && !k.letter(x) && !k.number(x); });
    if (end > j) {
      words.push_back(piece(start, end));
      i = end;
      continue;
    }
    // Whitespace: the run, less its last character when a non-space follows (that one then leads
    // the next word as its optional space, or stands alone).
    size_t e = i;
    while (e < n && k.space(cps[e].cp)) ++e;
    if (e < n && e - i > 1) --e;
    words.push_back(piece(i, e));
    i = e;
  }
  return words;
}

}  // namespace

Gpt2Tokenizer Gpt2Tokenizer::from_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  Gpt2Tokenizer t;
  nlohmann::json enc;
  try {
    enc = nlohmann::json::parse(read_text_file(encoder_json));
  } catch (const nlohmann::json::exception& e) {
    MF_THROW("Gpt2Tokenizer: '", encoder_json, "' is not valid JSON: ", e.what());
  }
  MF_CHECK(enc.is_object() && !enc.empty(), "Gpt2Tokenizer: '", encoder_json, "' must map token strings to ids");
  for (const auto& [token, id] : enc.items()) {
    MF_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0, "Gpt2Tokenizer: '", encoder_json, "': token '", token,
             "' has no non-negative integer id");
    t.encoder_[token] = id.get<int64_t>();
    MF_CHECK(t.decoder_.emplace(id.get<int64_t>(), token).second, "Gpt2Tokenizer: '", encoder_json, "': id ",
             id.get<int64_t>(), " is given to two tokens");
  }
  std::istringstream merges(read_text_file(vocab_bpe));
  std::string line;
  int64_t rank = 0, number = 0;
  while (std::getline(merges, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const auto sp = line.find(' ');
    MF_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < line.size() && line.find(' ', sp + 1) == std::string::npos,
             "Gpt2Tokenizer: '", vocab_bpe, "' line ", number, " is not a merge \"a b\": '", line, "'");
    t.ranks_.emplace(std::make_pair(line.substr(0, sp), line.substr(sp + 1)), rank++);
  }
  MF_CHECK(rank > 0, "Gpt2Tokenizer: '", vocab_bpe, "' holds no merges");
  // Printable bytes stand for themselves; the others get code points from 256 on, in byte order.
  t.byte_to_unicode_.resize(256);
  uint32_t extra = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    t.byte_to_unicode_[b] = utf8(printable ? b : 256 + extra++);
    t.unicode_to_byte_[t.byte_to_unicode_[b]] = static_cast<uint8_t>(b);
  }
  return t;
}

std::vector<std::string> Gpt2Tokenizer::bpe(const std::string& word) const {
  std::vector<std::string> parts;
  for (unsigned char b : word) parts.push_back(byte_to_unicode_[b]);
  while (parts.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ranks_.find({parts[i], parts[i + 1]});
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    const std::string a = parts[at], b = parts[at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i + 1 < parts.size() && parts[i] == a && parts[i + 1] == b) {
        merged.push_back(a + b);
        ++i;
      } else {
        merged.push_back(parts[i]);
      }
    }
    parts = std::move(merged);
  }
  return parts;
}

std::vector<int64_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  for (const std::string& word : split_words(text))
    for (const std::string& token : bpe(word)) {
      auto it = encoder_.find(token);
      MF_CHECK(it != encoder_.end(), "Gpt2Tokenizer::encode: the merged token '", token, "' of word '", word,
               "' is not in encoder.json");
      ids.push_back(it->second);
    }
  return ids;
}

std::string Gpt2Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string chars;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = decoder_.find(ids[i]);
    MF_CHECK(it != decoder_.end(), "Gpt2Tokenizer::decode: id ", ids[i], " at position ", i, " is not in the vocabulary");
    chars += it->second;
  }
  std::string out;
  for (const auto& c : decode_utf8(chars)) {
    auto it = unicode_to_byte_.find(chars.substr(c.begin, c.end - c.begin));
    MF_CHECK(it != unicode_to_byte_.end(), "Gpt2Tokenizer::decode: the vocabulary holds a character that stands for ",
             "no byte (U+", c.cp, ")");
    out.push_back(static_cast<char>(it->second));
  }
  return out;
}

}  // namespace meshflow::zoo
