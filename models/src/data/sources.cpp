// Dataset sources read from files: IDX images with labels, and numeric CSV.
#include <filesystem>

#include "data/csv.h"
#include "data/plan.h"
#include "meshflow/core/error.h"
#include "meshflow/core/io.h"

namespace meshflow {

Dataset Dataset::from_idx(const std::string& images_path, const std::string& labels_path) {
  Tensor images = io::read_idx(images_path, true);
  Tensor labels = io::read_idx(labels_path, false);
  MF_CHECK(images.dim() >= 1 && labels.dim() >= 1 && images.size(0) == labels.size(0), "Dataset::from_idx: '",
           images_path, "' has ", images.dim() ? images.size(0) : 0, " images but '", labels_path, "' has ",
           labels.dim() ? labels.size(0) : 0, " labels; they must match");
  return from_tensors(Tensors(images), Tensors(labels));
}

Dataset Dataset::from_csv(const std::string& path, CsvOptions o) {
  std::error_code ec;
  MF_CHECK(std::filesystem::is_regular_file(path, ec), "Dataset::from_csv: cannot read '", path,
           "': no such file");
  data::CsvTable t = data::parse_csv(io::read_file_maybe_gzip(path), o, path);
  Tensor x = from_vector(t.features, {t.rows, t.n_features}, {.dtype = DType::F64}).to(o.dtype);
  Tensors y;
  if (t.n_labels == 1) y = Tensors(from_vector(t.labels, {t.rows}, {.dtype = DType::F64}).to(o.label_dtype));
  else if (t.n_labels > 1)
    y = Tensors(from_vector(t.labels, {t.rows, t.n_labels}, {.dtype = DType::F64}).to(o.label_dtype));
  return from_tensors(Tensors(x), y);
}

}  // namespace meshflow
