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
#include <span>
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
  kExchange = 8,            // an optimizer step's exchange (optim/exchange.hpp)
  kNeighborExchange = 15,   // topo/neighbor_exchange.hpp: checked with the graph neighbours only
  kSignRingAllreduce = 20,  // Marsit (coll/sign_ring_allreduce.hpp)
  kSignCascade = 21,        // the cascading sign ring (coll/sign_ring_allreduce.hpp)
  kLiecAllreduce = 22,      // LIEC's sharded server (coll/liec_allreduce.hpp; tensor = the phase)
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
// is exchanged and an empty vector is returned. The messages travel over backend.control() (the
// backend itself for host backends; the host backend under a device backend such as NCCL).
std::vector<RankLocal> agree(comm::Backend& backend, CallSignature sig, RankLocal local = {},
                             bool need_locals = false);

// The buffers of one agreement, kept by a caller that agrees once per step (the optimizers'
// Exchange) so that steady-state steps allocate nothing.
struct AgreeScratch {
  std::vector<std::byte> mine, all;  // this rank's wire record, and every rank's
  std::vector<comm::Request> reqs;
  std::vector<RankLocal> locals;
};
// agree() on the caller's scratch; the result lives in scratch.locals.
const std::vector<RankLocal>& agree(comm::Backend& backend, CallSignature sig, RankLocal local,
                                    bool need_locals, AgreeScratch& scratch);

// agree() in two halves, so that a collective can send its first data messages in the same round as
// the fingerprints instead of waiting a whole round for them (one wait for the peers instead of two):
//   Agreement a(backend, sig, local, need_locals);  // posts the fingerprint exchange, returns at once
//   ... post the first data messages with tag a.data_tag() ...
//   a.finish();                                     // waits, checks: exactly what agree() does
// Messages sent before finish() may reach a rank that calls something else. They carry data_tag(), a
// tag of this call alone (from the call's sequence number), so after a mismatch error they can never
// be taken for the data of a later call; they are simply never received. A collective must receive
// nothing but fingerprints before finish() returns: that is what makes a mismatch an error, not a
// wrong result. Above kSmallDirectMaxRanks ranks the exchange (Bruck's) completes in the constructor.
// The object refers to its own buffers while requests are pending: it cannot be copied or moved.
class Agreement {
 public:
  Agreement(comm::Backend& backend, CallSignature sig, RankLocal local = {}, bool need_locals = false,
            AgreeScratch* scratch = nullptr);
  Agreement(const Agreement&) = delete;
  Agreement& operator=(const Agreement&) = delete;
  ~Agreement();

  // Waits for every rank's fingerprint and checks them (Error(kMismatch) naming both sides); returns
  // every rank's RankLocal (empty if nothing was exchanged). Call it once.
  const std::vector<RankLocal>& finish();

  std::uint64_t sequence() const { return sig_.sequence; }
  // This call's data tag, in [kCallTagBase, kCallTagBase + kCallTagWindow): equal on every rank that
  // makes the same call, and different for the next kCallTagWindow - 1 calls.
  int data_tag() const;

  static constexpr int kCallTagBase = comm::kTagCallFirst;
  static constexpr int kCallTagWindow = 16384;  // tags stay <= 32767, MPI's smallest allowed maximum

 private:
  comm::Backend& backend_;  // the control backend the fingerprints travel over
  CallSignature sig_;
  bool check_ = false;
  bool exchanged_ = false;
  bool finished_ = false;
  AgreeScratch own_;  // used when the caller gives no scratch
  AgreeScratch& s_;
};

// The agreement of a neighbourhood collective (topo/neighbor_exchange.hpp): the same 72-byte record,
// exchanged with `peers` only (the graph neighbours; no global round), in two halves like Agreement:
// post() sends this rank's record to every peer and posts the receives, check() waits for them and
// throws Error(kMismatch) naming this rank's call and the first peer whose call differs. A rank that
// calls a global collective meanwhile sends the same record with the same tag, so a neighbour sees
// the mismatch instead of a hang. With check_collectives() off nothing is exchanged.
class PeerAgreement {
 public:
  PeerAgreement() = default;
  PeerAgreement(const PeerAgreement&) = delete;
  PeerAgreement& operator=(const PeerAgreement&) = delete;
  // Returns the call's data tag (as Agreement::data_tag) for the messages sent before check().
  int post(comm::Backend& backend, CallSignature sig, std::span<const int> peers);
  void check();
  std::uint64_t sequence() const { return sig_.sequence; }

 private:
  comm::Backend* backend_ = nullptr;
  CallSignature sig_;
  bool check_ = false;
  std::vector<int> peers_;
  std::vector<std::byte> mine_, theirs_;
  std::vector<comm::Request> reqs_;
};

}  // namespace sparcol::coll
