// The communication backend interface: what every collective in sparcol is written against.
//
// Deliberately small and free of MPI/NCCL types (STYLE.md 2): rank and size, non-blocking
// point-to-point to any peer with a handle to wait on, a barrier, and the dense baselines that the
// underlying library already does well (all-reduce of floats, all-gather-v of bytes, broadcast).
//
// Contracts, for every implementation:
// * Ordering: two messages from the same source to the same destination with the same tag are
//   received in the order they were sent (MPI's non-overtaking rule). Collectives rely on it.
// * Sizes: a receive must name exactly the number of bytes of the matching send; anything else is
//   an Error(kMismatch) naming both sizes, never a silent truncation.
// * Buffers: a send buffer must not be modified, and a receive buffer not read, until the request
//   completes. Buffers live in mem_kind() memory.
// * Timeouts: every blocking wait (wait, wait_all, barrier, the dense operations where the library
//   allows it) gives up after timeout() and throws Error(kTimeout) naming the operation and the
//   peer it was waiting for. A timeout of zero means "wait forever".
// * Threads: a Backend object is used by one thread at a time.
// * Tags: user tags must lie in [0, kMaxUserTag]; tags above are reserved for sparcol's collectives.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "sparcol/core/types.hpp"

namespace sparcol::comm {

inline constexpr int kMaxUserTag = 9999;

// Tags reserved for collectives (all <= 32767, the smallest MPI_TAG_UB the standard allows).
enum CollectiveTag : int {
  kTagFingerprint = 10001,
  kTagRing = 10002,
  kTagAllgather = 10003,
  kTagSparse = 10004,
  kTagBarrier = 10005,
  kTagReduceRef = 10006,
  kTagBroadcast = 10007,
  kTagSign = 10008,
  // After a timeout: "whom are you waiting for?" and its answer (MpiBackend; docs/reliability.md).
  kTagWaitQuery = 10009,
  kTagWaitReply = 10010,
  kTagLiec = 10011,  // LIEC's sharded server (coll/liec_allreduce.hpp)
  // topo::PairGossip (a2cid2, async-gossip): its control messages and its pairs' exchanges.
  kTagPairGossip = 10012,
  kTagPairGossipData = 10013,
  // 16384..32767: one tag per collective call, for data sent before its fingerprint check completes
  // (coll::Agreement::data_tag).
  kTagCallFirst = 16384,
};

// What this process is blocked on right now, for the message a program prints when the launcher
// terminates it because another rank failed. Every thread that waits gets its own record (a table of
// kActivitySlots; threads beyond it share the last), so a wait that ends in one thread (the main loop)
// does not erase what another (a coll::Background progress thread) is still waiting on. Updated with
// relaxed atomic stores around every blocking wait; read from a signal handler (lock-free).
struct Activity {
  std::atomic<int> tag{-1};   // the tag waited on (kTag* names the collective), -1 when not waiting
  std::atomic<int> peer{-1};  // the peer waited for, -1 when unknown
};
inline constexpr int kActivitySlots = 8;
// This thread's record (claimed on the thread's first wait, released when the thread ends).
Activity& current_activity();
// The record of slot i (0 <= i < kActivitySlots), for readers: a signal handler scans them all.
Activity& activity_slot(int i);
// The first record that is waiting (tag >= 0), or nullptr; safe to call from a signal handler.
const Activity* waiting_activity();
// Marks what this thread waits on for the duration of a blocking call.
class ActivityScope {
 public:
  ActivityScope(int tag, int peer) : a_(current_activity()) {
    a_.peer.store(peer, std::memory_order_relaxed);
    a_.tag.store(tag, std::memory_order_relaxed);
  }
  ~ActivityScope() { a_.tag.store(-1, std::memory_order_relaxed); }
  ActivityScope(const ActivityScope&) = delete;
  ActivityScope& operator=(const ActivityScope&) = delete;

 private:
  Activity& a_;
};
// A static name for a tag ("ring all-reduce", "barrier", ...); safe to call from a signal handler.
const char* tag_name(int tag);

// What a pending request is, for error messages.
struct RequestInfo {
  bool is_send = false;
  int peer = -1;
  int tag = 0;
  std::size_t bytes = 0;
};

// Implementation side of a request; each backend derives its own.
class RequestImpl {
 public:
  virtual ~RequestImpl() = default;
  // Blocks until the operation completes or the deadline passes; returns false on timeout.
  virtual bool wait_until(std::chrono::steady_clock::time_point deadline) = 0;
  // Non-blocking completion check.
  virtual bool test() = 0;
  RequestInfo info;
};

// A move-only handle to a pending send or receive. A request is normally completed by
// Backend::wait or wait_all. Destroying one that is still pending (while an exception unwinds)
// cancels it where the library allows; the transfer's buffers must then be considered lost.
class Request {
 public:
  Request() = default;
  explicit Request(std::unique_ptr<RequestImpl> impl) : impl_(std::move(impl)) {}
  Request(Request&&) noexcept = default;
  Request& operator=(Request&&) noexcept = default;
  ~Request() = default;

  bool pending() const { return impl_ != nullptr; }
  RequestImpl* impl() { return impl_.get(); }
  void reset() { impl_.reset(); }

 private:
  std::unique_ptr<RequestImpl> impl_;
};

class Backend {
 public:
  using Clock = std::chrono::steady_clock;

  virtual ~Backend() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi", "loopback", "nccl": printed in benchmark headers and error messages.
  virtual std::string name() const = 0;
  virtual MemKind mem_kind() const { return MemKind::kHost; }
  // Whether isend/irecv and the dense operations accept buffers of this kind. A host backend that
  // stages device buffers through pinned host memory (MpiBackend) accepts both.
  virtual bool accepts(MemKind kind) const { return kind == mem_kind(); }
  // The backend that carries small host-memory control messages for this one (call fingerprints,
  // pair counts): the backend itself, except for a device backend (NcclBackend), which returns the
  // host backend it was created over. Collectives never pass host memory to a device backend.
  virtual Backend& control() { return *this; }
  // The CUDA stream (an opaque cudaStream_t) this backend orders its device transfers on, or nullptr
  // when it has none. Device work that the collectives queue on it is ordered with the transfers.
  virtual void* stream_handle() const { return nullptr; }

  // Point-to-point to any peer (0 <= peer < size(), peer may equal rank()).
  virtual Request isend(const void* buf, std::size_t bytes, int peer, int tag) = 0;
  virtual Request irecv(void* buf, std::size_t bytes, int peer, int tag) = 0;

  // Waits for one request (it becomes empty); throws Error(kTimeout) after timeout().
  void wait(Request& request);
  // Waits for all; the deadline is shared, so the whole call takes at most timeout().
  virtual void wait_all(std::span<Request> requests);

  // Every rank waits until all have arrived. The default is a dissemination barrier over
  // point-to-point messages (ceil(log2 K) rounds), so a timeout can name the rank it was waiting for.
  virtual void barrier();

  // Dense baselines (blocking, in place, every rank calls them with the same count):
  // sum over ranks of `count` floats; the result is identical on every rank.
  virtual void allreduce_sum(float* data, std::size_t count) = 0;
  // Rank r contributes recv_bytes[r] bytes from `send`; every rank receives all contributions
  // concatenated in rank order into `recv` (which must hold their sum).
  virtual void allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) = 0;
  // Copies `bytes` bytes from root's buffer into everyone's.
  virtual void broadcast(void* buf, std::size_t bytes, int root) = 0;
  // Bitwise XOR over ranks of `count` 64-bit words, in place (host memory): the same-payload
  // reference of the sign ring all-reduces (sparcol-bench). MpiBackend: MPI_Allreduce with MPI_BXOR.
  // The default gathers every rank's words (allgatherv) and XORs them in rank order.
  virtual void allreduce_bxor(std::uint64_t* data, std::size_t count);

  // A new backend over the same ranks with a communication context of its own (MPI_Comm_dup for
  // MpiBackend, a child world for LoopbackBackend): its messages never match this one's, so another
  // thread may run collectives on it while this one is in use (coll::Background). A collective call:
  // every rank calls it, in the same order. The duplicate inherits the timeout and the collective
  // checks. Backends that cannot (the default, NcclBackend) throw Error(kInvalidArgument) naming
  // themselves. MpiBackend's duplicate used from a second thread needs MPI_THREAD_MULTIPLE
  // (coll::Background checks).
  virtual std::unique_ptr<Backend> duplicate();
  // Why this backend and a duplicate cannot be used from two threads at once (empty: they can).
  // MpiBackend: unless MPI provides MPI_THREAD_MULTIPLE.
  virtual std::string concurrent_use_reason() const { return {}; }

  // Deadline for blocking waits (default 300 s; 0 = none). Environment: SPARCOL_TIMEOUT_S.
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

  // Mismatch detection before every sparcol collective (a small all-gather of a fingerprint of the
  // call). On by default; SPARCOL_CHECK_COLLECTIVES=0 or set_check_collectives(false) turns it off.
  bool check_collectives() const { return check_collectives_; }
  void set_check_collectives(bool on) { check_collectives_ = on; }

  // A per-backend counter of sparcol collectives called; part of the fingerprint.
  std::uint64_t next_collective_sequence() { return collective_seq_++; }

  // Bytes this rank has passed to isend / received through irecv since construction (statistics).
  std::uint64_t bytes_sent() const { return bytes_sent_; }
  std::uint64_t bytes_recv() const { return bytes_recv_; }

 protected:
  Backend();
  Clock::time_point deadline() const;
  [[noreturn]] void throw_timeout(const RequestInfo& info, const char* during = nullptr) const;
  // Called by throw_timeout after a wait for info.peer timed out: the chain of waits behind that peer,
  // asked of the peers themselves ("; rank 0 has itself waited 3.9 s ... for rank 2, ..."), ending
  // with the rank to blame; empty when the backend cannot ask (the default).
  virtual std::string explain_wait(const RequestInfo& info) const;
  void count_send(std::size_t bytes) { bytes_sent_ += bytes; }
  void count_recv(std::size_t bytes) { bytes_recv_ += bytes; }

 private:
  std::chrono::milliseconds timeout_{300000};
  bool check_collectives_ = true;
  std::uint64_t collective_seq_ = 0;
  std::uint64_t bytes_sent_ = 0;
  std::uint64_t bytes_recv_ = 0;
};

}  // namespace sparcol::comm
