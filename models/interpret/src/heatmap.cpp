// Heatmaps: colour maps over a gray image, PNG encoding through libpng, image summaries.
#include "meshflow/interpret/heatmap.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "meshflow/core/core.h"
#include "meshflow/core/error.h"
#include "meshflow/tbevents/event_file.h"

namespace meshflow::interpret {

namespace {

// Rows x cols of one plane, summing channels; `what` names the argument in errors.
std::vector<double> plane(const Tensor& t, int& h, int& w, const char* what) {
  MF_CHECK(t.defined(), "heatmap: the ", what, " is undefined");
  auto v = t.to(DType::F64).contiguous().to_vector<double>();
  const auto& s = t.shape();
  int64_t H = 0, W = 0, C = 1;
  bool channels_first = false;
  if (s.size() == 2) {
    H = s[0], W = s[1];
  } else if (s.size() == 3 && (s[2] == 1 || s[2] == 3)) {
    H = s[0], W = s[1], C = s[2];
  } else if (s.size() == 3 && (s[0] == 1 || s[0] == 3)) {
    C = s[0], H = s[1], W = s[2], channels_first = true;
  } else {
    MF_THROW("heatmap: the ", what, " must be [H, W], [H, W, 1|3] or [1|3, H, W], got ", shape_str(s));
  }
  h = static_cast<int>(H);
  w = static_cast<int>(W);
  std::vector<double> out(static_cast<size_t>(H * W), 0.0);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c)
        out[static_cast<size_t>(y * W + x)] +=
            v[static_cast<size_t>(channels_first ? (c * H + y) * W + x : (y * W + x) * C + c)] / static_cast<double>(C);
  return out;
}

// Heat: black, red, yellow as t goes 0 -> 1 (yellow, not white, so the peak stands out on a
// light image).
void hot(double t, double rgb[3]) {
  rgb[0] = std::clamp(2 * t, 0.0, 1.0);
  rgb[1] = std::clamp(2 * t - 1, 0.0, 1.0);
  rgb[2] = 0.0;
}

// Diverging: blue at -1, white-ish at 0 (the image shows through), red at +1.
void diverging(double t, double rgb[3]) {
  rgb[0] = t > 0 ? 1.0 : 1.0 + t;
  rgb[1] = 1.0 - std::fabs(t);
  rgb[2] = t < 0 ? 1.0 : 1.0 - t;
}

}  // namespace

Picture heatmap(const Tensor& image, const Tensor& attribution, HeatmapOptions o) {
  MF_CHECK(o.alpha >= 0 && o.alpha <= 1, "heatmap: alpha must be in [0, 1], not ", o.alpha);
  MF_CHECK(o.scale >= 1 && o.scale <= 64, "heatmap: scale must be in [1, 64], not ", o.scale);
  int h = 0, w = 0, ah = 0, aw = 0;
  auto img = plane(image, h, w, "image");
  auto att = plane(attribution, ah, aw, "attribution");
  MF_CHECK(h == ah && w == aw, "heatmap: the image is ", h, " x ", w, " but the attribution is ", ah, " x ", aw);
  double img_max = *std::max_element(img.begin(), img.end());
  double img_min = *std::min_element(img.begin(), img.end());
  double range = img_max > 1.0 ? 255.0 : 1.0;  // [0, 255] or [0, 1] images
  double biggest = 0;
  for (double a : att) biggest = std::max(biggest, std::fabs(a));
  Picture p;
  p.height = h * o.scale;
  p.width = w * o.scale;
  p.channels = 3;
  p.pixels.resize(static_cast<size_t>(p.height) * static_cast<size_t>(p.width) * 3);
  for (int y = 0; y < p.height; ++y)
    for (int x = 0; x < p.width; ++x) {
      size_t k = static_cast<size_t>((y / o.scale) * w + x / o.scale);
      double gray = std::clamp((img[k] - std::min(0.0, img_min)) / range, 0.0, 1.0);
      double t = biggest > 0 ? att[k] / biggest : 0.0;
      double rgb[3];
      double mix;
      if (o.absolute) {
        hot(std::fabs(t), rgb);
        mix = o.alpha * std::fabs(t);
      } else {
        diverging(t, rgb);
        mix = o.alpha * std::fabs(t);
      }
      for (int c = 0; c < 3; ++c) {
        double v = (1 - mix) * gray + mix * rgb[c];
        p.pixels[(static_cast<size_t>(y) * static_cast<size_t>(p.width) + static_cast<size_t>(x)) * 3 + static_cast<size_t>(c)] =
            static_cast<uint8_t>(std::lround(255.0 * std::clamp(v, 0.0, 1.0)));
      }
    }
  return p;
}

std::string encode_png(const Picture& picture) {
  MF_CHECK(picture.height >= 1 && picture.width >= 1, "encode_png: the picture is ", picture.height, " x ",
           picture.width);
  MF_CHECK(picture.channels == 1 || picture.channels == 3 || picture.channels == 4, "encode_png: ",
           picture.channels, " channels (expected 1, 3 or 4)");
  MF_CHECK(picture.pixels.size() == static_cast<size_t>(picture.height) * static_cast<size_t>(picture.width) *
                                        static_cast<size_t>(picture.channels),
           "encode_png: ", picture.pixels.size(), " bytes for ", picture.height, " x ", picture.width, " x ",
           picture.channels);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  MF_CHECK(png, "encode_png: libpng could not start");
  png_infop info = png_create_info_struct(png);
  std::string out;
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : nullptr);
    MF_THROW("encode_png: libpng failed to encode a ", picture.height, " x ", picture.width, " picture");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<const char*>(data), n);
      },
      [](png_structp) {});
  int type = picture.channels == 1 ? PNG_COLOR_TYPE_GRAY : picture.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
  png_set_IHDR(png, info, static_cast<png_uint_32>(picture.width), static_cast<png_uint_32>(picture.height), 8, type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(picture.width) * static_cast<size_t>(picture.channels);
  for (int y = 0; y < picture.height; ++y)
    png_write_row(png, const_cast<png_bytep>(picture.pixels.data() + static_cast<size_t>(y) * stride));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_png(const std::string& path, const Picture& picture) {
  MF_CHECK(!path.empty(), "write_png: the path is empty");
  std::string bytes = encode_png(picture);
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    MF_CHECK(f.good(), "write_png: cannot write ", tmp);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    MF_CHECK(f.good(), "write_png: writing ", tmp, " failed");
  }
  std::filesystem::rename(tmp, path);
}

void write_heatmap_png(const std::string& path, const Tensor& image, const Tensor& attribution, HeatmapOptions o) {
  write_png(path, heatmap(image, attribution, o));
}

void write_heatmap_summary(const std::string& log_dir, const std::string& tag, const Tensor& image,
                           const Tensor& attribution, int64_t step, HeatmapOptions o) {
  MF_CHECK(!tag.empty(), "write_heatmap_summary: the tag is empty");
  Picture p = heatmap(image, attribution, o);
  tbevents::EventFile file(log_dir);
  file.write_summary(tbevents::summary_of({tbevents::image_value(tag, p.height, p.width, p.channels, encode_png(p))}),
                     step);
}

}  // namespace meshflow::interpret
