// Attribution pictures: a heatmap of an attribution map over its input image, as RGB pixels, as a
// PNG file (libpng), and as a TensorBoard image summary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meshflow/core/tensor.h"

namespace meshflow::interpret {

struct HeatmapOptions {
  double alpha = 0.6;     // the heat's share where the attribution is largest
  bool absolute = true;   // |attribution| on the "hot" scale; false: blue (negative) to red (positive)
  int scale = 1;          // each pixel repeated scale x scale times (28 x 28 is small on a screen)
};

// 8-bit pixels, row-major, `channels` per pixel.
struct Picture {
  int height = 0, width = 0, channels = 3;
  std::vector<uint8_t> pixels;
};

// The image ([H, W], [H, W, 1|3] or [1|3, H, W], values in [0, 1] or [0, 255]) drawn in gray
// with the attribution (same H x W; channels summed) laid over it.
Picture heatmap(const Tensor& image, const Tensor& attribution, HeatmapOptions options = {});
// The PNG bytes of a picture, and the file (written whole, then renamed into place).
std::string encode_png(const Picture& picture);
void write_png(const std::string& path, const Picture& picture);
void write_heatmap_png(const std::string& path, const Tensor& image, const Tensor& attribution,
                       HeatmapOptions options = {});
// The heatmap as an image summary `tag` at `step` in a new event file under log_dir.
void write_heatmap_summary(const std::string& log_dir, const std::string& tag, const Tensor& image,
                           const Tensor& attribution, int64_t step = 0, HeatmapOptions options = {});

}  // namespace meshflow::interpret
