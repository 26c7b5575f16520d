#include "sparcol/comm/backend.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sparcol/core/error.hpp"

namespace sparcol::comm {

std::string describe_tag(int tag);

Backend::Backend() {
  if (const char* t = std::getenv("SPARCOL_TIMEOUT_S"); t != nullptr && *t != '\0') {
    char* end = nullptr;
    const double seconds = std::strtod(t, &end);
    SPARCOL_CHECK_ARG(
        end != t && *end == '\0' && seconds >= 0, -1,
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

namespace {
struct ActivityTable {
  Activity slot[kActivitySlots];
  std::atomic<bool> used[kActivitySlots] = {};
};
ActivityTable& activity_table() {
  static ActivityTable t;
  return t;
}
// A thread's claim on a slot, released (and the slot cleared) when the thread ends.
struct SlotClaim {
  int index = kActivitySlots - 1;  // the shared last slot when every other is taken
  bool owned = false;
  SlotClaim() {
    auto& t = activity_table();
    for (int i = 0; i < kActivitySlots - 1; ++i) {
      bool expected = false;
      if (t.used[i].compare_exchange_strong(expected, true)) {
        index = i;
        owned = true;
        break;
      }
    }
  }
  ~SlotClaim() {
    if (!owned) return;
    auto& t = activity_table();
    t.slot[index].tag.store(-1, std::memory_order_relaxed);
    t.used[index].store(false);
  }
  SlotClaim(const SlotClaim&) = delete;
  SlotClaim& operator=(const SlotClaim&) = delete;
};
}  // namespace

Activity& current_activity() {
  thread_local SlotClaim claim;
  return activity_table().slot[claim.index];
}

Activity& activity_slot(int i) {
  return activity_table().slot[i];
}

const Activity* waiting_activity() {
  auto& t = activity_table();
  for (const auto& a : t.slot)
    if (a.tag.load(std::memory_order_relaxed) >= 0) return &a;
  return nullptr;
}

const char* tag_name(int tag) {
  switch (tag) {
    case kTagFingerprint:
      return "collective fingerprint exchange";
    case kTagRing:
      return "ring all-reduce";
    case kTagAllgather:
      return "all-gather";
    case kTagSparse:
      return "sparse all-gather";
    case kTagBarrier:
      return "barrier";
    case kTagReduceRef:
      return "reference all-reduce";
    case kTagBroadcast:
      return "broadcast";
    case kTagSign:
      return "sign all-gather";
    case kTagLiec:
      return "LIEC sharded server";
    case kTagWaitQuery:
    case kTagWaitReply:
      return "wait query after a timeout";
    case kTagPairGossip:
      return "pair gossip";
    case kTagPairGossipData:
      return "pair gossip exchange";
    default:
      if (tag >= kTagCallFirst) return "collective data exchange";
      return tag >= 0 ? "point-to-point message" : "no communication";
  }
}

std::string describe_tag(int tag) {
  if (tag >= 0 && tag <= kMaxUserTag) return "user message (tag " + std::to_string(tag) + ")";
  return tag_name(tag);
}

void Backend::throw_timeout(const RequestInfo& info, const char* during) const {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", static_cast<double>(timeout_.count()) / 1000.0);
  const std::string op = during != nullptr ? std::string(during) : describe_tag(info.tag);
  std::string msg = "timed out after " + std::string(seconds) + " s in " + op + " on backend " + name();
  if (info.peer >= 0) {
    msg += ": waiting for " + std::string(info.is_send ? "a send to" : "a message from") + " rank " +
           std::to_string(info.peer) + " (" + std::to_string(info.bytes) + " bytes)";
  }
  const std::string chain = info.peer >= 0 ? explain_wait(info) : std::string();
  msg += chain.empty() ? "; that rank is dead, stopped, or calling a different operation" : chain;
  msg += " (SPARCOL_TIMEOUT_S sets the limit)";
  throw Error(ErrorCode::kTimeout, rank(), msg);
}

std::string Backend::explain_wait(const RequestInfo&) const {
  return {};
}

void Backend::allreduce_bxor(std::uint64_t* data, std::size_t count) {
  const auto K = static_cast<std::size_t>(size());
  std::vector<std::uint64_t> all(K * count);
  std::vector<std::size_t> bytes(K, count * sizeof(std::uint64_t));
  allgatherv(data, all.data(), bytes);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t x = 0;
    for (std::size_t r = 0; r < K; ++r) x ^= all[r * count + i];
    data[i] = x;
  }
}

void Backend::barrier() {
  // Dissemination barrier: in round j rank r signals r + 2^j and waits for r - 2^j. After
  // ceil(log2 K) rounds every rank has (transitively) heard from every other.
  const int n = size(), r = rank();
  char token = 0, got = 0;
  for (int dist = 1; dist < n; dist *= 2) {
    Request reqs[2] = {irecv(&got, 1, (r - dist + n) % n, kTagBarrier),
                       isend(&token, 1, (r + dist) % n, kTagBarrier)};
    const auto until = deadline();
    for (auto& q : reqs) {
      ActivityScope scope(kTagBarrier, q.impl()->info.peer);
      if (!q.impl()->wait_until(until)) throw_timeout(q.impl()->info, "barrier");
      q.reset();
    }
  }
}

void Backend::wait(Request& request) {
  if (!request.pending()) return;
  ActivityScope scope(request.impl()->info.tag, request.impl()->info.peer);
  if (!request.impl()->wait_until(deadline())) throw_timeout(request.impl()->info);
  request.reset();
}

void Backend::wait_all(std::span<Request> requests) {
  const auto until = deadline();
  for (auto& r : requests) {
    if (!r.pending()) continue;
    ActivityScope scope(r.impl()->info.tag, r.impl()->info.peer);
    if (!r.impl()->wait_until(until)) throw_timeout(r.impl()->info);
    r.reset();
  }
}

std::unique_ptr<Backend> Backend::duplicate() {
  throw Error(
      ErrorCode::kInvalidArgument, rank(),
      "the " + name() + " backend cannot be duplicated (no communicator of its own for a second thread)");
}

}  // namespace sparcol::comm
