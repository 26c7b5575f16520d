#include "sparcol/coll/agree.hpp"

#include <cstring>
#include <sstream>

#include "sparcol/core/error.hpp"

namespace sparcol::coll {

const char* to_string(CollOp op) {
  switch (op) {
    case CollOp::kNone:
      return "none";
    case CollOp::kRingAllreduce:
      return "ring_allreduce";
    case CollOp::kRbgsAllreduce:
      return "rbgs_allreduce";
    case CollOp::kSparseAllgather:
      return "sparse_allgather";
    case CollOp::kSignAllgather:
      return "sign_allgather";
    case CollOp::kDenseAllreduce:
      return "dense_allreduce";
    case CollOp::kDenseAllgatherv:
      return "dense_allgatherv";
    case CollOp::kBroadcast:
      return "broadcast";
    case CollOp::kExchange:
      return "optimizer_exchange";
    case CollOp::kSignRingAllreduce:
      return "sign_ring_allreduce";
    case CollOp::kSignCascade:
      return "sign_cascade_allreduce";
    case CollOp::kLiecAllreduce:
      return "liec_allreduce";
    case CollOp::kNeighborExchange:
      return "neighbor_exchange";
    case CollOp::kUser:
      return "user";
  }
  return "unknown";
}

std::string CallSignature::describe() const {
  std::ostringstream os;
  os << to_string(op) << "(count=" << count << ", k=" << k << ", seed=" << seed << ", step=" << step
     << ", tensor=" << tensor << ", call #" << sequence << ")";
  return os.str();
}

void allgather_small(comm::Backend& backend, const void* mine, std::size_t bytes, void* out, int tag) {
  const int n = backend.size();
  const int r = backend.rank();
  auto* dst = static_cast<std::byte*>(out);
  if (n == 1) {
    if (bytes != 0) std::memmove(dst, mine, bytes);
    return;
  }
  if (n <= kSmallDirectMaxRanks) {
    // One round: every contribution travels straight to every rank. log2(K) rounds of Bruck's
    // algorithm cost more than K-1 tiny concurrent messages at these sizes, and each round is a wait
    // for a peer to be scheduled when ranks share cores.
    if (bytes != 0) std::memmove(dst + static_cast<std::size_t>(r) * bytes, mine, bytes);
    std::vector<comm::Request> reqs;
    reqs.reserve(2 * static_cast<std::size_t>(n - 1));
    for (int i = 1; i < n; ++i) {
      const int from = (r - i + n) % n;
      reqs.push_back(backend.irecv(dst + static_cast<std::size_t>(from) * bytes, bytes, from, tag));
    }
    // Sent from the copy in `out`, so `mine` may alias `out`.
    const std::byte* own = dst + static_cast<std::size_t>(r) * bytes;
    for (int i = 1; i < n; ++i) reqs.push_back(backend.isend(own, bytes, (r + i) % n, tag));
    backend.wait_all(reqs);
    return;
  }
  // Bruck: tmp[i] holds the contribution of rank (r + i) mod n.
  std::vector<std::byte> tmp(static_cast<std::size_t>(n) * bytes);
  if (bytes != 0) std::memcpy(tmp.data(), mine, bytes);
  for (int dist = 1; dist < n; dist *= 2) {
    const int blocks = std::min(dist, n - dist);
    const int to = (r - dist + n) % n;
    const int from = (r + dist) % n;
    comm::Request reqs[2] = {backend.isend(tmp.data(), static_cast<std::size_t>(blocks) * bytes, to, tag),
                             backend.irecv(tmp.data() + static_cast<std::size_t>(dist) * bytes,
                                           static_cast<std::size_t>(blocks) * bytes, from, tag)};
    backend.wait_all(reqs);
  }
  for (int i = 0; i < n; ++i) {
    const auto src_rank = static_cast<std::size_t>((r + i) % n);
    if (bytes != 0)
      std::memcpy(dst + src_rank * bytes, tmp.data() + static_cast<std::size_t>(i) * bytes, bytes);
  }
}

namespace {
// One rank's fingerprint record on the wire.
struct Wire {
  std::uint32_t op;
  std::uint32_t pad;
  std::uint64_t count, k, seed, step, tensor, sequence, local_count, local_flags;
};
static_assert(sizeof(Wire) == 72);
}  // namespace

Agreement::Agreement(comm::Backend& data_backend, CallSignature sig, RankLocal local, bool need_locals,
                     AgreeScratch* scratch)
    : backend_(data_backend.control()), sig_(sig), s_(scratch != nullptr ? *scratch : own_) {
  s_.reqs.clear();
  s_.locals.clear();
  // The call counter and the switch belong to the backend the collective runs on; the fingerprints
  // travel over its control backend (itself, except for a device backend such as NCCL, whose
  // point-to-point rules would not let a collective send data before the fingerprints complete).
  sig_.sequence = data_backend.next_collective_sequence();
  check_ = data_backend.check_collectives();
  comm::Backend& backend = backend_;
  if (!check_ && !need_locals) return;
  exchanged_ = true;
  const int n = backend.size();
  const Wire w{static_cast<std::uint32_t>(sig_.op),
               0,
               sig_.count,
               sig_.k,
               sig_.seed,
               sig_.step,
               sig_.tensor,
               sig_.sequence,
               local.count,
               local.flags};
  s_.mine.resize(sizeof(Wire));
  std::memcpy(s_.mine.data(), &w, sizeof(Wire));
  s_.all.resize(static_cast<std::size_t>(n) * sizeof(Wire));
  const int r = backend.rank();
  if (n > kSmallDirectMaxRanks) {
    allgather_small(backend, s_.mine.data(), sizeof(Wire), s_.all.data(), comm::kTagFingerprint);
    return;
  }
  // The one-round exchange of allgather_small, left pending until finish().
  std::memcpy(s_.all.data() + static_cast<std::size_t>(r) * sizeof(Wire), s_.mine.data(), sizeof(Wire));
  s_.reqs.reserve(2 * static_cast<std::size_t>(n - 1));
  for (int i = 1; i < n; ++i) {
    const int from = (r - i + n) % n;
    s_.reqs.push_back(backend.irecv(s_.all.data() + static_cast<std::size_t>(from) * sizeof(Wire),
                                    sizeof(Wire), from, comm::kTagFingerprint));
  }
  for (int i = 1; i < n; ++i)
    s_.reqs.push_back(backend.isend(s_.mine.data(), sizeof(Wire), (r + i) % n, comm::kTagFingerprint));
}

// Pending requests (an exception between the constructor and finish()) are cancelled by their own
// destructors; nothing else to do.
Agreement::~Agreement() = default;

int Agreement::data_tag() const {
  return kCallTagBase + static_cast<int>(sig_.sequence % static_cast<std::uint64_t>(kCallTagWindow));
}

const std::vector<RankLocal>& Agreement::finish() {
  SPARCOL_CHECK(!finished_, ErrorCode::kInternal, backend_.rank(), "Agreement::finish() called twice");
  finished_ = true;
  if (!exchanged_) return s_.locals;
  backend_.wait_all(s_.reqs);
  s_.reqs.clear();
  const int n = backend_.size();
  s_.locals.resize(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    Wire w{};
    std::memcpy(&w, s_.all.data() + static_cast<std::size_t>(r) * sizeof(Wire), sizeof(Wire));
    s_.locals[static_cast<std::size_t>(r)] = RankLocal{w.local_count, w.local_flags};
    if (!check_) continue;
    CallSignature theirs{static_cast<CollOp>(w.op), w.count, w.k, w.seed, w.step, w.tensor, w.sequence};
    if (!(theirs == sig_)) {
      throw Error(ErrorCode::kMismatch, backend_.rank(),
                  "collective mismatch: rank " + std::to_string(backend_.rank()) + " calls " +
                      sig_.describe() + " but rank " + std::to_string(r) + " calls " + theirs.describe());
    }
  }
  return s_.locals;
}

int PeerAgreement::post(comm::Backend& data_backend, CallSignature sig, std::span<const int> peers) {
  backend_ = &data_backend.control();
  sig_ = sig;
  sig_.sequence = data_backend.next_collective_sequence();
  check_ = data_backend.check_collectives();
  peers_.assign(peers.begin(), peers.end());
  reqs_.clear();
  const int tag = Agreement::kCallTagBase +
                  static_cast<int>(sig_.sequence % static_cast<std::uint64_t>(Agreement::kCallTagWindow));
  if (!check_) return tag;
  const Wire w{static_cast<std::uint32_t>(sig_.op),
               0,
               sig_.count,
               sig_.k,
               sig_.seed,
               sig_.step,
               sig_.tensor,
               sig_.sequence,
               0,
               0};
  mine_.resize(sizeof(Wire));
  std::memcpy(mine_.data(), &w, sizeof(Wire));
  theirs_.resize(peers_.size() * sizeof(Wire));
  reqs_.reserve(2 * peers_.size());
  for (std::size_t k = 0; k < peers_.size(); ++k)
    reqs_.push_back(
        backend_->irecv(theirs_.data() + k * sizeof(Wire), sizeof(Wire), peers_[k], comm::kTagFingerprint));
  for (int p : peers_) reqs_.push_back(backend_->isend(mine_.data(), sizeof(Wire), p, comm::kTagFingerprint));
  return tag;
}

void PeerAgreement::check() {
  if (!check_) return;
  backend_->wait_all(reqs_);
  reqs_.clear();
  for (std::size_t k = 0; k < peers_.size(); ++k) {
    Wire w{};
    std::memcpy(&w, theirs_.data() + k * sizeof(Wire), sizeof(Wire));
    CallSignature theirs{static_cast<CollOp>(w.op), w.count, w.k, w.seed, w.step, w.tensor, w.sequence};
    if (!(theirs == sig_)) {
      throw Error(ErrorCode::kMismatch, backend_->rank(),
                  "collective mismatch: rank " + std::to_string(backend_->rank()) + " calls " +
                      sig_.describe() + " but its neighbour rank " + std::to_string(peers_[k]) + " calls " +
                      theirs.describe());
    }
  }
}

std::vector<RankLocal> agree(comm::Backend& backend, CallSignature sig, RankLocal local, bool need_locals) {
  Agreement a(backend, sig, local, need_locals);
  return a.finish();
}

const std::vector<RankLocal>& agree(comm::Backend& backend, CallSignature sig, RankLocal local,
                                    bool need_locals, AgreeScratch& scratch) {
  Agreement a(backend, sig, local, need_locals, &scratch);
  return a.finish();
}

}  // namespace sparcol::coll
