// Safetensors files: the byte layout, round trips in every dtype, PyTorch reading ours and
// writing files we read, the strict reader's errors, and atomic writes surviving SIGKILL.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "meshflow/meshflow.h"
#include "meshflow/models/saving.h"
#include "test_util.h"
#include "torch_ref.h"

// The test hook in models/src/saving/files.h: called after each chunk write_file_atomic writes.
namespace meshflow::saving {
extern void (*g_after_chunk_written)(size_t bytes_so_far);
}

using namespace meshflow;
namespace fs = std::filesystem;

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void put_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// A file written by hand: header JSON, padded, then raw data (independent of our writer).
std::string hand_made(const std::string& header_json, const std::string& data) {
  std::string h = header_json;
  while (h.size() % 8) h += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(h.size()) >> (8 * i)) & 0xff);
  return out + h + data;
}

std::vector<std::pair<std::string, Tensor>> every_dtype() {
  std::vector<std::pair<std::string, Tensor>> t;
  t.push_back({"f32", mf_test::random_tensor({2, 3}, 1, -1, 1, DType::F32)});
  t.push_back({"f64", mf_test::random_tensor({4}, 2)});
  t.push_back({"bf16", mf_test::random_tensor({3, 2}, 3, -4, 4, DType::F32).to(DType::BF16)});
  t.push_back({"f16", mf_test::random_tensor({5}, 4, -4, 4, DType::F32).to(DType::F16)});
  t.push_back({"i32", from_vector(std::vector<int64_t>{-7, 0, 123456}, {3}).to(DType::I32)});
  t.push_back({"i64", from_vector(std::vector<int64_t>{int64_t(1) << 40, -3}, {2, 1})});
  t.push_back({"bool", from_vector(std::vector<int64_t>{1, 0, 0, 1}, {2, 2}).to(DType::Bool)});
  t.push_back({"scalar", scalar_tensor(2.5)});
  t.push_back({"empty", zeros({0, 4})});
  return t;
}

}  // namespace

TEST(Safetensors, ByteLayoutAndRoundTripInEveryDType) {
  auto dir = mf_test::temp_folder("st_layout");
  auto path = dir + "/all.safetensors";
  auto tensors = every_dtype();
  write_safetensors(path, tensors, Json{{"epoch", "3"}});
  std::string bytes = file_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  ASSERT_EQ(n % 8, 0u);
  Json header = Json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["epoch"], "3");
  // Offsets are contiguous in the order given and the data section ends the file.
  size_t expected = 0;
  for (const auto& [name, t] : tensors) {
    const auto& e = header.at(name);
    EXPECT_EQ(e["data_offsets"][0].get<size_t>(), expected) << name;
    expected = e["data_offsets"][1].get<size_t>();
    EXPECT_EQ(e["shape"].get<Shape>(), t.shape()) << name;
  }
  EXPECT_EQ(header["bf16"]["dtype"], "BF16");
  EXPECT_EQ(header["bool"]["dtype"], "BOOL");
  EXPECT_EQ(bytes.size(), 8 + n + expected);
  Json meta;
  auto back = read_safetensors(path, &meta);
  EXPECT_EQ(meta["epoch"], "3");
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);
    EXPECT_EQ(back[i].second.dtype(), tensors[i].second.dtype()) << back[i].first;
    EXPECT_TRUE(mf_test::tensors_near(back[i].second, tensors[i].second, 0, 0)) << back[i].first;
  }
  fs::remove_all(dir);
}

TEST(Safetensors, PyTorchReadsOurFiles) {
  auto dir = mf_test::temp_folder("st_torch_read");
  auto path = dir + "/ours.safetensors";
  Tensor a = mf_test::random_tensor({2, 3}, 5, -1, 1, DType::F32);
  Tensor b = mf_test::random_tensor({3}, 6);
  Tensor c = from_vector(std::vector<int64_t>{5, -9, 1 << 30}, {3});
  Tensor d = mf_test::random_tensor({4}, 7, -2, 2, DType::F32).to(DType::BF16);
  write_safetensors(path, {{"a", a}, {"b", b}, {"c", c}, {"d", d}});
  // PyTorch parses the header itself and views the bytes with torch.frombuffer.
  MF_TORCH_OR_SKIP(got, "import json, struct\n"
                        "raw = open('" + path + "', 'rb').read()\n"
                        "n = struct.unpack('<Q', raw[:8])[0]\n"
                        "assert n % 8 == 0\n"
                        "h = json.loads(raw[8:8 + n])\n"
                        "types = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64, 'BF16': torch.bfloat16}\n"
                        "for k in ['a', 'b', 'c', 'd']:\n"
                        "    e = h[k]; s, t = e['data_offsets']\n"
                        "    x = torch.frombuffer(bytearray(raw[8 + n + s:8 + n + t]), dtype=types[e['dtype']])\n"
                        "    out(x.reshape(e['shape']).to(torch.float64))\n");
  std::vector<double> want;
  for (const Tensor& t : {a, b, c, d})
    for (double v : mf_test::values(t)) want.push_back(v);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_DOUBLE_EQ(got[i], want[i]) << i;
  fs::remove_all(dir);
}

TEST(Safetensors, WeReadFilesPyTorchWrites) {
  auto dir = mf_test::temp_folder("st_torch_write");
  auto path = dir + "/theirs.safetensors";
  // The writer is written here in Python from the format description, not by our code.
  MF_TORCH_OR_SKIP(ok, "import json, struct\n"
                       "ts = {'w': torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5,\n"
                       "      'h': torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16),\n"
                       "      'i': torch.tensor([[7], [-8]], dtype=torch.int64)}\n"
                       "names = {torch.float32: 'F32', torch.bfloat16: 'BF16', torch.int64: 'I64'}\n"
                       "header, data = {'__metadata__': {'source': 'torch'}}, b''\n"
                       "for k, t in ts.items():\n"
                       "    b = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()\n"
                       "    header[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), "
                       "'data_offsets': [len(data), len(data) + len(b)]}\n"
                       "    data += b\n"
                       "h = json.dumps(header).encode()\n"
                       "h += b' ' * ((8 - len(h) % 8) % 8)\n"
                       "open('" + path + "', 'wb').write(struct.pack('<Q', len(h)) + h + data)\n"
                       "out(1)\n");
  Json meta;
  auto got = read_safetensors(path, &meta);
  EXPECT_EQ(meta["source"], "torch");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].first, "w");
  EXPECT_TRUE(mf_test::tensors_near(got[0].second, mf_test::from_values({0, .5, 1, 1.5, 2, 2.5}, {2, 3}), 0, 0));
  EXPECT_EQ(got[1].second.dtype(), DType::BF16);
  EXPECT_TRUE(mf_test::tensors_near(got[1].second, mf_test::from_values({1.5, -2.25, 3.0}, {3}), 0, 0));
  EXPECT_EQ(got[2].second.dtype(), DType::I64);
  EXPECT_EQ(got[2].second.shape(), (Shape{2, 1}));
  EXPECT_TRUE(mf_test::tensors_near(got[2].second, mf_test::from_values({7, -8}, {2, 1}), 0, 0));
  fs::remove_all(dir);
}

TEST(Safetensors, StrictReaderNamesTheFileAndTheProblem) {
  auto dir = mf_test::temp_folder("st_errors");
  auto p = dir + "/bad.safetensors";
  std::string eight_floats(32, '\0');
  EXPECT_MF_ERROR(read_safetensors(dir + "/none.safetensors"), "none.safetensors", "does not exist");
  put_bytes(p, "abc");
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "3 bytes");
  put_bytes(p, hand_made(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", eight_floats).substr(0, 60));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "truncated");
  put_bytes(p, hand_made(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", eight_floats.substr(0, 20)));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "tensor 'a' ends at byte 32", "holds 20");
  put_bytes(p, hand_made(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]})", eight_floats));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "not valid JSON");
  put_bytes(p, hand_made(R"({"a":{"dtype":"U8","shape":[32],"data_offsets":[0,32]}})", eight_floats));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "unsupported dtype 'U8'", "F32");
  put_bytes(p, hand_made(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", eight_floats));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "tensor 'a'", "needs 4 x 4 bytes", "hold 32");
  put_bytes(p, hand_made(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                         R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", eight_floats));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "tensor 'b'", "overlaps");
  put_bytes(p, hand_made(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})", eight_floats));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "tensor 'a' starts at byte 16");
  put_bytes(p, hand_made(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", eight_floats));
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "not a non-negative integer");
  std::string huge(8, '\xff');
  put_bytes(p, huge + "{}");
  EXPECT_MF_ERROR(read_safetensors(p), p.c_str(), "header length");
  fs::remove_all(dir);
}

namespace {

int g_signal_fd = -1;
// Runs in the child: after the fourth chunk, tell the parent and stall mid-file until killed.
void stall_after_four_chunks(size_t bytes) {
  if (bytes >= (4u << 20)) {
    char c = 'x';
    (void)!::write(g_signal_fd, &c, 1);
    ::pause();
  }
}

std::vector<std::pair<std::string, Tensor>> big_weights(double fill) { return {{"w", full({4 << 20}, fill)}}; }

}  // namespace

TEST(AtomicWrite, KilledMidWriteLeavesThePreviousFileIntact) {
  auto dir = mf_test::temp_folder("st_kill");
  auto path = dir + "/weights.safetensors";
  write_safetensors(path, big_weights(1.0));  // 16 MB of 1.0
  const std::string before = file_bytes(path);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    g_signal_fd = fds[1];
    saving::g_after_chunk_written = stall_after_four_chunks;
    write_safetensors(path, big_weights(2.0));
    ::_exit(0);  // not reached: the parent kills us inside the write
  }
  char c;
  ASSERT_EQ(::read(fds[0], &c, 1), 1);  // the child is in the middle of the file
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  // The target is byte for byte the old file; the half-written temporary sits beside it.
  EXPECT_EQ(file_bytes(path), before);
  auto back = read_safetensors(path);
  EXPECT_EQ(back[0].second.at({12345}), 1.0);
  int temporaries = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) {
      ++temporaries;
      EXPECT_GE(fs::file_size(e.path()), 4u << 20);
      EXPECT_LT(fs::file_size(e.path()), before.size());
    }
  EXPECT_EQ(temporaries, 1);
  ::close(fds[0]);
  ::close(fds[1]);
  fs::remove_all(dir);
}

TEST(AtomicWrite, KilledAtRandomMomentsTheFileIsAlwaysOldOrNew) {
  auto dir = mf_test::temp_folder("st_random_kill");
  auto path = dir + "/weights.safetensors";
  write_safetensors(path, big_weights(0.0));
  std::mt19937 rng(42);
  int old_seen = 0, new_seen = 0;
  for (int round = 1; round <= 8; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      write_safetensors(path, big_weights(round));
      ::_exit(0);
    }
    ::usleep(std::uniform_int_distribution<int>(0, 60000)(rng));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    auto back = read_safetensors(path);  // never torn: always a whole valid file
    double v = back[0].second.at({0});
    EXPECT_TRUE(v == round - 1 || v == round) << "round " << round << " read " << v;
    EXPECT_EQ(back[0].second.at({(4 << 20) - 1}), v);
    (v == round ? new_seen : old_seen)++;
    // The next round's previous file holds `round`.
    write_safetensors(path, big_weights(round));
  }
  std::cout << "killed before the rename: " << old_seen << ", after: " << new_seen << "\n";
  fs::remove_all(dir);
}

TEST(AtomicWrite, MissingFolderIsAnError) {
  EXPECT_MF_ERROR(write_file_atomic("/nonexistent_meshflow_dir/x.bin", "abc"), "nonexistent_meshflow_dir",
                  "does not exist");
}
