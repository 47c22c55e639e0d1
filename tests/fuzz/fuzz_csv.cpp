// libFuzzer harness for Dataset::from_csv's parse: the first three bytes pick the options (header
// lines, separator, label columns), the rest is the text. Any input either throws meshflow::Error or
// gives a table with as many rows as non-blank data lines, the first row's field count split into
// features and distinct label columns, and values that print and parse back to the same numbers.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "data/csv.h"
#include "meshflow/core/error.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || (a == b && std::signbit(a) == std::signbit(b)); }

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

// The data lines as the parser should see them: header lines dropped, blank lines skipped.
std::vector<std::string> data_lines(const std::string& text, int header_lines) {
  std::vector<std::string> out;
  size_t start = 0;
  for (int line_no = 1; start < text.size(); ++line_no) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line_no > header_lines && !blank(line)) out.push_back(line);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using meshflow::CsvOptions;
  if (size < 3) return 0;
  static const char kSeparators[] = {',', ';', '\t', ' ', '|', ':'};
  static const std::vector<std::vector<int>> kLabels = {{}, {-1}, {0}, {0, -1}, {-1, -1}, {1, -2}, {2}};
  CsvOptions o;
  o.header_lines = data[0] % 4;
  o.separator = kSeparators[data[1] % sizeof(kSeparators)];
  o.label_columns = kLabels[data[2] % kLabels.size()];
  const std::string text(reinterpret_cast<const char*>(data) + 3, size - 3);
  meshflow::data::CsvTable t;
  try {
    t = meshflow::data::parse_csv(text, o, "fuzz.csv");
  } catch (const meshflow::Error&) {
    return 0;
  }
  const auto lines = data_lines(text, o.header_lines);
  check(t.rows > 0 && t.rows == static_cast<int64_t>(lines.size()));
  const int64_t fields = static_cast<int64_t>(std::count(lines[0].begin(), lines[0].end(), o.separator)) + 1;
  std::set<int64_t> label_columns;
  for (int c : o.label_columns) label_columns.insert(c < 0 ? fields + c : c);
  check(t.n_labels == static_cast<int64_t>(label_columns.size()));
  check(t.n_features > 0 && t.n_features + t.n_labels == fields);
  check(t.features.size() == static_cast<size_t>(t.rows * t.n_features));
  check(t.labels.size() == static_cast<size_t>(t.rows * t.n_labels));

  // Printed with full precision (labels last) and parsed again: the same numbers.
  std::string printed;
  char buf[64];
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t c = 0; c < t.n_features; ++c) {
      std::snprintf(buf, sizeof(buf), "%.17g", t.features[static_cast<size_t>(r * t.n_features + c)]);
      printed += (c ? "," : "") + std::string(buf);
    }
    for (int64_t c = 0; c < t.n_labels; ++c) {
      std::snprintf(buf, sizeof(buf), ",%.17g", t.labels[static_cast<size_t>(r * t.n_labels + c)]);
      printed += buf;
    }
    printed += "\n";
  }
  CsvOptions again_options{.header_lines = 0, .label_columns = {}};
  for (int64_t c = 0; c < t.n_labels; ++c) again_options.label_columns.push_back(static_cast<int>(c - t.n_labels));
  meshflow::data::CsvTable again = meshflow::data::parse_csv(printed, again_options, "printed.csv");
  check(again.rows == t.rows && again.n_features == t.n_features && again.n_labels == t.n_labels);
  for (size_t i = 0; i < t.features.size(); ++i) check(same(again.features[i], t.features[i]));
  for (size_t i = 0; i < t.labels.size(); ++i) check(same(again.labels[i], t.labels[i]));
  return 0;
}
