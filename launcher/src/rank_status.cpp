// Reads and writes the rank-<R>.status records of Note [Failure reports].
#include "rank_status.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "meshflow/distributed/failure.h"

namespace meshflow::launcher {

long long realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void write_rank_status(const std::string& dir, const RankFailure& f) {
  std::string path = dir + "/rank-" + std::to_string(f.rank) + ".status";
  std::string tmp = path + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "w");
  if (!out) return;
  std::fprintf(out, "rank=%d\nhost=%s\nexit_code=%d\nsignal=%d\ntime_ns=%lld\n", f.rank, f.host.c_str(), f.exit_code,
               f.signal, f.time_ns);
  std::fclose(out);
  std::rename(tmp.c_str(), path.c_str());
}

void write_rank_marker(const std::string& dir, int rank, const std::string& kind, int exit_code) {
  std::string path = dir + "/rank-" + std::to_string(rank) + "." + kind;
  std::string tmp = path + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "w");
  if (!out) return;
  std::fprintf(out, "rank=%d\n", rank);
  if (kind == "ended") std::fprintf(out, "exit_code=%d\n", exit_code);
  std::fclose(out);
  std::rename(tmp.c_str(), path.c_str());
}

RankCount count_ranks(const std::string& dir, int expected) {
  std::vector<char> started(static_cast<size_t>(std::max(expected, 0)), 0), ended(started.size(), 0);
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      int rank = -1;
      char kind[16] = {0};
      // "rank-<R>.started" or "rank-<R>.ended"; "%15[a-z]" stops before a ".tmp" of a half-written one.
      if (std::sscanf(e->d_name, "rank-%d.%15[a-z]", &rank, kind) != 2 || rank < 0 || rank >= expected) continue;
      std::string name = e->d_name, k = kind;
      if (name != "rank-" + std::to_string(rank) + "." + k) continue;
      if (k == "started") started[static_cast<size_t>(rank)] = 1;
      if (k == "ended") ended[static_cast<size_t>(rank)] = 1;
    }
    closedir(d);
  }
  RankCount c;
  c.expected = expected;
  for (int r = 0; r < expected; ++r) {
    // An end without a start (the start record lost) still shows that the rank ran.
    if (!started[static_cast<size_t>(r)] && !ended[static_cast<size_t>(r)]) c.not_started.push_back(r);
    else if (!ended[static_cast<size_t>(r)]) c.not_ended.push_back(r);
  }
  return c;
}

namespace {

// "rank 1" or "ranks 0, 1, 2" or "ranks 0, 1, ... (and 1000 more)".
std::string name_ranks(const std::vector<int>& ranks) {
  constexpr size_t kShown = 8;
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size() && i < kShown; ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  if (ranks.size() > kShown) s += ", ... (" + std::to_string(ranks.size() - kShown) + " more)";
  return s;
}

}  // namespace

std::string describe_missing_ranks(const RankCount& c, const std::string& launcher, const std::string& launcher_said) {
  if (c.complete()) return "";
  const int started = c.expected - static_cast<int>(c.not_started.size());
  std::string s = launcher + " started " + std::to_string(started) + " of " + std::to_string(c.expected) + " ranks";
  std::vector<std::string> parts;
  if (!c.not_started.empty()) parts.push_back(name_ranks(c.not_started) + " did not start");
  if (!c.not_ended.empty())
    parts.push_back(name_ranks(c.not_ended) + " did not report how " + (c.not_ended.size() == 1 ? "it" : "they") +
                    " ended (killed with the rank wrapper, or the node was lost)");
  parts.push_back(launcher_said);
  s += " (";
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? "; " : "") + parts[i];
  return s + ")";
}

std::string describe_launcher_end(const std::string& launcher, int exit_code, const std::string& last_stderr_line) {
  std::string s = launcher + " exited with code " + std::to_string(exit_code);
  if (last_stderr_line.empty()) return s + " and printed nothing on stderr";
  std::string line = last_stderr_line;
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  return s + "; its last line on stderr: " + line;
}

std::vector<RankFailure> read_rank_failures(const std::string& dir) {
  std::vector<RankFailure> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    const std::string suffix = ".status";
    if (name.rfind("rank-", 0) != 0 || name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    std::ifstream in(dir + "/" + name);
    RankFailure f;
    std::string line;
    while (std::getline(in, line)) {
      size_t eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string key = line.substr(0, eq), value = line.substr(eq + 1);
      try {
        if (key == "rank") f.rank = std::stoi(value);
        else if (key == "host") f.host = value;
        else if (key == "exit_code") f.exit_code = std::stoi(value);
        else if (key == "signal") f.signal = std::stoi(value);
        else if (key == "time_ns") f.time_ns = std::stoll(value);
      } catch (const std::exception&) {
        // A damaged record still names what it can.
      }
    }
    std::ifstream message(meshflow::distributed::failure_message_path(dir, f.rank));
    if (message) {
      std::stringstream text;
      text << message.rdbuf();
      f.message = text.str();
    }
    out.push_back(f);
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const RankFailure& a, const RankFailure& b) {
    return a.time_ns != b.time_ns ? a.time_ns < b.time_ns : a.rank < b.rank;
  });
  return out;
}

std::string describe_failure(const RankFailure& f) {
  std::string s = "rank " + std::to_string(f.rank) + " on host " + (f.host.empty() ? "?" : f.host) + ": ";
  if (f.signal) s += "killed by signal " + std::to_string(f.signal) + " (" + strsignal(f.signal) + ")";
  else s += "exit code " + std::to_string(f.exit_code);
  if (!f.message.empty()) {
    std::string m = f.message;
    std::replace(m.begin(), m.end(), '\n', ' ');
    while (!m.empty() && m.back() == ' ') m.pop_back();
    if (m.size() > 400) m = m.substr(0, 400) + "...";
    s += ": " + m;
  }
  return s;
}

std::string describe_culprit(const std::vector<RankFailure>& failures) {
  const std::string tag = "blames rank ";
  int culprit = -1;
  std::string victims, collective, reason;
  for (const auto& f : failures) {
    if (f.message.rfind(tag, 0) != 0) continue;
    const int blamed = std::atoi(f.message.c_str() + tag.size());
    if (culprit < 0) {
      culprit = blamed;
      const size_t colon = f.message.find(": ");
      reason = colon == std::string::npos ? f.message : f.message.substr(colon + 2);
      for (const char* end : {" failed on rank", " timed out on rank"})
        if (size_t at = reason.find(end); at != std::string::npos && collective.empty()) collective = reason.substr(0, at);
    }
    if (blamed == culprit) victims += (victims.empty() ? "" : ", ") + std::to_string(f.rank);
  }
  if (culprit < 0) return "";
  std::string host;
  for (const auto& f : failures)
    if (f.rank == culprit) host = f.host;
  std::replace(reason.begin(), reason.end(), '\n', ' ');
  if (reason.size() > 300) reason = reason.substr(0, 300) + "...";
  return "rank " + std::to_string(culprit) + (host.empty() ? "" : " on host " + host) +
         " is the culprit (stopped, dead or hung: " + reason + "); rank(s) " + victims +
         " ended because of it" + (collective.empty() ? "" : " (last collective: " + collective + ")");
}

}  // namespace meshflow::launcher
