// Protobuf encoding, CRC32C and TFRecord framing for TensorBoard event files.
#include "meshflow/tbevents/event_file.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "meshflow/core/error.h"

namespace meshflow::tbevents {

void ProtoBuilder::raw_varint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

ProtoBuilder& ProtoBuilder::varint(int field, uint64_t v) {
  raw_varint(static_cast<uint64_t>(field) << 3 | 0);
  raw_varint(v);
  return *this;
}

ProtoBuilder& ProtoBuilder::float64(int field, double v) {
  raw_varint(static_cast<uint64_t>(field) << 3 | 1);
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian hosts only (x86-64, aarch64)
  out_.append(b, 8);
  return *this;
}

ProtoBuilder& ProtoBuilder::float32(int field, float v) {
  raw_varint(static_cast<uint64_t>(field) << 3 | 5);
  char b[4];
  std::memcpy(b, &v, 4);
  out_.append(b, 4);
  return *this;
}

ProtoBuilder& ProtoBuilder::bytes(int field, const std::string& v) {
  raw_varint(static_cast<uint64_t>(field) << 3 | 2);
  raw_varint(v.size());
  out_ += v;
  return *this;
}

namespace {
std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
    t[i] = c;
  }
  return t;
}

std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}
}  // namespace

uint32_t crc32c(const std::string& data) {
  static const auto table = make_table();
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const std::string& data) {
  uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventFile::EventFile(const std::string& log_dir) {
  MF_CHECK(!log_dir.empty(), "EventFile: the log folder name is empty");
  std::filesystem::create_directories(log_dir);
  static std::atomic<int> counter{0};
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  path_ = (std::filesystem::path(log_dir) /
           ("events.out.tfevents." + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) +
            "." + host + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + ".meshflow"))
              .string();
  out_.open(path_, std::ios::binary);
  MF_CHECK(out_.good(), "EventFile: cannot write ", path_);
  double wall = std::chrono::duration<double>(now).count();
  write_record(ProtoBuilder().float64(1, wall).bytes(3, "brain.Event:2").str());
}

void EventFile::write_record(const std::string& event_bytes) {
  std::string len = le(event_bytes.size(), 8);
  out_ << len << le(masked_crc32c(len), 4) << event_bytes << le(masked_crc32c(event_bytes), 4);
  MF_CHECK(out_.good(), "EventFile: writing ", path_, " failed");
}

void EventFile::write_summary(const std::string& summary_bytes, int64_t step) {
  double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  write_record(ProtoBuilder().float64(1, wall).int64(2, step).bytes(5, summary_bytes).str());
  out_.flush();
}

std::string scalar_value(const std::string& tag, float value) {
  return ProtoBuilder().bytes(1, tag).float32(2, value).str();
}

std::string image_value(const std::string& tag, int height, int width, int channels, const std::string& png_bytes) {
  // Summary.Image: height 1, width 2, colorspace 3 (1 gray, 3 RGB, 4 RGBA), encoded_image_string 4.
  std::string image = ProtoBuilder().varint(1, static_cast<uint64_t>(height)).varint(2, static_cast<uint64_t>(width))
                          .varint(3, static_cast<uint64_t>(channels)).bytes(4, png_bytes).str();
  return ProtoBuilder().bytes(1, tag).bytes(4, image).str();
}

std::string plugin_value(const std::string& tag, const std::string& plugin_name, const std::string& content) {
  // SummaryMetadata { PluginData plugin_data = 1 { plugin_name = 1; content = 2 } }, and a scalar
  // float tensor (TensorProto: dtype 1 = DT_FLOAT, tensor_shape 2 = {}, float_val 5) as TensorFlow writes.
  std::string plugin = ProtoBuilder().bytes(1, plugin_name).bytes(2, content).str();
  std::string metadata = ProtoBuilder().bytes(1, plugin).str();
  std::string tensor = ProtoBuilder().varint(1, 1).bytes(2, "").float32(5, 0.0f).str();
  return ProtoBuilder().bytes(1, tag).bytes(8, tensor).bytes(9, metadata).str();
}

std::string summary_of(std::initializer_list<std::string> values) {
  ProtoBuilder b;
  for (const auto& v : values) b.bytes(1, v);
  return b.str();
}

}  // namespace meshflow::tbevents
