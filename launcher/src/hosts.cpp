// Parses host lists and hostfiles; every error quotes the text and says what a valid one looks like.
#include "hosts.h"

#include <fstream>
#include <sstream>

#include "meshflow/core/error.h"

namespace meshflow::launcher {
namespace {

bool parse_positive(const std::string& s, int* out) {
  if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoi(s);
  return *out >= 1;
}

}  // namespace

void check_hosts(const std::vector<HostSlots>& hosts, const std::string& origin) {
  MF_CHECK(!hosts.empty(), origin, ": no hosts listed");
  for (size_t i = 0; i < hosts.size(); ++i) {
    MF_CHECK(!hosts[i].host.empty(), origin, ": empty host name");
    // These would split or cut the name in mpirun's "--host h1:2,h2:2" and in hostfiles.
    for (char c : hosts[i].host)
      MF_CHECK(static_cast<unsigned char>(c) > ' ' && c != ',' && c != ':' && c != '=' && c != '#' && c != 0x7f, origin,
               ": '", hosts[i].host, "' is not a host name (no spaces, control characters, ',', ':', '=' or '#')");
    MF_CHECK(hosts[i].slots >= 1, origin, ": host ", hosts[i].host, " has ", hosts[i].slots, " slots (needs >= 1)");
    for (size_t j = 0; j < i; ++j)
      MF_CHECK(hosts[j].host != hosts[i].host, origin, ": host ", hosts[i].host, " is listed twice");
  }
}

std::vector<HostSlots> parse_hosts_string(const std::string& hosts) {
  const std::string origin = "--hosts '" + hosts + "'";
  std::vector<HostSlots> out;
  std::stringstream in(hosts);
  std::string item;
  MF_CHECK(!hosts.empty(), origin, ": empty; expected a list like h1:2,h2:2");
  while (std::getline(in, item, ',')) {
    size_t colon = item.find(':');
    HostSlots h{item.substr(0, colon), 1};
    MF_CHECK(!h.host.empty(), origin, ": empty host name; expected a list like h1:2,h2:2");
    MF_CHECK(h.host.find_first_of(" \t=") == std::string::npos, origin, ": '", h.host, "' is not a host name");
    if (colon != std::string::npos)
      MF_CHECK(parse_positive(item.substr(colon + 1), &h.slots), origin, ": '", item,
               "' needs a positive slot count after ':' (like ", h.host, ":2)");
    out.push_back(h);
  }
  MF_CHECK(hosts.back() != ',', origin, ": trailing comma");
  check_hosts(out, origin);
  return out;
}

std::vector<HostSlots> parse_hostfile_text(const std::string& text, const std::string& file_name) {
  std::vector<HostSlots> out;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string word;
    if (!(words >> word)) continue;
    HostSlots h{word, 1};
    while (words >> word) {
      std::string where = "hostfile " + file_name + ":" + std::to_string(number);
      int value = 0;
      if (word.rfind("slots=", 0) == 0) {
        MF_CHECK(parse_positive(word.substr(6), &h.slots), where, ": '", word, "' needs a positive integer");
      } else if (word.rfind("max_slots=", 0) == 0) {
        MF_CHECK(parse_positive(word.substr(10), &value), where, ": '", word, "' needs a positive integer");
      } else {
        MF_THROW(where, ": unexpected '", word, "'; expected 'hostname slots=N'");
      }
    }
    out.push_back(h);
  }
  check_hosts(out, "hostfile " + file_name);
  return out;
}

std::vector<HostSlots> read_hostfile(const std::string& path) {
  std::ifstream in(path);
  MF_CHECK(in.good(), "--hostfile ", path, ": cannot open the file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_hostfile_text(text.str(), path);
}

int total_slots(const std::vector<HostSlots>& hosts) {
  int n = 0;
  for (const auto& h : hosts) n += h.slots;
  return n;
}

std::string hosts_to_mpirun(const std::vector<HostSlots>& hosts) {
  std::string s;
  for (const auto& h : hosts) s += (s.empty() ? "" : ",") + h.host + ":" + std::to_string(h.slots);
  return s;
}

bool is_local_host(const std::string& host, const std::string& own_hostname) {
  if (host == "localhost" || host == "127.0.0.1" || host == "::1" || host == own_hostname) return true;
  std::string own_short = own_hostname.substr(0, own_hostname.find('.'));
  return host == own_short || host.substr(0, host.find('.')) == own_short;
}

}  // namespace meshflow::launcher
