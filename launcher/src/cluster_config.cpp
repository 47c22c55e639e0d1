// Reads a cluster config with yaml-cpp and turns it into a ClusterConfig, checking every key and value type.
#include "cluster_config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "meshflow/core/error.h"

namespace meshflow::launcher {
namespace {

// Note [Cluster configs are YAML]
// The file is real YAML, parsed by yaml-cpp: block or flow collections ([a, b], {host: a}), quoted
// strings with escapes, anchors and aliases all work. What YAML leaves open, the reader decides
// and says so in its errors: a key given twice is an error (yaml-cpp keeps both), a key with no
// value is an error (never read as "" or 0), only the first document counts and a second is an
// error, and no value may hold a NUL character (every value ends up in an argv or environment
// string, where a NUL would silently cut it short). Every error names the file and the 1-based
// line of the key or item it is about.

// Note [yaml-cpp 0.7's endless documents]
// Where a document starts with a token yaml-cpp 0.7 cannot make a node of (a ',' first, say), its
// parser reports an empty document without moving past the token: YAML::LoadAll then loops for ever,
// allocating as it goes (jbeder/yaml-cpp#1040, fixed upstream in 2024 by #1319), and YAML::Load
// returns an empty document. So the first document is read with YAML::Load, the documents are
// counted by at most two steps of the parser, and a second document that starts where the first did
// is that case: an error, never an empty config.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

const char* kKeys = "ranks, hosts, threads_per_rank, mpirun_args, srun_args, env, timeout, max_restarts, failure_dir";

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  std::string where(const YAML::Node& n, const std::string& key) const { return where(n.Mark(), key); }
  std::string where(const YAML::Mark& m, const std::string& key) const {
    return "config " + path_ + ":" + std::to_string(m.line + 1) + ": " + key;
  }

  // A value's errors point at its key's line (a nested value starts on the lines below).
  const std::string& scalar(const YAML::Node& n, const YAML::Mark& at, const std::string& key) const {
    MF_CHECK(!n.IsNull(), where(at, key), " has no value (give one, or leave the key out)");
    MF_CHECK(n.IsScalar(), where(at, key), " must be a single value, not a list or map");
    MF_CHECK(n.Scalar().find('\0') == std::string::npos, where(at, key), " contains a NUL character");
    return n.Scalar();
  }

  int positive_int(const YAML::Node& n, const YAML::Mark& at, const std::string& key, int min = 1) const {
    const std::string& s = scalar(n, at, key);
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    MF_CHECK(!s.empty() && *end == '\0' && v >= min && v < (1 << 24), where(at, key), ": '", s,
             "' is not an integer >= ", min);
    return static_cast<int>(v);
  }

  double seconds(const YAML::Node& n, const YAML::Mark& at, const std::string& key) const {
    const std::string& s = scalar(n, at, key);
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    MF_CHECK(!s.empty() && *end == '\0' && std::isfinite(v) && v > 0, where(at, key), ": '", s,
             "' is not a positive number of seconds");
    return v;
  }

  std::vector<std::string> strings(const YAML::Node& n, const YAML::Mark& at, const std::string& key) const {
    MF_CHECK(n.IsSequence(), where(at, key), " must be a list of values ('- value' lines or [a, b])");
    std::vector<std::string> out;
    for (const YAML::Node item : n) {
      MF_CHECK(!item.IsNull(), where(at, key), ": an item has no value");  // a null's mark is the next token's
      out.push_back(scalar(item, item.Mark(), key + " item"));
    }
    return out;
  }

  struct Entry {
    std::string key;
    YAML::Mark at;  // the key's position
    YAML::Node value;
  };

  // The entries of a map in file order, each key checked to be a plain value given once. Nodes are
  // copied out: a yaml-cpp iterator's pair is a temporary, gone at the end of the expression.
  std::vector<Entry> entries(const YAML::Node& map, const std::string& what) const {
    std::vector<Entry> out;
    std::set<std::string> seen;
    for (const auto& pair : map) {
      const YAML::Node key_node = pair.first;
      std::string key = scalar(key_node, key_node.Mark(), what.empty() ? "key" : what + " key");
      MF_CHECK(seen.insert(key).second, where(key_node, what.empty() ? key : what + "." + key), ": the key ",
               "appears twice");
      out.push_back({std::move(key), key_node.Mark(), pair.second});
    }
    return out;
  }

  HostSlots host(const YAML::Node& n) const {
    if (n.IsScalar()) {
      // "- a:2" or "- a": the --hosts form, one host per item.
      const std::string& s = scalar(n, n.Mark(), "hosts item");
      std::vector<HostSlots> parsed;
      try {
        parsed = parse_hosts_string(s);
      } catch (const Error& e) {
        MF_THROW(where(n, "hosts item"), ": ", e.what());
      }
      MF_CHECK(parsed.size() == 1, where(n, "hosts item"), ": '", s, "' names ", parsed.size(), " hosts; write one ",
               "'- host: NAME' item per host");
      return parsed[0];
    }
    MF_CHECK(n.IsMap(), where(n, "hosts item"), " must be 'host: NAME' with 'slots: N'");
    HostSlots h{"", 1};
    for (const auto& [key, at, value] : entries(n, "hosts")) {
      if (key == "host") h.host = scalar(value, at, "hosts.host");
      else if (key == "slots") h.slots = positive_int(value, at, "hosts.slots");
      else MF_THROW(where(at, "hosts." + key), ": unknown key (known: host, slots)");
    }
    MF_CHECK(!h.host.empty(), where(n, "hosts item"), ": needs 'host: NAME'");
    return h;
  }

  ClusterConfig config(const YAML::Node& root) const {
    ClusterConfig c;
    c.path = path_;
    if (root.IsNull()) return c;  // an empty file, only comments, or "~"
    MF_CHECK(root.IsMap(), where(root, "the top level"), " must be a map of 'key: value' lines");
    for (const auto& [key, at, value] : entries(root, "")) {
      if (key == "ranks") {
        c.ranks = positive_int(value, at, key);
      } else if (key == "hosts") {
        MF_CHECK(value.IsSequence(), where(at, key), " must be a list of '- host: NAME' items");
        for (const YAML::Node item : value) {
          MF_CHECK(!item.IsNull(), where(at, key), ": an item has no value");
          c.hosts.push_back(host(item));
        }
        check_hosts(c.hosts, where(at, key));
      } else if (key == "threads_per_rank") {
        c.threads_per_rank = positive_int(value, at, key);
      } else if (key == "mpirun_args") {
        c.mpirun_args = strings(value, at, key);
      } else if (key == "srun_args") {
        c.srun_args = strings(value, at, key);
      } else if (key == "env") {
        MF_CHECK(value.IsMap(), where(at, key), " must be a map of 'NAME: value' lines");
        for (const auto& [name, name_at, var] : entries(value, "env")) {
          MF_CHECK(!name.empty() && name.find_first_of("= \t\n") == std::string::npos, where(name_at, "env"),
                   ": '", name, "' is not a variable name");
          c.env.emplace_back(name, scalar(var, name_at, "env." + name));
        }
      } else if (key == "timeout") {
        c.timeout_s = seconds(value, at, key);
      } else if (key == "max_restarts") {
        c.max_restarts = positive_int(value, at, key, 0);
      } else if (key == "failure_dir") {
        c.failure_dir = scalar(value, at, key);
      } else {
        MF_THROW(where(at, key), ": unknown key (known keys: ", kKeys, ")");
      }
    }
    return c;
  }

 private:
  std::string path_;
};

}  // namespace

ClusterConfig parse_cluster_config(const std::string& text, const std::string& path) {
  YAML::Node root;
  DocumentStarts documents;
  try {
    root = YAML::Load(text);
    std::istringstream in(text);
    YAML::Parser parser(in);
    for (int i = 0; i < 2 && parser.HandleNextDocument(documents); ++i) {
    }
  } catch (const YAML::Exception& e) {
    MF_THROW("config ", path, ":", e.mark.line + 1, ": not valid YAML (column ", e.mark.column + 1, "): ", e.msg);
  }
  Reader r(path);
  if (documents.starts.size() > 1) {
    const YAML::Mark& second = documents.starts[1];
    MF_CHECK(second.pos != documents.starts[0].pos, "config ", path, ":", second.line + 1, ": not valid YAML (column ",
             second.column + 1, "): yaml-cpp cannot read a value here");
    MF_THROW(r.where(second, "a second document"), " ('---'): a config is one document");
  }
  try {
    return r.config(root);
  } catch (const YAML::Exception& e) {
    // Reading the parsed nodes throws nothing we know of; this keeps the promise of one error type.
    MF_THROW("config ", path, ":", e.mark.line + 1, ": ", e.msg);
  }
}

ClusterConfig load_cluster_config(const std::string& path) {
  std::ifstream in(path);
  MF_CHECK(in.good(), "--config ", path, ": cannot open the file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_cluster_config(text.str(), path);
}

}  // namespace meshflow::launcher
