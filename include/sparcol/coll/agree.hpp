// Agreement across ranks before a collective: a small all-gather of a fingerprint of the call.
//
// Every sparcol collective starts by exchanging a CallSignature (which collective, vector length,
// k, seed, step, tensor id, call sequence number) plus one value that may legitimately differ per
// rank (e.g. a rank's number of sparse pairs). If any rank's signature differs from this rank's,
// every rank throws Error(kMismatch) naming both sides (the lowest rank that disagrees), so a
// mismatch becomes an error on all ranks instead of a hang or a wrong result.
//
// Cost: one round of K-1 messages of 72 bytes per rank up to 16 ranks; above, ceil(log2 K) rounds of
// Bruck's all-gather. About one small-message latency per round. Backend::check_collectives() == false skips
// the comparison; the exchange itself still happens when the caller needs the per-rank values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"

namespace sparcol::coll {

enum class CollOp : std::uint32_t {
  kNone = 0,
  kRingAllreduce = 1,
  kRbgsAllreduce = 2,
  kSparseAllgather = 3,
  kSignAllgather = 4,
  kDenseAllreduce = 5,
  kDenseAllgatherv = 6,
  kBroadcast = 7,
  kExchange = 8,  // an optimizer step's exchange (optim/exchange.hpp)
  kUser = 100,
};

const char* to_string(CollOp op);

struct CallSignature {
  CollOp op = CollOp::kNone;
  std::uint64_t count = 0;  // length of the dense vector (elements)
  std::uint64_t k = 0;      // elements selected (block length for RBGS; 0 when not applicable)
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::uint64_t tensor = 0;
  std::uint64_t sequence = 0;  // filled in by agree() from the backend's counter

  std::string describe() const;
  bool operator==(const CallSignature&) const = default;
};

// All-gather of `bytes` bytes from every rank over point-to-point messages with `tag`.
// out must hold size() * bytes; out[r * bytes ...] receives rank r's contribution. Up to kSmallDirectMaxRanks
// ranks every rank sends its bytes straight to every other (one round); above, Bruck's algorithm (ceil(log2
// K) rounds, any world size). Every rank must call it.
inline constexpr int kSmallDirectMaxRanks = 16;
void allgather_small(comm::Backend& backend, const void* mine, std::size_t bytes, void* out, int tag);

// What each rank contributes beside the signature: values that may differ per rank.
struct RankLocal {
  std::uint64_t count = 0;  // e.g. this rank's number of sparse pairs
  std::uint64_t flags = 0;  // e.g. kFlagNonFinite: this rank's input was not finite
};
inline constexpr std::uint64_t kFlagNonFinite = 1;

// Exchanges (signature, local) with every rank; checks agreement if backend.check_collectives();
// returns every rank's RankLocal, indexed by rank. With the check off and need_locals false nothing
// is exchanged and an empty vector is returned.
std::vector<RankLocal> agree(comm::Backend& backend, CallSignature sig, RankLocal local = {},
                             bool need_locals = false);

}  // namespace sparcol::coll
