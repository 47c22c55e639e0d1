// The measured kernel table (internal/kernel_choice.h) and the public report of it (kernels.h).
//
// Note [Kernels by measurement]: which library is faster for a GEMM depends on the shape, the
// thread count and on each library's reading of the CPU. OpenBLAS picks its kernels from its own
// CPU detection, which the environment can override (OPENBLAS_CORETYPE=Haswell runs AVX2 kernels
// on an AVX-512 machine, half the peak), while oneDNN dispatches on the instruction set it finds.
// So no fixed rule holds on every machine: the first call of each shape class times every
// candidate on scratch buffers of that shape and keeps the fastest. The table lives in a file
// (kernel_choices.txt in the build folder), keyed by CPU model and thread count, written under an
// exclusive lock: the processes of one host, the ranks of a job and later runs all read the same
// decisions, so the same program takes the same kernels (and rounds the same way) every run.
#include "internal/kernel_choice.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "meshflow/core/error.h"
#include "meshflow/core/kernels.h"

namespace meshflow {
namespace internal {
namespace {

struct Entry {
  std::string op;
  std::array<int64_t, 6> dims{};
  int threads = 0;
  std::string shape;
  std::string chosen;
  std::vector<std::pair<std::string, double>> gflops;
  bool measured_here = false;
  int used_order = -1;  // first use in this process; -1: not used yet
};

using MapKey = std::tuple<std::string, std::array<int64_t, 6>, int>;

struct Table {
  std::mutex mu;
  bool loaded = false;
  std::map<MapKey, Entry> entries;
  int uses = 0;
};

Table& table() {
  static Table* t = new Table;  // never destroyed: GEMMs may run from other static destructors
  return *t;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      std::string name = colon == std::string::npos ? line : line.substr(colon + 1);
      name.erase(0, name.find_first_not_of(' '));
      std::replace(name.begin(), name.end(), '\t', ' ');
      return name;
    }
  }
  return "unknown CPU";
}

const std::string& this_cpu() {
  static const std::string model = cpu_model();
  return model;
}

// A line: cpu \t threads \t op \t d0,..,d5 \t shape \t chosen \t name=gflops,name=gflops
bool parse_line(const std::string& line, Entry& e) {
  std::vector<std::string> f;
  std::stringstream ss(line);
  for (std::string part; std::getline(ss, part, '\t');) f.push_back(part);
  if (f.size() != 7 || f[0] != this_cpu()) return false;
  try {
    e.threads = std::stoi(f[1]);
    e.op = f[2];
    std::stringstream ds(f[3]);
    std::string d;
    for (size_t i = 0; i < e.dims.size(); ++i) {
      if (!std::getline(ds, d, ',')) return false;
      e.dims[i] = std::stoll(d);
    }
    e.shape = f[4];
    e.chosen = f[5];
    std::stringstream gs(f[6]);
    for (std::string g; std::getline(gs, g, ',');) {
      size_t eq = g.find('=');
      if (eq == std::string::npos) return false;
      e.gflops.emplace_back(g.substr(0, eq), std::stod(g.substr(eq + 1)));
    }
  } catch (const std::exception&) {
    return false;
  }
  return e.threads >= 1 && !e.chosen.empty();
}

std::string format_line(const Entry& e) {
  std::ostringstream os;
  os << this_cpu() << '\t' << e.threads << '\t' << e.op << '\t';
  for (size_t i = 0; i < e.dims.size(); ++i) os << (i ? "," : "") << e.dims[i];
  os << '\t' << e.shape << '\t' << e.chosen << '\t';
  for (size_t i = 0; i < e.gflops.size(); ++i) os << (i ? "," : "") << e.gflops[i].first << '=' << e.gflops[i].second;
  os << '\n';
  return os.str();
}

// Merges the file's entries (for this CPU) into the table; entries already known win, and among
// the file's lines the first for a key (emplace keeps the earliest).
void merge_text(Table& t, const std::string& text) {
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    Entry e;
    if (!parse_line(line, e)) continue;
    t.entries.emplace(MapKey{e.op, e.dims, e.threads}, std::move(e));
  }
}

std::string read_fd(int fd) {
  std::string text;
  char buf[8192];
  for (off_t off = 0;;) {
    ssize_t r = pread(fd, buf, sizeof buf, off);
    if (r <= 0) break;
    text.append(buf, static_cast<size_t>(r));
    off += r;
  }
  return text;
}

void load_once(Table& t) {
  if (t.loaded) return;
  t.loaded = true;
  const std::string path = kernel_cache_path();
  if (path.empty()) return;
  std::ifstream in(path);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  merge_text(t, ss.str());
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Times the candidates alternately (one warm-up each), best of up to 7 rounds, at least 3.
std::vector<double> measure(const std::vector<KernelCandidate>& cands) {
  std::vector<double> best(cands.size(), std::numeric_limits<double>::infinity());
  for (const KernelCandidate& c : cands) c.run();
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 7; ++round) {
    for (size_t i = 0; i < cands.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      cands[i].run();
      best[i] = std::min(best[i], seconds_since(t0));
    }
    if (round >= 2 && seconds_since(start) > 0.1) break;
  }
  return best;
}

int index_of(const std::vector<const char*>& names, const std::string& chosen) {
  for (size_t i = 0; i < names.size(); ++i)
    if (chosen == names[i]) return static_cast<int>(i);
  return -1;
}

struct Cached {
  KernelKey key;
  int choice = -1;
};

// Bumped by reset_cpu_kernel_table(), so every thread drops its recent decisions.
std::atomic<uint64_t> g_generation{0};

}  // namespace

bool KernelKey::operator==(const KernelKey& o) const {
  return threads == o.threads && dims == o.dims && (op == o.op || std::strcmp(op, o.op) == 0);
}

int64_t kernel_bucket(int64_t x) {
  if (x <= 8) return x;
  for (int64_t p = 8;; p *= 2) {
    if (x <= p) return p;
    if (x <= p + p / 2) return p + p / 2;
  }
}

namespace {
// The last few decisions of this thread, so the steady state takes no lock.
struct Recent {
  std::array<Cached, 8> slots;
  size_t next = 0;
  uint64_t generation = 0;
};
Recent& recent() {
  thread_local Recent r;
  if (const uint64_t g = g_generation.load(std::memory_order_acquire); g != r.generation) {
    r.slots.fill(Cached{});
    r.generation = g;
  }
  return r;
}
}  // namespace

int recent_kernel(const KernelKey& key) {
  for (const Cached& c : recent().slots)
    if (c.choice >= 0 && c.key == key) return c.choice;
  return -1;
}

namespace {

// Opens the table file and takes its exclusive lock; -1 when there is no file to keep.
int lock_file() {
  const std::string path = kernel_cache_path();
  int fd = path.empty() ? -1 : ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0 && ::flock(fd, LOCK_EX) != 0) {
    ::close(fd);
    fd = -1;
  }
  return fd;
}

// The decision for mk known to this process, after merging the file when fd is open; -1 if none.
int known_choice(Table& t, const MapKey& mk, const std::vector<const char*>& names, int fd) {
  if (fd >= 0) merge_text(t, read_fd(fd));
  auto it = t.entries.find(mk);
  return it == t.entries.end() ? -1 : index_of(names, it->second.chosen);
}

}  // namespace

int choose_kernel(const KernelKey& key, double flops, const std::string& shape, const std::vector<const char*>& names,
                  const std::function<std::vector<KernelCandidate>()>& make_candidates) {
  if (int c = recent_kernel(key); c >= 0) return c;
  Table& t = table();
  const MapKey mk{key.op, key.dims, key.threads};
  int choice = -1;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    load_once(t);
    choice = known_choice(t, mk, names, -1);
    if (choice < 0) {  // another process may have measured it since this one read the file
      const int fd = lock_file();
      if (fd >= 0) {
        choice = known_choice(t, mk, names, fd);
        ::close(fd);
      }
    }
  }
  if (choice < 0) {
    // Measured with no lock held: a candidate may run GEMMs whose own classes are new (im2col's),
    // which take these locks themselves. Processes that measure the same class at once each write
    // their line; the first in the file wins everywhere (merge_text keeps the earliest entry).
    const std::vector<KernelCandidate> cands = make_candidates();
    MF_CHECK(cands.size() == names.size() && !cands.empty(), "kernel table: ", key.op, " offered ", cands.size(),
             " candidates for ", names.size(), " names");
    const std::vector<double> secs = measure(cands);
    Entry e;
    e.op = key.op;
    e.dims = key.dims;
    e.threads = key.threads;
    e.shape = shape;
    e.measured_here = true;
    const int mine = static_cast<int>(std::min_element(secs.begin(), secs.end()) - secs.begin());
    e.chosen = names[mine];
    for (size_t i = 0; i < names.size(); ++i)
      e.gflops.emplace_back(names[i], secs[i] > 0 ? flops / secs[i] * 1e-9 : 0.0);
    std::lock_guard<std::mutex> lock(t.mu);
    const int fd = lock_file();
    choice = known_choice(t, mk, names, fd);
    if (choice < 0) {
      if (fd >= 0) {
        const std::string line = format_line(e);
        [[maybe_unused]] ssize_t w = ::write(fd, line.data(), line.size());
      }
      t.entries.insert_or_assign(mk, std::move(e));
      choice = mine;
    }
    if (fd >= 0) ::close(fd);  // releases the lock
  }
  std::lock_guard<std::mutex> lock(t.mu);
  Entry& entry = t.entries.at(mk);
  if (entry.used_order < 0) entry.used_order = t.uses++;
  Recent& r = recent();
  r.slots[r.next] = Cached{key, choice};
  r.next = (r.next + 1) % r.slots.size();
  return choice;
}

}  // namespace internal

std::string kernel_cache_path() {
  if (const char* env = std::getenv("MESHFLOW_KERNEL_CACHE")) return env;
#ifdef MESHFLOW_BUILD_DIR
  return std::string(MESHFLOW_BUILD_DIR) + "/kernel_choices.txt";
#else
  return "";
#endif
}

void reset_cpu_kernel_table() {
  internal::Table& t = internal::table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.entries.clear();
  t.loaded = false;
  t.uses = 0;
  internal::g_generation.fetch_add(1, std::memory_order_release);
}

std::vector<KernelChoice> cpu_kernel_choices() {
  internal::Table& t = internal::table();
  std::lock_guard<std::mutex> lock(t.mu);
  std::vector<std::pair<int, KernelChoice>> used;
  for (const auto& [k, e] : t.entries) {
    if (e.used_order < 0) continue;
    used.push_back({e.used_order, KernelChoice{e.op, e.shape, e.threads, e.chosen, e.gflops, e.measured_here}});
  }
  std::sort(used.begin(), used.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<KernelChoice> out;
  for (auto& u : used) out.push_back(std::move(u.second));
  return out;
}

std::string cpu_kernel_summary() {
  std::map<std::string, std::map<std::string, int>> counts;
  for (const KernelChoice& c : cpu_kernel_choices()) ++counts[c.op][c.chosen];
  std::ostringstream os;
  const char* mode = cpu_gemm_library() == GemmLibrary::Auto       ? "auto"
                     : cpu_gemm_library() == GemmLibrary::OneDnn ? "oneDNN (forced)"
                                                                 : "OpenBLAS (forced)";
  os << "f32 GEMM library: " << mode << (onednn_available() ? "" : ", oneDNN not built in");
  for (const auto& [op, by] : counts) {
    os << "; " << op << " shape classes:";
    for (const auto& [name, n] : by) os << " " << name << " " << n;
  }
  const std::string path = kernel_cache_path();
  os << "; table " << (path.empty() ? "not kept" : path);
  return os.str();
}

}  // namespace meshflow
