// OracleServer and RemoteOracle without Boost.Asio: making either says what is missing.
#include "meshflow/core/error.h"
#include "meshflow/tuner/distributed.h"

namespace meshflow::tuner {

namespace {
[[noreturn]] void missing(const char* what) {
  MF_THROW(what, " needs Boost.Asio, and this build has none (install libboost-dev and configure with "
                 "-DMESHFLOW_WITH_ASIO=AUTO)");
}
OracleOptions placeholder() { return {.objective = {"pending", "min"}, .max_trials = 1}; }
}  // namespace

struct OracleServer::Impl {};
OracleServer::OracleServer(std::shared_ptr<Oracle>, const std::string&, uint16_t, OracleServerOptions) {
  missing("OracleServer");
}
OracleServer::~OracleServer() = default;
uint16_t OracleServer::port() const { return 0; }
int OracleServer::connections() const { return 0; }
int OracleServer::accepted() const { return 0; }
int OracleServer::workers() const { return 0; }
std::vector<LostTrial> OracleServer::lost_trials() const { return {}; }
void OracleServer::stop() {}

struct RemoteOracle::Connection {};
RemoteOracle::RemoteOracle(const std::string&, uint16_t, std::chrono::milliseconds) : Oracle(placeholder()) {
  missing("RemoteOracle");
}
RemoteOracle::~RemoteOracle() = default;
void RemoteOracle::update_space(const HyperParameters&) { missing("RemoteOracle"); }
HyperParameters RemoteOracle::space() const { missing("RemoteOracle"); }
Trial RemoteOracle::create_trial(const std::string&) { missing("RemoteOracle"); }
void RemoteOracle::end_trial(const Trial&) { missing("RemoteOracle"); }
std::vector<Trial> RemoteOracle::trials() const { missing("RemoteOracle"); }
std::optional<Trial> RemoteOracle::trial(const std::string&) const { missing("RemoteOracle"); }
void RemoteOracle::attach(const std::string&, bool) { missing("RemoteOracle"); }
Oracle::Next RemoteOracle::populate_space(const std::string&) { missing("RemoteOracle"); }
Json RemoteOracle::call(const Json&) const { missing("RemoteOracle"); }
void RemoteOracle::beat() {}

}  // namespace meshflow::tuner
