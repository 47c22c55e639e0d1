// Writing TensorBoard event files by hand: a protobuf wire-format builder and a TFRecord event
// file, for the summaries the tuner (HParams) and interpret (images) write. The models library's
// SummaryWriter keeps its generated protobuf classes private; these few messages are small
// enough to encode directly.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace meshflow::tbevents {

// Appends protobuf fields to a byte string (wire types 0, 1, 2 and 5).
class ProtoBuilder {
 public:
  ProtoBuilder& varint(int field, uint64_t v);
  ProtoBuilder& int64(int field, int64_t v) { return varint(field, static_cast<uint64_t>(v)); }
  ProtoBuilder& boolean(int field, bool v) { return varint(field, v ? 1 : 0); }
  ProtoBuilder& float64(int field, double v);
  ProtoBuilder& float32(int field, float v);
  ProtoBuilder& bytes(int field, const std::string& v);  // strings, bytes and sub-messages
  const std::string& str() const { return out_; }

 private:
  void raw_varint(uint64_t v);
  std::string out_;
};

// The CRC32C (Castagnoli) of data, and TFRecord's masked form of it.
uint32_t crc32c(const std::string& data);
uint32_t masked_crc32c(const std::string& data);

// An events.out.tfevents.* file in `log_dir` (created), opened with the file_version record;
// write_summary() adds an Event holding one serialized Summary message.
class EventFile {
 public:
  explicit EventFile(const std::string& log_dir);
  void write_summary(const std::string& summary_bytes, int64_t step);
  void flush() { out_.flush(); }
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event_bytes);
  std::string path_;
  std::ofstream out_;
};

// Summary.Value helpers: a scalar (simple_value), and a value with plugin metadata and a tensor.
std::string scalar_value(const std::string& tag, float value);
std::string image_value(const std::string& tag, int height, int width, int channels, const std::string& png_bytes);
std::string plugin_value(const std::string& tag, const std::string& plugin_name, const std::string& content);
// A Summary of the given serialized Values.
std::string summary_of(std::initializer_list<std::string> values);

}  // namespace meshflow::tbevents
