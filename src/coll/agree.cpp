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
struct Wire {
  std::uint32_t op;
  std::uint32_t pad;
  std::uint64_t count, k, seed, step, tensor, sequence, local_count, local_flags;
};
static_assert(sizeof(Wire) == 72);
}  // namespace

std::vector<RankLocal> agree(comm::Backend& backend, CallSignature sig, RankLocal local, bool need_locals) {
  sig.sequence = backend.next_collective_sequence();
  const bool check = backend.check_collectives();
  if (!check && !need_locals) return {};
  const int n = backend.size();
  Wire mine{static_cast<std::uint32_t>(sig.op),
            0,
            sig.count,
            sig.k,
            sig.seed,
            sig.step,
            sig.tensor,
            sig.sequence,
            local.count,
            local.flags};
  std::vector<Wire> all(static_cast<std::size_t>(n));
  allgather_small(backend, &mine, sizeof(Wire), all.data(), comm::kTagFingerprint);
  std::vector<RankLocal> locals(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    const Wire& w = all[static_cast<std::size_t>(r)];
    locals[static_cast<std::size_t>(r)] = RankLocal{w.local_count, w.local_flags};
    if (!check) continue;
    CallSignature theirs{static_cast<CollOp>(w.op), w.count, w.k, w.seed, w.step, w.tensor, w.sequence};
    if (!(theirs == sig)) {
      throw Error(ErrorCode::kMismatch, backend.rank(),
                  "collective mismatch: rank " + std::to_string(backend.rank()) + " calls " + sig.describe() +
                      " but rank " + std::to_string(r) + " calls " + theirs.describe());
    }
  }
  return locals;
}

}  // namespace sparcol::coll
