#include "sparcol/comm/loopback.hpp"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "sparcol/core/error.hpp"

namespace sparcol::comm {

struct LoopbackWorld::State {
  struct Mailbox {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::pair<int, int>, std::deque<std::vector<std::byte>>> queues;  // (source, tag) -> FIFO
  };
  std::vector<Mailbox> boxes;

  std::mutex barrier_mu;
  std::condition_variable barrier_cv;
  int barrier_count = 0;
  std::uint64_t barrier_generation = 0;

  std::mutex children_mu;
  std::vector<std::shared_ptr<LoopbackWorld>> children;  // Backend::duplicate

  std::mutex abort_mu;
  bool aborted = false;
  int failed_rank = -1;
  std::string failure;

  explicit State(int n) : boxes(static_cast<std::size_t>(n)) {}
};

namespace {

[[noreturn]] void throw_aborted(const LoopbackWorld::State& s, int rank) {
  throw Error(ErrorCode::kBackend, rank,
              "loopback: peer rank " + std::to_string(s.failed_rank) + " failed: " + s.failure);
}

class LoopbackSend final : public RequestImpl {
 public:
  bool wait_until(std::chrono::steady_clock::time_point) override { return true; }
  bool test() override { return true; }
};

class LoopbackRecv final : public RequestImpl {
 public:
  LoopbackRecv(LoopbackWorld::State* s, int self, void* buf) : s_(s), self_(self), buf_(buf) {}

  bool wait_until(std::chrono::steady_clock::time_point deadline) override {
    auto& box = s_->boxes[static_cast<std::size_t>(self_)];
    std::unique_lock lock(box.mu);
    auto& q = box.queues[{info.peer, info.tag}];
    const bool ready = box.cv.wait_until(lock, deadline, [&] { return !q.empty() || aborted(); });
    if (!q.empty()) {
      take(q);
      forget_if_empty(box, q);
      return true;
    }
    if (aborted()) {
      lock.unlock();
      throw_aborted(*s_, self_);
    }
    return ready;
  }

  bool test() override {
    auto& box = s_->boxes[static_cast<std::size_t>(self_)];
    std::lock_guard lock(box.mu);
    auto& q = box.queues[{info.peer, info.tag}];
    if (q.empty()) return false;
    take(q);
    forget_if_empty(box, q);
    return true;
  }

 private:
  // Collectives use a fresh tag per call (coll::Agreement::data_tag): drop drained queues so the
  // mailbox map does not keep one entry per tag ever used. Called with box.mu held.
  void forget_if_empty(LoopbackWorld::State::Mailbox& box, const std::deque<std::vector<std::byte>>& q) {
    if (q.empty()) box.queues.erase({info.peer, info.tag});
  }
  bool aborted() const {
    std::lock_guard lock(s_->abort_mu);
    return s_->aborted;
  }
  void take(std::deque<std::vector<std::byte>>& q) {
    std::vector<std::byte> msg = std::move(q.front());
    q.pop_front();
    if (msg.size() != info.bytes) {
      throw Error(ErrorCode::kMismatch, self_,
                  "loopback: receive from rank " + std::to_string(info.peer) + " (tag " +
                      std::to_string(info.tag) + ") expected " + std::to_string(info.bytes) +
                      " bytes but rank " + std::to_string(info.peer) + " sent " + std::to_string(msg.size()));
    }
    if (!msg.empty()) std::memcpy(buf_, msg.data(), msg.size());
  }

  LoopbackWorld::State* s_;
  int self_;
  void* buf_;
};

}  // namespace

// ------------------------------------------------------------------------------------------------
// LoopbackWorld
// ------------------------------------------------------------------------------------------------

LoopbackWorld::LoopbackWorld(int size) : size_(size) {
  SPARCOL_CHECK_ARG(size >= 1, -1, "loopback world size must be >= 1, got " + std::to_string(size));
  state_ = std::make_unique<State>(size);
}

LoopbackWorld::~LoopbackWorld() = default;

std::shared_ptr<LoopbackWorld> LoopbackWorld::create(int size) {
  return std::make_shared<LoopbackWorld>(size);
}

void LoopbackWorld::abort(int failed_rank, const std::string& why) {
  {
    std::lock_guard lock(state_->abort_mu);
    if (state_->aborted) return;
    state_->aborted = true;
    state_->failed_rank = failed_rank;
    state_->failure = why;
  }
  for (auto& box : state_->boxes) {
    std::lock_guard lock(box.mu);
    box.cv.notify_all();
  }
  {
    std::lock_guard lock(state_->barrier_mu);
    state_->barrier_cv.notify_all();
  }
  std::vector<std::shared_ptr<LoopbackWorld>> children;
  {
    std::lock_guard lock(state_->children_mu);
    children = state_->children;
  }
  for (auto& c : children) c->abort(failed_rank, why);
}

std::shared_ptr<LoopbackWorld> LoopbackWorld::child(int index) {
  std::shared_ptr<LoopbackWorld> c;
  {
    std::lock_guard lock(state_->children_mu);
    while (static_cast<int>(state_->children.size()) <= index) state_->children.push_back(create(size_));
    c = state_->children[static_cast<std::size_t>(index)];
  }
  // A child made after this world failed starts failed too.
  std::lock_guard lock(state_->abort_mu);
  if (state_->aborted) {
    const int failed = state_->failed_rank;
    const std::string why = state_->failure;
    c->abort(failed, why);
  }
  return c;
}

void LoopbackWorld::run(const std::function<void(Backend&)>& fn) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size_));
  std::mutex first_mu;
  int first = -1;
  auto self = shared_from_this();
  auto body = [&](int r) {
    try {
      LoopbackBackend backend(self, r);
      fn(backend);
    } catch (const std::exception& e) {
      errors[static_cast<std::size_t>(r)] = std::current_exception();
      {
        std::lock_guard lock(first_mu);
        if (first < 0) first = r;
      }
      abort(r, e.what());
    } catch (...) {
      errors[static_cast<std::size_t>(r)] = std::current_exception();
      {
        std::lock_guard lock(first_mu);
        if (first < 0) first = r;
      }
      abort(r, "unknown exception");
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(size_));
  for (int r = 0; r < size_; ++r) threads.emplace_back(body, r);
  for (auto& t : threads) t.join();
  if (first >= 0) std::rethrow_exception(errors[static_cast<std::size_t>(first)]);
}

// ------------------------------------------------------------------------------------------------
// LoopbackBackend
// ------------------------------------------------------------------------------------------------

LoopbackBackend::LoopbackBackend(std::shared_ptr<LoopbackWorld> world, int rank)
    : world_(std::move(world)), rank_(rank) {
  SPARCOL_CHECK_ARG(rank >= 0 && rank < world_->size(), rank,
                    "loopback rank out of range [0, " + std::to_string(world_->size()) + ")");
}

int LoopbackBackend::size() const {
  return world_->size();
}

void LoopbackBackend::check_peer(int peer, const char* op) const {
  SPARCOL_CHECK_ARG(peer >= 0 && peer < size(), rank_,
                    std::string("loopback ") + op + ": peer " + std::to_string(peer) + " out of range [0, " +
                        std::to_string(size()) + ")");
}

Request LoopbackBackend::isend(const void* buf, std::size_t bytes, int peer, int tag) {
  check_peer(peer, "isend");
  auto& s = world_->state();
  {
    std::lock_guard lock(s.abort_mu);
    if (s.aborted) throw_aborted(s, rank_);
  }
  std::vector<std::byte> msg(bytes);
  if (bytes != 0) std::memcpy(msg.data(), buf, bytes);
  auto& box = s.boxes[static_cast<std::size_t>(peer)];
  {
    std::lock_guard lock(box.mu);
    box.queues[{rank_, tag}].push_back(std::move(msg));
  }
  box.cv.notify_all();
  count_send(bytes);
  auto impl = std::make_unique<LoopbackSend>();
  impl->info = RequestInfo{true, peer, tag, bytes};
  return Request(std::move(impl));
}

Request LoopbackBackend::irecv(void* buf, std::size_t bytes, int peer, int tag) {
  check_peer(peer, "irecv");
  auto impl = std::make_unique<LoopbackRecv>(&world_->state(), rank_, buf);
  impl->info = RequestInfo{false, peer, tag, bytes};
  count_recv(bytes);
  return Request(std::move(impl));
}

void LoopbackBackend::barrier() {
  auto& s = world_->state();
  std::unique_lock lock(s.barrier_mu);
  const std::uint64_t gen = s.barrier_generation;
  if (++s.barrier_count == size()) {
    s.barrier_count = 0;
    ++s.barrier_generation;
    s.barrier_cv.notify_all();
    return;
  }
  auto is_aborted = [&] {
    std::lock_guard alock(s.abort_mu);
    return s.aborted;
  };
  const bool done =
      s.barrier_cv.wait_until(lock, deadline(), [&] { return s.barrier_generation != gen || is_aborted(); });
  if (s.barrier_generation != gen) return;
  if (is_aborted()) throw_aborted(s, rank_);
  if (!done) {
    throw Error(ErrorCode::kTimeout, rank_,
                "timed out in barrier on backend loopback: " + std::to_string(s.barrier_count) + " of " +
                    std::to_string(size()) +
                    " ranks arrived; the others are stuck or calling a different operation");
  }
}

// The dense reference operations are written over point-to-point: rank 0 sums the contributions in
// rank order (x_0 + x_1 + ... + x_{K-1}) and sends the result back, so they are exact references for
// the determinism rule of ALGORITHMS.md 0.1.
void LoopbackBackend::allreduce_sum(float* data, std::size_t count) {
  const int n = size();
  if (n == 1) return;
  const std::size_t bytes = count * sizeof(float);
  if (rank_ == 0) {
    std::vector<float> tmp(count);
    for (int r = 1; r < n; ++r) {
      Request req = irecv(tmp.data(), bytes, r, kTagReduceRef);
      wait(req);
      for (std::size_t i = 0; i < count; ++i) data[i] += tmp[i];
    }
  } else {
    Request req = isend(data, bytes, 0, kTagReduceRef);
    wait(req);
  }
  broadcast(data, bytes, 0);
}

void LoopbackBackend::allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) {
  const int n = size();
  SPARCOL_CHECK_ARG(recv_bytes.size() == static_cast<std::size_t>(n), rank_,
                    "allgatherv: recv_bytes has " + std::to_string(recv_bytes.size()) + " entries for " +
                        std::to_string(n) + " ranks");
  std::vector<std::size_t> offset(static_cast<std::size_t>(n) + 1, 0);
  for (int r = 0; r < n; ++r)
    offset[static_cast<std::size_t>(r) + 1] =
        offset[static_cast<std::size_t>(r)] + recv_bytes[static_cast<std::size_t>(r)];
  auto* out = static_cast<std::byte*>(recv);
  const std::size_t mine = recv_bytes[static_cast<std::size_t>(rank_)];
  if (mine != 0) std::memmove(out + offset[static_cast<std::size_t>(rank_)], send, mine);
  std::vector<Request> reqs;
  reqs.reserve(2 * static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    if (r == rank_) continue;
    reqs.push_back(isend(send, mine, r, kTagAllgather));
    reqs.push_back(irecv(out + offset[static_cast<std::size_t>(r)], recv_bytes[static_cast<std::size_t>(r)],
                         r, kTagAllgather));
  }
  wait_all(reqs);
}

void LoopbackBackend::broadcast(void* buf, std::size_t bytes, int root) {
  check_peer(root, "broadcast");
  const int n = size();
  if (n == 1) return;
  if (rank_ == root) {
    std::vector<Request> reqs;
    for (int r = 0; r < n; ++r)
      if (r != root) reqs.push_back(isend(buf, bytes, r, kTagBroadcast));
    wait_all(reqs);
  } else {
    Request req = irecv(buf, bytes, root, kTagBroadcast);
    wait(req);
  }
}

std::unique_ptr<Backend> LoopbackBackend::duplicate() {
  auto b = std::make_unique<LoopbackBackend>(world_->child(duplicates_++), rank_);
  b->set_timeout(timeout());
  b->set_check_collectives(check_collectives());
  return b;
}

}  // namespace sparcol::comm
