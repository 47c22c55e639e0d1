// Numeric CSV text to rows of features and labels: Dataset::from_csv's parse, apart from the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meshflow/models/data.h"

namespace meshflow::data {

struct CsvTable {
  int64_t rows = 0;
  int64_t n_features = 0;        // > 0 in every table parse_csv returns
  int64_t n_labels = 0;          // the distinct label columns
  std::vector<double> features;  // rows x n_features, row-major
  std::vector<double> labels;    // rows x n_labels, row-major
};

// Throws meshflow::Error naming `source` (the file) and the row and column of a malformed field,
// a row whose field count differs from the first row's, a label column out of range, no data rows
// or no feature column.
CsvTable parse_csv(const std::string& text, const CsvOptions& options, const std::string& source);

}  // namespace meshflow::data
