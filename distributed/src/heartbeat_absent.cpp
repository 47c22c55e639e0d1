// The heartbeat where Boost.Asio was not found at configure time: nothing runs, nothing fails.
#include "heartbeat.h"

namespace meshflow::distributed::internal {

struct Heartbeat::Impl {};

bool heartbeat_available() { return false; }

Heartbeat::Heartbeat(int, int, std::vector<std::string>, const std::function<int(int)>&, std::chrono::milliseconds) {}
Heartbeat::~Heartbeat() = default;
std::string Heartbeat::failure() const { return {}; }

}  // namespace meshflow::distributed::internal
