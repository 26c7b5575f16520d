#include "sparcol/comm/mpi_backend.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"

namespace sparcol::comm {

namespace {

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<std::size_t>(len));
}

// Checks an MPI return code: a failure becomes Error(kBackend) naming the call and the rank.
#define SPARCOL_MPI_CHECK(call, rank)                                                                    \
  do {                                                                                                   \
    const int sparcol_mpi_rc_ = (call);                                                                  \
    if (sparcol_mpi_rc_ != MPI_SUCCESS) {                                                                \
      ::sparcol::detail::throw_error(                                                                    \
          ::sparcol::ErrorCode::kBackend, (rank),                                                        \
          std::string("MPI call failed: ") + #call + ": " + mpi_error_string(sparcol_mpi_rc_), __FILE__, \
          __LINE__);                                                                                     \
    }                                                                                                    \
  } while (0)

// Messages are split into pieces of at most this many bytes so that MPI's int counts never overflow.
constexpr std::size_t kMaxPiece = std::size_t{1} << 30;

// Who is to blame for a timeout (docs/reliability.md). In a chain of waits (a ring: rank 1 waits for
// rank 0, which waits for the stopped rank 2) the first rank to time out is not always the one next to
// the failure. So every rank in a bounded wait answers, from its polling loop, the question "whom are
// you waiting for?" (serve_wait_queries), and a rank that timed out asks it along the chain
// (MpiBackend::explain_wait). Answer: {peer waited for, tag waited on, milliseconds waited}.
using SteadyClock = std::chrono::steady_clock;

void serve_wait_queries(MPI_Comm comm, int peer, int tag, SteadyClock::time_point since) {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kTagWaitQuery, comm, &flag, &st) != MPI_SUCCESS || flag == 0) return;
    int query = 0;
    if (MPI_Recv(&query, 1, MPI_INT, st.MPI_SOURCE, kTagWaitQuery, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - since).count();
    int reply[3] = {peer, tag, static_cast<int>(std::min<long long>(ms, INT_MAX))};
    MPI_Send(reply, 3, MPI_INT, st.MPI_SOURCE, kTagWaitReply, comm);  // 12 bytes: sent eagerly
  }
}

// Asks `peer` the question and waits for its answer until `until`, answering others meanwhile.
bool ask_wait(MPI_Comm comm, int peer, int (&reply)[3], SteadyClock::time_point until,
              const RequestInfo& mine, SteadyClock::time_point my_since) {
  static const int kQuery = 0;  // static: a send still pending at the end is freed, not waited for
  MPI_Request rr = MPI_REQUEST_NULL, sr = MPI_REQUEST_NULL;
  if (MPI_Irecv(reply, 3, MPI_INT, peer, kTagWaitReply, comm, &rr) != MPI_SUCCESS) return false;
  MPI_Isend(&kQuery, 1, MPI_INT, peer, kTagWaitQuery, comm, &sr);
  int got = 0;
  while (got == 0 && SteadyClock::now() < until) {
    MPI_Test(&rr, &got, MPI_STATUS_IGNORE);
    serve_wait_queries(comm, mine.peer, mine.tag, my_since);
    if (got == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (got == 0) {
    MPI_Cancel(&rr);
    MPI_Status st;
    MPI_Wait(&rr, &st);
    int cancelled = 0;
    MPI_Test_cancelled(&st, &cancelled);
    got = cancelled == 0 ? 1 : 0;  // the answer came in after all
  }
  if (sr != MPI_REQUEST_NULL) {
    int done = 0;
    MPI_Test(&sr, &done, MPI_STATUS_IGNORE);
    if (done == 0) MPI_Request_free(&sr);
  }
  return got != 0;
}

// Page-locked staging buffers for device memory, reused across messages. Requests hold the pool
// through a shared_ptr, so a request that outlives its backend (while an exception unwinds) still
// returns its buffer safely.
class StagingPool {
 public:
  using Buffer = device::PinnedBuffer<std::byte>;

  // A buffer of at least `bytes` (capacity rounded up to a power of two, at least 64 KiB, so that
  // messages of similar size share buffers).
  Buffer acquire(std::size_t bytes) {
    std::lock_guard lock(mu_);
    std::size_t best = free_.size();
    for (std::size_t i = 0; i < free_.size(); ++i) {
      if (free_[i].size() >= bytes && (best == free_.size() || free_[i].size() < free_[best].size()))
        best = i;
    }
    if (best < free_.size()) {
      Buffer b = std::move(free_[best]);
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
      return b;
    }
    std::size_t cap = std::size_t{1} << 16;
    while (cap < bytes) cap *= 2;
    return Buffer(cap, "MPI staging buffer for device memory");
  }

  void release(Buffer b) {
    std::lock_guard lock(mu_);
    if (free_.size() < kKeep) free_.push_back(std::move(b));
  }

 private:
  static constexpr std::size_t kKeep = 32;
  std::mutex mu_;
  std::vector<Buffer> free_;
};

// Keeps a staging buffer that MPI may still access (a request abandoned while pending) alive until
// the process ends: freeing it could let MPI write into memory that was handed out again.
void bury(StagingPool::Buffer b) {
  static std::mutex mu;
  static auto* graveyard = new std::vector<StagingPool::Buffer>();  // never freed, on purpose
  std::lock_guard lock(mu);
  graveyard->push_back(std::move(b));
}

// A message to or from device memory: the pinned buffer MPI reads or writes, and (for a receive)
// the device buffer it goes to when the request completes.
struct Staging {
  std::shared_ptr<StagingPool> pool;
  StagingPool::Buffer host;
  void* device_dst = nullptr;  // receives only
  std::size_t bytes = 0;

  // After the receive completed: copy to the device, return the buffer. Idempotent.
  void deliver() {
    if (pool == nullptr) return;
    if (device_dst != nullptr) device::detail::copy_bytes(device_dst, host.data(), bytes);
    pool->release(std::move(host));
    pool.reset();
  }
  // Without delivering (a cancelled receive, a finished send).
  void drop() {
    if (pool == nullptr) return;
    pool->release(std::move(host));
    pool.reset();
  }
};

class MpiRequest final : public RequestImpl {
 public:
  MpiRequest(int rank, MPI_Comm comm, std::vector<std::size_t> piece_bytes)
      : rank_(rank),
        comm_(comm),
        piece_bytes_(std::move(piece_bytes)),
        reqs_(piece_bytes_.size(), MPI_REQUEST_NULL),
        status_(piece_bytes_.size()) {}

  ~MpiRequest() override {
    // Pending at destruction: only while an exception unwinds. Cancel receives, release the rest;
    // never throw from here. A staging buffer MPI may still write into is leaked, not reused.
    bool pending = false;
    for (auto& r : reqs_) {
      if (r == MPI_REQUEST_NULL) continue;
      pending = true;
      if (!info.is_send) MPI_Cancel(&r);
      MPI_Request_free(&r);
    }
    if (pending && staging_.pool != nullptr) {
      bury(std::move(staging_.host));
      staging_.pool.reset();
    }
    staging_.drop();
  }

  void set_staging(Staging s) { staging_ = std::move(s); }

  std::vector<MPI_Request>& handles() { return reqs_; }

  // For MpiBackend::wait_all, which tests the handles of many requests in one MPI call: records that
  // piece j completed (MPI has already released its handle) with status `st`.
  void mark_done(std::size_t j, const MPI_Status& st) {
    reqs_[j] = MPI_REQUEST_NULL;
    status_[j] = st;
  }
  // After mark_done: throws what test() would for the pieces' errors (`err`: the MPI_ERROR of a piece
  // that reported one, else MPI_SUCCESS) and, once every piece is done, checks the received size.
  // Returns true when the whole request is complete.
  bool verify(int err) {
    check(err, status_);
    for (auto r : reqs_)
      if (r != MPI_REQUEST_NULL) return false;
    staging_.deliver();
    return true;
  }

  bool wait_until(std::chrono::steady_clock::time_point deadline) override {
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      check(MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), status_.data()), status_);
      staging_.deliver();
      return true;
    }
    unsigned spins = 0;
    const auto since = SteadyClock::now();
    while (!test()) {
      if ((++spins & 63u) == 0) {
        serve_wait_queries(comm_, info.peer, info.tag, since);
        if (SteadyClock::now() > deadline) return false;
      }
    }
    return true;
  }

  bool test() override {
    int flag = 0;
    check(MPI_Testall(static_cast<int>(reqs_.size()), reqs_.data(), &flag, status_.data()), status_);
    if (flag != 0) staging_.deliver();
    return flag != 0;
  }

 private:
  void check(int rc, const std::vector<MPI_Status>& st) {
    const char* what = info.is_send ? "send to" : "receive from";
    if (rc == MPI_ERR_IN_STATUS) {
      for (const auto& s : st)
        if (s.MPI_ERROR != MPI_SUCCESS && s.MPI_ERROR != MPI_ERR_PENDING) rc = s.MPI_ERROR;
    }
    if (rc != MPI_SUCCESS) {
      int cls = 0;
      MPI_Error_class(rc, &cls);
      const auto code = cls == MPI_ERR_TRUNCATE ? ErrorCode::kMismatch : ErrorCode::kBackend;
      throw Error(code, rank_,
                  std::string("MPI ") + what + " rank " + std::to_string(info.peer) + " (tag " +
                      std::to_string(info.tag) + ", " + std::to_string(info.bytes) +
                      " bytes) failed: " + mpi_error_string(rc) +
                      (cls == MPI_ERR_TRUNCATE ? " (the peer sent more bytes than this rank expected)" : ""));
    }
    if (info.is_send) return;
    // A completed receive must have exactly the expected size (Backend contract).
    bool all_done = true;
    for (auto r : reqs_) all_done = all_done && r == MPI_REQUEST_NULL;
    if (!all_done) return;
    for (std::size_t i = 0; i < st.size(); ++i) {
      int got = 0;
      MPI_Get_count(&st[i], MPI_BYTE, &got);
      if (static_cast<std::size_t>(got) != piece_bytes_[i]) {
        throw Error(ErrorCode::kMismatch, rank_,
                    std::string("MPI receive from rank ") + std::to_string(info.peer) + " (tag " +
                        std::to_string(info.tag) + ") expected " + std::to_string(info.bytes) +
                        " bytes but the peer sent fewer (" + std::to_string(got) + " in piece " +
                        std::to_string(i) + ")");
      }
    }
  }

  int rank_;
  MPI_Comm comm_;  // where this rank answers wait queries while it waits (serve_wait_queries)
  std::vector<std::size_t> piece_bytes_;
  std::vector<MPI_Request> reqs_;
  std::vector<MPI_Status> status_;
  Staging staging_;  // device memory only
};

std::vector<std::size_t> split_pieces(std::size_t bytes) {
  std::vector<std::size_t> pieces;
  do {
    const std::size_t p = std::min(bytes, kMaxPiece);
    pieces.push_back(p);
    bytes -= p;
  } while (bytes > 0);
  return pieces;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// MpiEnvironment
// ------------------------------------------------------------------------------------------------

namespace {
int mpi_thread_constant(ThreadLevel level) {
  switch (level) {
    case ThreadLevel::kSingle:
      return MPI_THREAD_SINGLE;
    case ThreadLevel::kFunneled:
      return MPI_THREAD_FUNNELED;
    case ThreadLevel::kSerialized:
      return MPI_THREAD_SERIALIZED;
    case ThreadLevel::kMultiple:
      break;
  }
  return MPI_THREAD_MULTIPLE;
}
}  // namespace

const char* to_string(ThreadLevel level) noexcept {
  switch (level) {
    case ThreadLevel::kSingle:
      return "MPI_THREAD_SINGLE";
    case ThreadLevel::kFunneled:
      return "MPI_THREAD_FUNNELED";
    case ThreadLevel::kSerialized:
      return "MPI_THREAD_SERIALIZED";
    case ThreadLevel::kMultiple:
      break;
  }
  return "MPI_THREAD_MULTIPLE";
}

MpiEnvironment::MpiEnvironment(int* argc, char*** argv, ThreadLevel required) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  SPARCOL_MPI_CHECK(MPI_Init_thread(argc, argv, mpi_thread_constant(required), &provided), -1);
  owns_ = true;
  // Errors on MPI_COMM_WORLD come back as codes too; sparcol turns them into exceptions.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiEnvironment::~MpiEnvironment() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

bool MpiEnvironment::active() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

ThreadLevel MpiEnvironment::thread_level() {
  if (!active()) return ThreadLevel::kSingle;
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  if (provided >= MPI_THREAD_MULTIPLE) return ThreadLevel::kMultiple;
  if (provided >= MPI_THREAD_SERIALIZED) return ThreadLevel::kSerialized;
  if (provided >= MPI_THREAD_FUNNELED) return ThreadLevel::kFunneled;
  return ThreadLevel::kSingle;
}

int MpiEnvironment::world_rank() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return -1;
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int MpiEnvironment::world_size() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return 1;
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

void MpiEnvironment::abort(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

std::string MpiEnvironment::library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(buf, &len);
  std::string v(buf, static_cast<std::size_t>(len));
  if (auto nl = v.find_first_of(",\n"); nl != std::string::npos) v.resize(nl);
  return v;
}

int MpiEnvironment::node_local_rank() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return 0;
  MPI_Comm node = MPI_COMM_NULL;
  SPARCOL_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), -1);
  int r = 0;
  const int rc = MPI_Comm_rank(node, &r);
  MPI_Comm_free(&node);
  SPARCOL_MPI_CHECK(rc, -1);
  return r;
}

// ------------------------------------------------------------------------------------------------
// MpiBackend
// ------------------------------------------------------------------------------------------------

struct MpiBackend::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  // neighbor_alltoall's graph communicator and the list it was made for.
  MPI_Comm graph = MPI_COMM_NULL;
  std::vector<int> graph_neighbors;
  // Whether a GPU exists (asked once): without one, no pointer can be device memory and no buffer
  // is ever queried.
  bool gpu = device::has_gpu();
  std::shared_ptr<StagingPool> pool = std::make_shared<StagingPool>();

  bool on_device(const void* p) const {
    return gpu && p != nullptr && device::pointer_kind(p) == MemKind::kDevice;
  }
  // A staging buffer holding a copy of `bytes` bytes of device memory at d_src.
  Staging stage_from(const void* d_src, std::size_t bytes) const {
    Staging s{pool, pool->acquire(bytes), nullptr, bytes};
    device::detail::copy_bytes(s.host.data(), d_src, bytes);
    return s;
  }
  // A staging buffer that receives `bytes` bytes for device memory at d_dst (see Staging::deliver).
  Staging stage_to(void* d_dst, std::size_t bytes) const {
    return Staging{pool, pool->acquire(bytes), d_dst, bytes};
  }
};

namespace {
std::unique_ptr<MpiBackend::Impl> dup_comm(MPI_Comm parent) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  SPARCOL_CHECK(
      initialized, ErrorCode::kBackend, -1,
      "MpiBackend needs MPI to be initialised first (create a sparcol::comm::MpiEnvironment in main)");
  auto impl = std::make_unique<MpiBackend::Impl>();
  SPARCOL_MPI_CHECK(MPI_Comm_dup(parent, &impl->comm), -1);
  SPARCOL_MPI_CHECK(MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN), -1);
  return impl;
}
}  // namespace

std::unique_ptr<MpiBackend> MpiBackend::world() {
  return std::unique_ptr<MpiBackend>(new MpiBackend(dup_comm(MPI_COMM_WORLD)));
}

std::unique_ptr<MpiBackend> MpiBackend::from_fortran_handle(int fortran_comm) {
  return std::unique_ptr<MpiBackend>(new MpiBackend(dup_comm(MPI_Comm_f2c(fortran_comm))));
}

std::string MpiBackend::concurrent_use_reason() const {
  const ThreadLevel level = MpiEnvironment::thread_level();
  if (level == ThreadLevel::kMultiple) return {};
  return std::string("two threads calling MPI at once need MPI_THREAD_MULTIPLE; MPI provides ") +
         to_string(level);
}

std::unique_ptr<Backend> MpiBackend::duplicate() {
  std::unique_ptr<Backend> b(new MpiBackend(dup_comm(impl_->comm)));
  b->set_timeout(timeout());
  b->set_check_collectives(check_collectives());
  return b;
}

MpiBackend::MpiBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  SPARCOL_MPI_CHECK(MPI_Comm_rank(impl_->comm, &rank_), -1);
  SPARCOL_MPI_CHECK(MPI_Comm_size(impl_->comm, &size_), rank_);
}

MpiBackend::~MpiBackend() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && impl_ && impl_->graph != MPI_COMM_NULL) MPI_Comm_free(&impl_->graph);
  if (!finalized && impl_ && impl_->comm != MPI_COMM_NULL) MPI_Comm_free(&impl_->comm);
}

void MpiBackend::neighbor_alltoall(std::span<const int> neighbors, const void* send, void* recv,
                                   std::size_t bytes) {
  ActivityScope scope(kTagReduceRef, -1);
  SPARCOL_CHECK_ARG(bytes <= static_cast<std::size_t>(INT_MAX), rank_,
                    "neighbor_alltoall: " + std::to_string(bytes) + " bytes per neighbour exceed INT_MAX");
  const std::vector<int> nb(neighbors.begin(), neighbors.end());
  if (impl_->graph == MPI_COMM_NULL || impl_->graph_neighbors != nb) {
    if (impl_->graph != MPI_COMM_NULL) MPI_Comm_free(&impl_->graph);
    const int deg = static_cast<int>(nb.size());
    SPARCOL_MPI_CHECK(
        MPI_Dist_graph_create_adjacent(impl_->comm, deg, deg == 0 ? MPI_UNWEIGHTED : nb.data(),
                                       MPI_UNWEIGHTED, deg, deg == 0 ? MPI_UNWEIGHTED : nb.data(),
                                       MPI_UNWEIGHTED, MPI_INFO_NULL, 0, &impl_->graph),
        rank_);
    SPARCOL_MPI_CHECK(MPI_Comm_set_errhandler(impl_->graph, MPI_ERRORS_RETURN), rank_);
    impl_->graph_neighbors = nb;
  }
  const std::size_t deg = nb.size();
  std::vector<int> counts(deg, static_cast<int>(bytes)), displs(deg);
  for (std::size_t k = 0; k < deg; ++k) displs[k] = static_cast<int>(k * bytes);
  SPARCOL_CHECK_ARG(deg * bytes <= static_cast<std::size_t>(INT_MAX), rank_,
                    "neighbor_alltoall: " + std::to_string(deg * bytes) + " bytes in all exceed INT_MAX");
  SPARCOL_MPI_CHECK(MPI_Neighbor_alltoallv(send, counts.data(), displs.data(), MPI_BYTE, recv, counts.data(),
                                           displs.data(), MPI_BYTE, impl_->graph),
                    rank_);
}

Request MpiBackend::isend(const void* buf, std::size_t bytes, int peer, int tag) {
  SPARCOL_CHECK_ARG(
      peer >= 0 && peer < size_, rank_,
      "isend: peer " + std::to_string(peer) + " out of range [0, " + std::to_string(size_) + ")");
  auto pieces = split_pieces(bytes);
  auto req = std::make_unique<MpiRequest>(rank_, impl_->comm, pieces);
  req->info = RequestInfo{true, peer, tag, bytes};
  const auto* p = static_cast<const char*>(buf);
  if (bytes > 0 && impl_->on_device(buf)) {
    Staging st = impl_->stage_from(buf, bytes);
    p = reinterpret_cast<const char*>(st.host.data());
    req->set_staging(std::move(st));
  }
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    SPARCOL_MPI_CHECK(
        MPI_Isend(p, static_cast<int>(pieces[i]), MPI_BYTE, peer, tag, impl_->comm, &req->handles()[i]),
        rank_);
    p += pieces[i];
  }
  count_send(bytes);
  return Request(std::move(req));
}

Request MpiBackend::irecv(void* buf, std::size_t bytes, int peer, int tag) {
  SPARCOL_CHECK_ARG(
      peer >= 0 && peer < size_, rank_,
      "irecv: peer " + std::to_string(peer) + " out of range [0, " + std::to_string(size_) + ")");
  auto pieces = split_pieces(bytes);
  auto req = std::make_unique<MpiRequest>(rank_, impl_->comm, pieces);
  req->info = RequestInfo{false, peer, tag, bytes};
  auto* p = static_cast<char*>(buf);
  if (bytes > 0 && impl_->on_device(buf)) {
    Staging st = impl_->stage_to(buf, bytes);
    p = reinterpret_cast<char*>(st.host.data());
    req->set_staging(std::move(st));
  }
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    SPARCOL_MPI_CHECK(
        MPI_Irecv(p, static_cast<int>(pieces[i]), MPI_BYTE, peer, tag, impl_->comm, &req->handles()[i]),
        rank_);
    p += pieces[i];
  }
  count_recv(bytes);
  return Request(std::move(req));
}

void MpiBackend::wait_all(std::span<Request> requests) {
  // Every pending MPI handle of every request goes into one array, and each poll is one MPI_Testsome:
  // one pass of MPI's progress engine per poll, however many requests are pending. (Testing each
  // request on its own runs the progress engine, and with oversubscribed cores a yield, once per
  // request per poll.)
  const auto until = deadline();
  std::vector<MPI_Request> handles;
  std::vector<std::pair<std::size_t, std::size_t>> where;  // (request index, piece index) per handle
  int first_tag = -1, first_peer = -1;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto& r = requests[i];
    if (!r.pending()) continue;
    auto* m = dynamic_cast<MpiRequest*>(r.impl());
    SPARCOL_CHECK(m != nullptr, ErrorCode::kInternal, rank_,
                  "MpiBackend::wait_all given a request of another backend");
    if (first_tag < 0) {
      first_tag = m->info.tag;
      first_peer = m->info.peer;
    }
    for (std::size_t j = 0; j < m->handles().size(); ++j) {
      if (m->handles()[j] == MPI_REQUEST_NULL) continue;
      handles.push_back(m->handles()[j]);
      where.emplace_back(i, j);
    }
  }
  ActivityScope scope(first_tag, first_peer);
  const auto since = Clock::now();
  std::vector<int> done(handles.size());
  std::vector<MPI_Status> status(handles.size());
  std::size_t live = handles.size();
  unsigned spins = 0;
  while (live > 0) {
    int count = 0;
    const int rc =
        MPI_Testsome(static_cast<int>(handles.size()), handles.data(), &count, done.data(), status.data());
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) SPARCOL_MPI_CHECK(rc, rank_);
    if (count == MPI_UNDEFINED) break;  // no active handle left (cannot happen while live > 0)
    if (count > 0) {
      // First record every completion (MPI has freed those handles), then check: an error thrown
      // halfway must leave no request holding a freed handle.
      for (int c = 0; c < count; ++c) {
        const auto [i, j] = where[static_cast<std::size_t>(done[static_cast<std::size_t>(c)])];
        static_cast<MpiRequest*>(requests[i].impl())->mark_done(j, status[static_cast<std::size_t>(c)]);
      }
      live -= static_cast<std::size_t>(count);
      for (int c = 0; c < count; ++c) {
        const auto i = where[static_cast<std::size_t>(done[static_cast<std::size_t>(c)])].first;
        if (!requests[i].pending()) continue;  // several pieces of one request completed together
        const int err = rc == MPI_ERR_IN_STATUS ? status[static_cast<std::size_t>(c)].MPI_ERROR : MPI_SUCCESS;
        if (static_cast<MpiRequest*>(requests[i].impl())->verify(err == MPI_ERR_PENDING ? MPI_SUCCESS : err))
          requests[i].reset();
      }
      continue;
    }
    if ((++spins & 63u) == 0) {
      Request* first = nullptr;  // what this rank waits for now: its first pending request
      for (auto& r : requests)
        if (r.pending()) {
          first = &r;
          break;
        }
      if (first == nullptr) continue;
      serve_wait_queries(impl_->comm, first->impl()->info.peer, first->impl()->info.tag, since);
      if (Clock::now() > until) throw_timeout(first->impl()->info);
    }
  }
}

std::string MpiBackend::explain_wait(const RequestInfo& info) const {
  // Each hop waits at most `grace` for an answer; only the last (silent) hop costs it.
  const auto grace =
      std::clamp(timeout() / 4, std::chrono::milliseconds(1000), std::chrono::milliseconds(3000));
  const auto my_since = SteadyClock::now() - timeout();
  std::vector<bool> seen(static_cast<std::size_t>(size_), false);
  seen[static_cast<std::size_t>(rank_)] = true;
  std::string chain;
  int p = info.peer;
  for (int hop = 0; hop < size_; ++hop) {
    seen[static_cast<std::size_t>(p)] = true;
    int reply[3] = {-1, -1, 0};
    if (!ask_wait(impl_->comm, p, reply, SteadyClock::now() + grace, info, my_since)) {
      if (hop == 0) return {};  // the peer itself is silent: the plain message names it
      return chain + ", which does not answer: rank " + std::to_string(p) +
             " is dead, stopped, or calling a different operation";
    }
    const int q = reply[0];
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", reply[2] / 1000.0);
    chain += std::string(hop == 0 ? "; " : ", and ") + "rank " + std::to_string(p) + " is itself waiting (" +
             seconds + " s, in " + tag_name(reply[1]) + ")" +
             (q >= 0 && q < size_ ? " for rank " + std::to_string(q)
                                  : std::string(" for a message from any rank"));
    if (q < 0 || q >= size_) return chain;
    if (seen[static_cast<std::size_t>(q)]) {
      return chain + ": the ranks wait for each other in a cycle, so they are calling different operations";
    }
    p = q;
  }
  return chain;
}

void MpiBackend::allreduce_sum(float* data, std::size_t count) {
  ActivityScope scope(kTagReduceRef, -1);
  // Device memory: reduce a host copy, then copy the result back.
  Staging st;
  if (count > 0 && impl_->on_device(data)) {
    st = impl_->stage_from(data, count * sizeof(float));
    st.device_dst = data;
    data = reinterpret_cast<float*>(st.host.data());
  }
  std::size_t done = 0;
  while (done < count) {
    const std::size_t n = std::min<std::size_t>(count - done, INT_MAX);
    SPARCOL_MPI_CHECK(
        MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(n), MPI_FLOAT, MPI_SUM, impl_->comm),
        rank_);
    done += n;
  }
  st.deliver();
}

void MpiBackend::allreduce_bxor(std::uint64_t* data, std::size_t count) {
  ActivityScope scope(kTagReduceRef, -1);
  std::size_t done = 0;
  while (done < count) {
    const std::size_t n = std::min<std::size_t>(count - done, INT_MAX);
    SPARCOL_MPI_CHECK(
        MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(n), MPI_UINT64_T, MPI_BXOR, impl_->comm),
        rank_);
    done += n;
  }
}

void MpiBackend::allgatherv(const void* send, void* recv, std::span<const std::size_t> recv_bytes) {
  ActivityScope scope(kTagAllgather, -1);
  SPARCOL_CHECK_ARG(recv_bytes.size() == static_cast<std::size_t>(size_), rank_,
                    "allgatherv: recv_bytes has " + std::to_string(recv_bytes.size()) + " entries for " +
                        std::to_string(size_) + " ranks");
  std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
  std::size_t offset = 0;
  for (int r = 0; r < size_; ++r) {
    const auto ur = static_cast<std::size_t>(r);
    SPARCOL_CHECK_ARG(offset + recv_bytes[ur] <= static_cast<std::size_t>(INT_MAX), rank_,
                      "allgatherv: more than 2^31-1 bytes in total are not supported by MPI_Allgatherv");
    counts[ur] = static_cast<int>(recv_bytes[ur]);
    displs[ur] = static_cast<int>(offset);
    offset += recv_bytes[ur];
  }
  const auto mine = static_cast<std::size_t>(rank_);
  // A contribution already in place in the receive buffer must be passed as MPI_IN_PLACE.
  const bool in_place = send == static_cast<char*>(recv) + displs[mine];
  const void* src = in_place ? MPI_IN_PLACE : send;
  // Device memory: gather into a host buffer (holding this rank's block when in place) and copy it
  // back; a device send buffer is copied to the host first.
  Staging st_recv, st_send;
  if (offset > 0 && impl_->on_device(recv)) {
    st_recv = impl_->stage_to(recv, offset);
    if (in_place && counts[mine] > 0)
      device::detail::copy_bytes(st_recv.host.data() + displs[mine], send, recv_bytes[mine]);
    recv = st_recv.host.data();
  }
  if (!in_place && counts[mine] > 0 && impl_->on_device(send)) {
    st_send = impl_->stage_from(send, recv_bytes[mine]);
    src = st_send.host.data();
  }
  SPARCOL_MPI_CHECK(
      MPI_Allgatherv(src, counts[mine], MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE, impl_->comm),
      rank_);
  st_recv.deliver();
  st_send.drop();
}

void MpiBackend::broadcast(void* buf, std::size_t bytes, int root) {
  ActivityScope scope(kTagBroadcast, root);
  SPARCOL_CHECK_ARG(root >= 0 && root < size_, rank_,
                    "broadcast: root " + std::to_string(root) + " out of range");
  auto* p = static_cast<char*>(buf);
  // Device memory: broadcast a host copy (the root's holds its data), then copy it back.
  Staging st;
  if (bytes > 0 && impl_->on_device(buf)) {
    st = rank_ == root ? impl_->stage_from(buf, bytes) : impl_->stage_to(buf, bytes);
    if (rank_ != root) st.device_dst = buf;
    p = reinterpret_cast<char*>(st.host.data());
  }
  for (const std::size_t piece : split_pieces(bytes)) {
    SPARCOL_MPI_CHECK(MPI_Bcast(p, static_cast<int>(piece), MPI_BYTE, root, impl_->comm), rank_);
    p += piece;
  }
  st.deliver();
}

}  // namespace sparcol::comm
