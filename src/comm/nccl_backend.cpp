// NcclBackend (see nccl_backend.hpp). The only file of sparcol that includes nccl.h.
//
// The communicator is non-blocking (ncclConfig_t::blocking = 0), so that no NCCL call can hang the
// host: a call may return ncclInProgress, after which settle() polls ncclCommGetAsyncError until the
// operation is enqueued (NCCL requires that before the next call), with the backend's timeout.
// Completion is a CUDA event recorded after each group, polled together with the asynchronous error
// state. Any failure or timeout aborts the communicator (ncclCommAbort) before it is reported.
#include "sparcol/comm/nccl_backend.hpp"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cuda_check.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"

namespace sparcol::comm {

struct NcclBackend::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  bool aborted = false;
  std::string abort_reason;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  // What is still held here when the constructor of NcclBackend failed halfway (the destructor of a
  // complete backend shuts down gracefully and clears both first).
  ~Impl() {
    if (comm != nullptr && !aborted) (void)ncclCommAbort(comm);
    if (stream != nullptr) (void)cudaStreamDestroy(stream);
  }
};

namespace {

std::string nccl_message(ncclResult_t rc, ncclComm_t comm) {
  std::string m = ncclGetErrorString(rc);
  const char* last = comm != nullptr ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') m += std::string(" (") + last + ")";
  return m;
}

// A group's completion: the CUDA event recorded on the stream after it.
class NcclLaunched final : public GroupedBackend::Launched {
 public:
  explicit NcclLaunched(cudaEvent_t ev) : ev_(ev) {}
  ~NcclLaunched() override { (void)cudaEventDestroy(ev_); }
  bool done() override {
    const cudaError_t q = cudaEventQuery(ev_);
    if (q == cudaSuccess) return true;
    if (q == cudaErrorNotReady) return false;
    device::detail::throw_cuda(q, "cudaEventQuery (NCCL group)", __FILE__, __LINE__);
  }

 private:
  cudaEvent_t ev_;
};

// What each rank tells the others before the communicator exists.
struct Hello {
  std::int32_t status = 0;  // 0: ok; otherwise the ErrorCode of this rank's failure, plus one
  std::int32_t device = -1;
  std::array<char, 64> host{};
  std::array<char, 192> message{};
};

void set_text(std::array<char, 64>& dst, const std::string& s) {
  std::strncpy(dst.data(), s.c_str(), dst.size() - 1);
}
void set_text(std::array<char, 192>& dst, const std::string& s) {
  std::strncpy(dst.data(), s.c_str(), dst.size() - 1);
}

std::vector<Hello> exchange_hello(Backend& control, const Hello& mine) {
  const auto n = static_cast<std::size_t>(control.size());
  std::vector<Hello> all(n);
  control.allgatherv(&mine, all.data(), std::vector<std::size_t>(n, sizeof(Hello)));
  return all;
}

// The first failure among the ranks' statuses as an error on this rank (its own message when it is
// the failed one), or nothing when every rank succeeded.
void throw_first_failure(const std::vector<Hello>& all, int me, const char* stage) {
  for (std::size_t r = 0; r < all.size(); ++r) {
    if (all[r].status == 0) continue;
    const auto code = static_cast<ErrorCode>(all[r].status - 1);
    if (static_cast<int>(r) == me) throw Error(code, me, std::string(all[r].message.data()));
    throw Error(code, me,
                "rank " + std::to_string(r) + " failed " + stage + ": " + std::string(all[r].message.data()));
  }
}

}  // namespace

// Throws Error(kBackend) for a failed NCCL call, through `ops` (an Ops, which aborts first);
// ncclInProgress is not a failure in non-blocking mode (see Ops::settle).
#define SPARCOL_NCCL_CHECK(ops, call)                                          \
  do {                                                                         \
    const ncclResult_t sparcol_nccl_rc_ = (call);                              \
    if (sparcol_nccl_rc_ != ncclSuccess && sparcol_nccl_rc_ != ncclInProgress) \
      (ops).fail_call(#call, sparcol_nccl_rc_);                                \
  } while (0)

namespace {

// Helpers with access to the backend's state, kept out of the header.
struct Ops {
  NcclBackend& b;
  NcclBackend::Impl& s;

  [[noreturn]] void fail(ErrorCode code, const std::string& what) {
    const std::string note = abort();
    throw Error(code, b.rank(), what + note);
  }

  // Idempotent: frees the communicator's resources and stops its kernels.
  std::string abort() {
    if (s.aborted || s.comm == nullptr) return {};
    s.aborted = true;
    (void)ncclCommAbort(s.comm);
    s.comm = nullptr;
    return "; the NCCL communicator was aborted";
  }

  [[noreturn]] void fail_call(const char* call, ncclResult_t rc) {
    const std::string msg = std::string("NCCL call failed: ") + call + ": " + nccl_message(rc, s.comm);
    s.abort_reason = msg;
    fail(ErrorCode::kBackend, msg);
  }

  void check_alive() const {
    SPARCOL_CHECK(!s.aborted, ErrorCode::kBackend, b.rank(),
                  "nccl: the communicator was aborted after an earlier error" +
                      (s.abort_reason.empty() ? std::string() : " (" + s.abort_reason + ")"));
  }

  // Non-blocking mode: waits until the last call's work is enqueued, or fails.
  void settle(const char* what, std::chrono::steady_clock::time_point until) {
    unsigned spins = 0;
    for (;;) {
      ncclResult_t st = ncclSuccess;
      SPARCOL_NCCL_CHECK(*this, ncclCommGetAsyncError(s.comm, &st));
      if (st == ncclSuccess) return;
      if (st != ncclInProgress) {
        s.abort_reason = std::string(what) + ": " + nccl_message(st, s.comm);
        fail(ErrorCode::kBackend, "NCCL failed in " + s.abort_reason);
      }
      if ((++spins & 15u) == 0 && std::chrono::steady_clock::now() > until) {
        s.abort_reason = std::string("timed out in ") + what;
        fail(ErrorCode::kTimeout,
             "nccl: " + s.abort_reason +
                 " (a rank is dead, stopped or calling something else; SPARCOL_TIMEOUT_S "
                 "sets the limit)");
      }
      std::this_thread::yield();
    }
  }
};

}  // namespace

std::string NcclBackend::library_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}

std::unique_ptr<NcclBackend> NcclBackend::create(std::unique_ptr<Backend> control, int device) {
  SPARCOL_CHECK(control != nullptr && control->accepts(MemKind::kHost), ErrorCode::kInternal, -1,
                "NcclBackend::create needs a host control backend");
  const int me = control->rank();
  // 1. Every rank's device, checked before NCCL is involved, so that a bad ordinal on one rank is
  //    an error on every rank instead of a hang in the communicator's creation.
  Hello mine;
  char host[64] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  set_text(mine.host, host);
  mine.device = device;
  try {
    device::set_device(device);
  } catch (const Error& e) {
    mine.status = static_cast<std::int32_t>(e.code()) + 1;
    set_text(mine.message, "CUDA device for NCCL: " + e.message());
  }
  const auto hello = exchange_hello(*control, mine);
  throw_first_failure(hello, me, "to select its CUDA device");
  for (std::size_t a = 0; a < hello.size(); ++a) {
    for (std::size_t b = a + 1; b < hello.size(); ++b) {
      if (hello[a].device != hello[b].device || std::strcmp(hello[a].host.data(), hello[b].host.data()) != 0)
        continue;
      throw Error(ErrorCode::kInvalidArgument, me,
                  "ranks " + std::to_string(a) + " and " + std::to_string(b) + " both use CUDA device " +
                      std::to_string(hello[a].device) + " on host " + hello[a].host.data() +
                      ": NCCL needs a GPU of its own for every rank (start at most as many ranks per node "
                      "as it has GPUs)");
    }
  }
  return std::unique_ptr<NcclBackend>(new NcclBackend(std::move(control), device));
}

NcclBackend::NcclBackend(std::unique_ptr<Backend> control, int device)
    : GroupedBackend(std::move(control)), impl_(std::make_unique<Impl>()), device_(device) {
  Backend& ctl = this->control();
  const int me = rank();
  // 2. The unique id: drawn by rank 0 and broadcast with its status.
  struct Id {
    std::int32_t status = 0;
    std::array<char, 192> message{};
    ncclUniqueId id{};
  } id;
  if (me == 0) {
    const ncclResult_t rc = ncclGetUniqueId(&id.id);
    if (rc != ncclSuccess) {
      id.status = static_cast<std::int32_t>(ErrorCode::kBackend) + 1;
      set_text(id.message, std::string("ncclGetUniqueId failed: ") + nccl_message(rc, nullptr));
    }
  }
  ctl.broadcast(&id, sizeof id, 0);
  if (id.status != 0) {
    throw Error(
        static_cast<ErrorCode>(id.status - 1), me,
        me == 0 ? std::string(id.message.data()) : "rank 0 failed: " + std::string(id.message.data()));
  }
  // 3. The stream and the non-blocking communicator.
  SPARCOL_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  Ops ops{*this, *impl_};
  Hello status;
  try {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    SPARCOL_NCCL_CHECK(ops, ncclCommInitRankConfig(&impl_->comm, size(), id.id, me, &config));
    ops.settle("the NCCL communicator's creation", deadline());
  } catch (const Error& e) {
    status.status = static_cast<std::int32_t>(e.code()) + 1;
    set_text(status.message, e.message());
  }
  // 4. Every rank learns whether every other rank has a communicator.
  const auto all = exchange_hello(ctl, status);
  try {
    throw_first_failure(all, me, "to create its NCCL communicator");
  } catch (...) {
    ops.abort();
    (void)cudaStreamDestroy(impl_->stream);
    impl_->stream = nullptr;
    throw;
  }
}

NcclBackend::~NcclBackend() {
  if (!impl_) return;
  Ops ops{*this, *impl_};
  if (!impl_->aborted && impl_->comm != nullptr) {
    // Let queued work finish (bounded by the timeout), then release the communicator without
    // blocking on peers: finalize, poll, destroy. Anything that does not finish in time is aborted.
    bool clean = false;
    try {
      wait_stream("shutdown", -1);
      const ncclResult_t rc = ncclCommFinalize(impl_->comm);
      if (rc == ncclSuccess || rc == ncclInProgress) {
        ops.settle("the NCCL communicator's finalisation", deadline());
        clean = true;
      }
    } catch (const Error&) {
      clean = false;
    }
    if (clean && impl_->comm != nullptr) {
      (void)ncclCommDestroy(impl_->comm);
      impl_->comm = nullptr;
    } else {
      ops.abort();
    }
  }
  if (impl_->stream != nullptr) (void)cudaStreamDestroy(impl_->stream);
  impl_->stream = nullptr;
}

void* NcclBackend::stream_handle() const {
  return impl_->stream;
}

bool NcclBackend::aborted() const {
  return impl_->aborted;
}

std::string NcclBackend::abort_transport() {
  if (impl_->abort_reason.empty()) impl_->abort_reason = "a wait timed out";
  return Ops{*this, *impl_}.abort();
}

void NcclBackend::poll_failure() {
  Ops ops{*this, *impl_};
  ops.check_alive();
  ncclResult_t st = ncclSuccess;
  SPARCOL_NCCL_CHECK(ops, ncclCommGetAsyncError(impl_->comm, &st));
  if (st != ncclSuccess && st != ncclInProgress) {
    impl_->abort_reason = "asynchronous error: " + nccl_message(st, impl_->comm);
    ops.fail(ErrorCode::kBackend, "NCCL reported an " + impl_->abort_reason);
  }
}

void NcclBackend::check_buffer(const void* buf, const char* what) const {
  Ops{*const_cast<NcclBackend*>(this), *impl_}.check_alive();
  try {
    device::require_device_pointer(buf, what);
  } catch (const Error& e) {
    throw Error(e.code(), rank(), e.message());
  }
}

std::unique_ptr<GroupedBackend::Launched> NcclBackend::launch(const std::vector<Op>& ops_in) {
  Ops ops{*this, *impl_};
  ops.check_alive();
  SPARCOL_NCCL_CHECK(ops, ncclGroupStart());
  for (const Op& o : ops_in) {
    ncclResult_t rc = o.is_send ? ncclSend(o.buf, o.bytes, ncclUint8, o.peer, impl_->comm, impl_->stream)
                                : ncclRecv(o.buf, o.bytes, ncclUint8, o.peer, impl_->comm, impl_->stream);
    if (rc != ncclSuccess && rc != ncclInProgress) {
      (void)ncclGroupEnd();
      ops.fail_call(o.is_send ? "ncclSend" : "ncclRecv", rc);
    }
  }
  SPARCOL_NCCL_CHECK(ops, ncclGroupEnd());
  const std::string what = "a group of " + std::to_string(ops_in.size()) +
                           " NCCL sends/receives (first with rank " + std::to_string(ops_in.front().peer) +
                           ")";
  ops.settle(what.c_str(), deadline());
  cudaEvent_t ev = nullptr;
  SPARCOL_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  const cudaError_t rec = cudaEventRecord(ev, impl_->stream);
  if (rec != cudaSuccess) {
    (void)cudaEventDestroy(ev);
    device::detail::throw_cuda(rec, "cudaEventRecord (NCCL group)", __FILE__, __LINE__);
  }
  return std::make_unique<NcclLaunched>(ev);
}

void NcclBackend::wait_stream(const char* what, int peer) {
  cudaEvent_t ev = nullptr;
  SPARCOL_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  NcclLaunched done(ev);
  SPARCOL_CUDA_CHECK(cudaEventRecord(ev, impl_->stream));
  const auto until = deadline();
  unsigned spins = 0;
  while (!done.done()) {
    poll_failure();
    if ((++spins & 15u) == 0 && Clock::now() > until)
      fail_timeout(RequestInfo{false, peer, kTagReduceRef, 0}, what);
    std::this_thread::yield();
  }
}

void NcclBackend::allreduce_sum(float* data, std::size_t count) {
  ActivityScope scope(kTagReduceRef, -1);
  if (count == 0) return;
  check_buffer(data, "nccl all-reduce");
  flush();  // earlier point-to-point operations go first, in call order
  Ops ops{*this, *impl_};
  SPARCOL_NCCL_CHECK(ops, ncclAllReduce(data, data, count, ncclFloat, ncclSum, impl_->comm, impl_->stream));
  ops.settle("ncclAllReduce", deadline());
  wait_stream("nccl all-reduce", -1);
}

void NcclBackend::allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) {
  ActivityScope scope(kTagAllgather, -1);
  const int me = rank(), n = size();
  SPARCOL_CHECK_ARG(recv_bytes.size() == static_cast<std::size_t>(n), me,
                    "allgatherv: recv_bytes has " + std::to_string(recv_bytes.size()) + " entries for " +
                        std::to_string(n) + " ranks");
  std::size_t total = 0;
  for (auto b : recv_bytes) total += b;
  if (total == 0) return;
  check_buffer(recv, "nccl all-gather-v: receive buffer");
  if (recv_bytes[static_cast<std::size_t>(me)] > 0) check_buffer(send, "nccl all-gather-v: send buffer");
  flush();
  Ops ops{*this, *impl_};
  // One broadcast per contributing rank, in one group: each rank's block lands in its place on every
  // rank (at the root, from `send`; in place when send already is that place).
  SPARCOL_NCCL_CHECK(ops, ncclGroupStart());
  std::size_t offset = 0;
  for (int r = 0; r < n; ++r) {
    const std::size_t bytes = recv_bytes[static_cast<std::size_t>(r)];
    auto* dst = static_cast<char*>(recv) + offset;
    offset += bytes;
    if (bytes == 0) continue;
    const void* src = r == me ? send : dst;
    const ncclResult_t rc = ncclBroadcast(src, dst, bytes, ncclUint8, r, impl_->comm, impl_->stream);
    if (rc != ncclSuccess && rc != ncclInProgress) {
      (void)ncclGroupEnd();
      ops.fail_call("ncclBroadcast (all-gather-v)", rc);
    }
  }
  SPARCOL_NCCL_CHECK(ops, ncclGroupEnd());
  ops.settle("the all-gather-v's broadcasts", deadline());
  wait_stream("nccl all-gather-v", -1);
}

void NcclBackend::broadcast(void* buf, std::size_t bytes, int root) {
  ActivityScope scope(kTagBroadcast, root);
  SPARCOL_CHECK_ARG(root >= 0 && root < size(), rank(),
                    "broadcast: root " + std::to_string(root) + " out of range");
  if (bytes == 0) return;
  check_buffer(buf, "nccl broadcast");
  flush();
  Ops ops{*this, *impl_};
  SPARCOL_NCCL_CHECK(ops, ncclBroadcast(buf, buf, bytes, ncclUint8, root, impl_->comm, impl_->stream));
  ops.settle("ncclBroadcast", deadline());
  wait_stream("nccl broadcast", root);
}

}  // namespace sparcol::comm
