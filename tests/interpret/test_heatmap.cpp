// Heatmap pictures: the PNG written is read back by an independent decoder (Python's PIL), and
// the image summary is a CRC-checked TFRecord holding that PNG.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "meshflow/interpret/heatmap.h"
#include "meshflow/meshflow.h"
#include "test_util.h"

namespace mf = meshflow;
namespace ip = meshflow::interpret;

namespace {

// Runs a command and returns its stdout (empty on failure).
std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = ::pclose(p);
  return out;
}

bool have_pil() {
  int st = -1;
  run("/usr/bin/python3 -c 'import PIL' 2>/dev/null", &st);
  return st == 0;
}

// PIL's view of a PNG: "width height mode" then the pixel bytes in hex.
std::string pil_decode(const std::string& path, int* status) {
  return run("/usr/bin/python3 -c \"import sys; from PIL import Image; im = Image.open(sys.argv[1]); im.load(); "
             "print(im.size[0], im.size[1], im.mode); print(im.tobytes().hex())\" " + path + " 2>&1",
             status);
}

std::string hex(const std::vector<uint8_t>& v) {
  std::string s;
  char b[3];
  for (uint8_t c : v) {
    std::snprintf(b, sizeof(b), "%02x", c);
    s += b;
  }
  return s;
}

}  // namespace

TEST(Heatmap, PngReadsBackWithAnIndependentDecoder) {
  if (!MESHFLOW_HAVE_PNG) GTEST_SKIP() << "built without libpng";
  if (!have_pil()) GTEST_SKIP() << "/usr/bin/python3 with PIL (python3-pil) is not installed";
  auto dir = mf_test::temp_folder("heatmap_png");
  // A 7 x 5 gradient image; the attribution peaks at (row 2, col 3).
  mf::Tensor image = mf::zeros({7, 5});
  mf::Tensor attr = mf::zeros({7, 5});
  for (int64_t y = 0; y < 7; ++y)
    for (int64_t x = 0; x < 5; ++x) {
      image.set({y, x}, static_cast<double>(y * 5 + x) / 34.0);
      attr.set({y, x}, (y == 2 && x == 3) ? -4.0 : 0.1 * static_cast<double>(x));
    }
  ip::Picture pic = ip::heatmap(image, attr, {.alpha = 0.8, .scale = 2});
  ASSERT_EQ(pic.height, 14);
  ASSERT_EQ(pic.width, 10);
  std::string path = dir + "/heat.png";
  ip::write_png(path, pic);
  int st = -1;
  std::string out = pil_decode(path, &st);
  ASSERT_EQ(st, 0) << out;
  std::istringstream is(out);
  int w = 0, h = 0;
  std::string mode, pixels;
  is >> w >> h >> mode >> pixels;
  EXPECT_EQ(w, 10);
  EXPECT_EQ(h, 14);
  EXPECT_EQ(mode, "RGB");
  EXPECT_EQ(pixels, hex(pic.pixels));
  // The largest |attribution| is where the picture departs most from the image's gray.
  auto at = [&](int y, int x, int c) { return pic.pixels[static_cast<size_t>((y * 10 + x) * 3 + c)]; };
  auto departure = [&](int y, int x) {
    double gray = 255.0 * static_cast<double>((y / 2) * 5 + x / 2) / 34.0;
    double s = 0;
    for (int c = 0; c < 3; ++c) s += std::fabs(at(y, x, c) - gray);
    return s;
  };
  int best_y = 0, best_x = 0;
  for (int y = 0; y < 14; ++y)
    for (int x = 0; x < 10; ++x)
      if (departure(y, x) > departure(best_y, best_x)) best_y = y, best_x = x;
  EXPECT_EQ(best_y / 2, 2);
  EXPECT_EQ(best_x / 2, 3);
  // Where the attribution is 0 the pixel is the image's gray.
  double gray = 5.0 / 34.0;  // (1, 0)
  for (int c = 0; c < 3; ++c) EXPECT_EQ(at(2, 0, c), static_cast<int>(std::lround(255 * gray)));
  // write_heatmap_png writes the same picture.
  ip::write_heatmap_png(dir + "/same.png", image, attr, {.alpha = 0.8, .scale = 2});
  std::string again = pil_decode(dir + "/same.png", &st);
  EXPECT_EQ(again, out);
  std::filesystem::remove_all(dir);
}

TEST(Heatmap, ChannelsFirstAndLastAgree) {
  if (!MESHFLOW_HAVE_PNG) GTEST_SKIP() << "built without libpng";
  mf::Tensor hw3 = mf_test::random_tensor({4, 6, 3}, 1, 0, 1, mf::DType::F32);
  mf::Tensor chw = hw3.permute({2, 0, 1}).contiguous();
  mf::Tensor a = mf_test::random_tensor({4, 6}, 2, -1, 1, mf::DType::F32);
  EXPECT_EQ(ip::heatmap(hw3, a).pixels, ip::heatmap(chw, a).pixels);
  EXPECT_EQ(ip::heatmap(hw3, a, {.absolute = false}).pixels.size(), 4u * 6u * 3u);
}

TEST(Heatmap, ImageSummaryIsACheckedRecordHoldingThePng) {
  if (!MESHFLOW_HAVE_PNG) GTEST_SKIP() << "built without libpng";
  auto dir = mf_test::temp_folder("heatmap_tb");
  mf::Tensor image = mf_test::random_tensor({8, 8}, 3, 0, 1, mf::DType::F32);
  mf::Tensor attr = mf_test::random_tensor({8, 8}, 4, -1, 1, mf::DType::F32);
  ip::write_heatmap_summary(dir, "saliency/sample_0", image, attr, 5);
  std::string file;
  for (const auto& e : std::filesystem::directory_iterator(dir)) file = e.path().string();
  ASSERT_NE(file.find("events.out.tfevents."), std::string::npos);
  auto records = mf::read_tfrecords(file);  // models' reader: checks both CRCs of every record
  ASSERT_EQ(records.size(), 2u);
  EXPECT_NE(records[0].find("brain.Event:2"), std::string::npos);
  std::string png = ip::encode_png(ip::heatmap(image, attr));
  EXPECT_NE(records[1].find(png), std::string::npos) << "the PNG is inside the event";
  EXPECT_NE(records[1].find("saliency/sample_0"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Heatmap, ChecksItsInputs) {
  if (!MESHFLOW_HAVE_PNG) GTEST_SKIP() << "built without libpng";
  EXPECT_MF_ERROR(ip::heatmap(mf::zeros({4, 4}), mf::zeros({4, 5})), "image is 4 x 4", "attribution is 4 x 5");
  EXPECT_MF_ERROR(ip::heatmap(mf::zeros({2, 4, 4, 1}), mf::zeros({4, 4})), "image must be", "[2, 4, 4, 1]");
  EXPECT_MF_ERROR(ip::heatmap(mf::zeros({4, 4}), mf::zeros({4, 4}), {.alpha = 2}), "alpha");
  EXPECT_MF_ERROR(ip::encode_png(ip::Picture{2, 2, 3, {1, 2, 3}}), "3 bytes for 2 x 2 x 3");
  EXPECT_MF_ERROR(ip::write_heatmap_summary("", "t", mf::zeros({2, 2}), mf::zeros({2, 2})), "log folder");
}
