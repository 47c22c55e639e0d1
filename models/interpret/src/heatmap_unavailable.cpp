// Heatmap PNGs without libpng: each entry point says what is missing.
#include "meshflow/core/error.h"
#include "meshflow/interpret/heatmap.h"

namespace meshflow::interpret {

namespace {
[[noreturn]] void missing(const char* what) {
  MF_THROW(what, " needs libpng, and this build has none (install libpng-dev and configure with "
                 "-DMESHFLOW_WITH_PNG=AUTO)");
}
}  // namespace

Picture heatmap(const Tensor&, const Tensor&, HeatmapOptions) { missing("heatmap"); }
std::string encode_png(const Picture&) { missing("encode_png"); }
void write_png(const std::string&, const Picture&) { missing("write_png"); }
void write_heatmap_png(const std::string&, const Tensor&, const Tensor&, HeatmapOptions) { missing("write_heatmap_png"); }
void write_heatmap_summary(const std::string&, const std::string&, const Tensor&, const Tensor&, int64_t, HeatmapOptions) {
  missing("write_heatmap_summary");
}

}  // namespace meshflow::interpret
