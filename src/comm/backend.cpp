#include "sparcol/comm/backend.hpp"

#include <cstdlib>
#include <string>

#include "sparcol/core/error.hpp"

namespace sparcol::comm {

Backend::Backend() {
  if (const char* t = std::getenv("SPARCOL_TIMEOUT_S"); t != nullptr && *t != '\0') {
    char* end = nullptr;
    const double seconds = std::strtod(t, &end);
    SPARCOL_CHECK_ARG(end != t && *end == '\0' && seconds >= 0, -1,
                      std::string("SPARCOL_TIMEOUT_S must be a non-negative number of seconds, got '") + t + "'");
    timeout_ = std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0));
  }
  if (const char* c = std::getenv("SPARCOL_CHECK_COLLECTIVES"); c != nullptr && std::string(c) == "0") {
    check_collectives_ = false;
  }
}

Backend::Clock::time_point Backend::deadline() const {
  if (timeout_.count() == 0) return Clock::time_point::max();
  return Clock::now() + timeout_;
}

void Backend::throw_timeout(const RequestInfo& info) const {
  const double seconds = static_cast<double>(timeout_.count()) / 1000.0;
  std::string what = info.is_send ? "send to" : "receive from";
  throw Error(ErrorCode::kTimeout, rank(),
              "timed out after " + std::to_string(seconds) + " s waiting for " + what + " rank " +
                  std::to_string(info.peer) + " (tag " + std::to_string(info.tag) + ", " +
                  std::to_string(info.bytes) + " bytes) on backend " + name() +
                  ": the peer is dead, stopped, or calling a different operation");
}

void Backend::wait(Request& request) {
  if (!request.pending()) return;
  if (!request.impl()->wait_until(deadline())) throw_timeout(request.impl()->info);
  request.reset();
}

void Backend::wait_all(std::span<Request> requests) {
  const auto until = deadline();
  for (auto& r : requests) {
    if (!r.pending()) continue;
    if (!r.impl()->wait_until(until)) throw_timeout(r.impl()->info);
    r.reset();
  }
}

}  // namespace sparcol::comm
