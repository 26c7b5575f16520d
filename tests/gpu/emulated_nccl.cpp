#include "emulated_nccl.hpp"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::test {

namespace {

struct EGroup {
  int owner = -1;
  std::vector<comm::GroupedBackend::Op> ops;
  std::size_t remaining = 0;
  bool done = false;
  std::string error;  // a size mismatch
};

struct Posted {
  std::shared_ptr<EGroup> group;
  comm::GroupedBackend::Op op;
};

}  // namespace

// Everything under one mutex: the matching is not what is being tested for speed.
class EmulatedNcclState {
 public:
  explicit EmulatedNcclState(int size) : queues_(static_cast<std::size_t>(size)) {}

  std::mutex mu;
  std::condition_variable cv;
  bool failed = false;
  std::string failure;

  // Queues a launched group on its rank; its operations become matchable when it reaches the head.
  void launch(const std::shared_ptr<EGroup>& g) {
    auto& q = queues_[static_cast<std::size_t>(g->owner)];
    q.push_back(g);
    if (q.size() == 1) activate(g->owner);
  }

 private:
  using Key = std::pair<int, int>;  // (source, destination)
  struct Channel {
    std::deque<Posted> sends, recvs;
  };

  void activate(int rank) {
    auto& q = queues_[static_cast<std::size_t>(rank)];
    if (q.empty()) return;
    std::shared_ptr<EGroup> g = q.front();
    std::vector<Key> touched;
    for (const auto& op : g->ops) {
      const Key key = op.is_send ? Key{rank, op.peer} : Key{op.peer, rank};
      auto& ch = channels_[key];
      (op.is_send ? ch.sends : ch.recvs).push_back(Posted{g, op});
      touched.push_back(key);
    }
    for (const Key& k : touched) match(k);
  }

  void match(const Key& key) {
    auto& ch = channels_[key];
    while (!ch.sends.empty() && !ch.recvs.empty()) {
      Posted s = std::move(ch.sends.front());
      Posted r = std::move(ch.recvs.front());
      ch.sends.pop_front();
      ch.recvs.pop_front();
      if (s.op.bytes != r.op.bytes) {
        const std::string why = "emulated nccl: rank " + std::to_string(key.first) + " sent " +
                                std::to_string(s.op.bytes) + " bytes to rank " + std::to_string(key.second) +
                                ", which posted a receive of " + std::to_string(r.op.bytes) +
                                " bytes (NCCL matches by order only)";
        s.group->error = r.group->error = why;
      } else {
        std::memcpy(r.op.buf, s.op.buf, s.op.bytes);
      }
      finish_one(s.group);
      finish_one(r.group);
    }
  }

  void finish_one(const std::shared_ptr<EGroup>& g) {
    if (--g->remaining > 0) return;
    g->done = true;
    auto& q = queues_[static_cast<std::size_t>(g->owner)];
    q.pop_front();  // only the head group has matchable operations, so g is the head
    cv.notify_all();
    activate(g->owner);
  }

  std::vector<std::deque<std::shared_ptr<EGroup>>> queues_;
  std::map<Key, Channel> channels_;
};

namespace {

class EmulatedLaunched final : public comm::GroupedBackend::Launched {
 public:
  EmulatedLaunched(std::shared_ptr<EmulatedNcclState> st, std::shared_ptr<EGroup> g, int rank)
      : st_(std::move(st)), g_(std::move(g)), rank_(rank) {}
  bool done() override {
    std::lock_guard lock(st_->mu);
    if (!g_->error.empty()) throw Error(ErrorCode::kMismatch, rank_, g_->error);
    if (st_->failed) throw Error(ErrorCode::kBackend, rank_, "emulated nccl: " + st_->failure);
    return g_->done;
  }

 private:
  std::shared_ptr<EmulatedNcclState> st_;
  std::shared_ptr<EGroup> g_;
  int rank_;
};

}  // namespace

EmulatedNcclBackend::EmulatedNcclBackend(std::shared_ptr<EmulatedNcclState> state, comm::Backend& control)
    : comm::GroupedBackend(control), state_(std::move(state)) {}

std::unique_ptr<comm::GroupedBackend::Launched> EmulatedNcclBackend::launch(const std::vector<Op>& ops) {
  auto g = std::make_shared<EGroup>();
  g->owner = rank();
  g->ops = ops;
  g->remaining = ops.size();
  {
    std::lock_guard lock(state_->mu);
    state_->launch(g);
  }
  return std::make_unique<EmulatedLaunched>(state_, g, rank());
}

void EmulatedNcclBackend::check_buffer(const void* buf, const char* what) const {
  SPARCOL_CHECK_ARG(buf != nullptr, rank(), std::string(what) + ": null buffer");
}

void EmulatedNcclBackend::idle() {
  std::unique_lock lock(state_->mu);
  state_->cv.wait_for(lock, std::chrono::milliseconds(1));
}

std::string EmulatedNcclBackend::abort_transport() {
  ++aborts_;
  return "; the emulated communicator was aborted";
}

void EmulatedNcclBackend::allreduce_sum(float* data, std::size_t count) {
  drain("all-reduce");
  control().allreduce_sum(data, count);
}

void EmulatedNcclBackend::allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) {
  drain("all-gather-v");
  control().allgatherv(send, recv, recv_bytes);
}

void EmulatedNcclBackend::broadcast(void* buf, std::size_t bytes, int root) {
  drain("broadcast");
  control().broadcast(buf, bytes, root);
}

void run_emulated_nccl(int size, const std::function<void(comm::Backend&)>& fn) {
  auto state = std::make_shared<EmulatedNcclState>(size);
  comm::LoopbackWorld::spawn(size, [&](comm::Backend& control) {
    EmulatedNcclBackend b(state, control);
    try {
      fn(b);
    } catch (const std::exception& e) {
      {
        std::lock_guard lock(state->mu);
        if (!state->failed) {
          state->failed = true;
          state->failure = "peer rank " + std::to_string(control.rank()) + " failed: " + e.what();
        }
      }
      state->cv.notify_all();
      throw;
    }
  });
}

}  // namespace sparcol::test
