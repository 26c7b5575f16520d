// LoopbackBackend: N threads in one process act as N ranks.
//
// Used by the unit tests of every collective (fast, no mpirun) and by programs that simulate K
// workers in one process (`sparcol-toy --simulate K`). Messages go through per-destination
// mailboxes keyed by (source, tag), FIFO, so the ordering contract of Backend holds. Sends copy the
// data into the mailbox and complete at once (eager); receives complete when a message arrives.
//
// Failure: when one rank's function throws inside LoopbackWorld::run, the world is aborted: every
// rank blocked in a wait, barrier or dense operation throws Error(kBackend) naming the failed rank,
// and run() rethrows the first failure once all threads have ended. No thread is left hanging.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"

namespace sparcol::comm {

class LoopbackWorld;

class LoopbackBackend final : public Backend {
 public:
  LoopbackBackend(std::shared_ptr<LoopbackWorld> world, int rank);

  int rank() const override { return rank_; }
  int size() const override;
  std::string name() const override { return "loopback"; }

  Request isend(const void* buf, std::size_t bytes, int peer, int tag) override;
  Request irecv(void* buf, std::size_t bytes, int peer, int tag) override;
  void barrier() override;
  void allreduce_sum(float* data, std::size_t count) override;
  void allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) override;
  void broadcast(void* buf, std::size_t bytes, int root) override;
  // The n-th duplicate of every rank is a backend of the world's n-th child world (created by the
  // first rank to ask); an abort of the world aborts its children.
  std::unique_ptr<Backend> duplicate() override;

 private:
  void check_peer(int peer, const char* op) const;
  int duplicates_ = 0;
  std::shared_ptr<LoopbackWorld> world_;
  int rank_;
};

class LoopbackWorld : public std::enable_shared_from_this<LoopbackWorld> {
 public:
  // Use create(): backends keep the world alive through shared_ptr.
  static std::shared_ptr<LoopbackWorld> create(int size);

  int size() const { return size_; }

  // Runs fn(backend) for every rank on its own thread and joins them. If any rank throws, the world
  // is aborted (see above) and the first exception is rethrown here after all threads have ended.
  void run(const std::function<void(Backend&)>& fn);

  // Convenience: LoopbackWorld::create(n)->run(fn).
  static void spawn(int size, const std::function<void(Backend&)>& fn) { create(size)->run(fn); }

  // Marks the world failed: every blocked wait throws Error(kBackend, "... rank R failed: why").
  void abort(int failed_rank, const std::string& why);
  // The index-th child world (Backend::duplicate), created on first use; aborted with this one.
  std::shared_ptr<LoopbackWorld> child(int index);

  struct State;  // mailboxes, barrier and abort flag; defined in loopback.cpp
  State& state() { return *state_; }

  explicit LoopbackWorld(int size);  // public for make_shared; prefer create()
  ~LoopbackWorld();

 private:
  int size_;
  std::unique_ptr<State> state_;
};

}  // namespace sparcol::comm
