// Parses numeric CSV text line by line; a line is a row unless it is a header line or blank.
#include "data/csv.h"

#include <cerrno>
#include <cstdlib>

#include "meshflow/core/error.h"

namespace meshflow::data {
namespace {

std::vector<std::string> split_fields(const std::string& line, char sep) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    size_t pos = line.find(sep, start);
    fields.push_back(line.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return fields;
}

std::string trimmed(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

CsvTable parse_csv(const std::string& text, const CsvOptions& options, const std::string& source) {
  std::vector<double> features, labels;
  size_t n_fields = 0, rows = 0;
  std::vector<bool> is_label;
  size_t line_start = 0;
  for (size_t line_no = 1; line_start < text.size(); ++line_no) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = text.size();
    std::string line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (static_cast<int>(line_no) <= options.header_lines) continue;
    if (trimmed(line).empty()) continue;
    auto fields = split_fields(line, options.separator);
    if (n_fields == 0) {
      n_fields = fields.size();
      is_label.assign(n_fields, false);
      for (int c : options.label_columns) {
        int col = c < 0 ? static_cast<int>(n_fields) + c : c;
        MF_CHECK(col >= 0 && col < static_cast<int>(n_fields), "'", source, "': label column ", c, " is out of range ",
                 "for rows of ", n_fields, " fields");
        is_label[static_cast<size_t>(col)] = true;
      }
    }
    MF_CHECK(fields.size() == n_fields, "'", source, "': row ", line_no, " has ", fields.size(), " fields but the ",
             "first row has ", n_fields, " (separator '", options.separator, "')");
    for (size_t c = 0; c < fields.size(); ++c) {
      std::string f = trimmed(fields[c]);
      char* end = nullptr;
      errno = 0;
      double v = f.empty() ? 0.0 : std::strtod(f.c_str(), &end);
      MF_CHECK(!f.empty() && end == f.c_str() + f.size(), "'", source, "': row ", line_no, ", column ", c + 1, ": '", f,
               "' is not a number");
      (is_label[c] ? labels : features).push_back(v);
    }
    ++rows;
  }
  MF_CHECK(rows > 0, "'", source, "': no data rows after ", options.header_lines, " header line(s)");
  const auto n = static_cast<int64_t>(rows);
  const auto n_labels = static_cast<int64_t>(labels.size() / rows);
  const auto n_features = static_cast<int64_t>(features.size() / rows);
  MF_CHECK(n_features > 0, "'", source, "': every column is a label column; no features are left");
  CsvTable t;
  t.rows = n;
  t.n_features = n_features;
  t.n_labels = n_labels;
  t.features = std::move(features);
  t.labels = std::move(labels);
  return t;
}

}  // namespace meshflow::data
