// LIEC-SGD's parameter server, sharded over the ranks (ALGORITHMS.md 10.2): rank r owns chunk r of
// the vector. The collective moves payloads; it never compresses (the optimizer compresses between
// the two phases, src/optim/liec.cpp).
//
// Chunks: n elements split into K balanced chunks, chunk r = [begin(r), begin(r + 1)) with
// begin(r) = r * floor(n / K) + min(r, n mod K) (the ring all-reduce's segments; chunks are empty when
// n < K).
//
// Phase 1, reduce(up, step): every rank sends each owner r the part of its upload that falls in chunk r
// and the owner sums what it receives.
//   sparse upload ((index, value) pairs, global indices < n, any order): the pairs are grouped by
//     owner (a rank's pairs for one owner keep their order), every rank learns how many pairs each
//     rank sends each owner (one all-gather of K counts of 8 bytes per rank), then one round of direct
//     messages (indices then values, 8 bytes a pair; none where the count is 0). The owner adds the
//     pairs into +0, sender by sender in rank order 0..K-1 (within a sender in its order).
//   dense upload (n floats): one round of direct messages, chunk r to rank r; the owner sums the K
//     copies in rank order starting from rank 0's (the direct ring all-reduce's order, so an identity
//     upload sums exactly as the dense baselines on few ranks do).
//   owner_sum() then holds the sum (not the mean) over ranks of the owner's chunk.
// Phase 2, gather(down, out, step): every owner's message for its own chunk reaches every rank, which
//   assembles the vector c.
//   sparse (pairs with global indices in the owner's chunk): one all-gather of the owners' pair counts
//     (8 bytes each), then every owner sends its pairs to every other rank; out is +0 except at the
//     pairs (written owner by owner in rank order, so a duplicate index keeps the last value).
//   dense (chunk_size(rank) floats): every owner sends its chunk to every other rank.
//   out is bitwise identical on every rank.
// Bytes sent per rank (last_*_bytes_sent): phase 1 sparse 8 * (pairs for other owners) + 8 (K - 1) K
// for the counts, dense 4 (n - n_r); phase 2 sparse 8 (K - 1) * (own pairs) + 8 (K - 1), dense
// 4 (K - 1) n_r. The fingerprints (one per phase) are not counted.
//
// Every rank calls reduce then gather, with the same n, payload kinds and step: each phase starts with
// the call fingerprint (CollOp::kLiecAllreduce, count = n, k = the payload kinds, step, tensor = the
// phase), so a rank with another n, kind, step or phase gets Error(kMismatch) naming both. Blocking
// waits follow the backend's timeout. Host memory only. Scratch is sized in the constructor for the
// dense case and grows with the largest sparse message seen (no allocation once warmed up).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/core/payload.hpp"

namespace sparcol::coll {

class LiecAllreduce {
 public:
  enum class Payload { kDense, kSparse };

  LiecAllreduce(comm::Backend& backend, std::uint64_t n, Payload up, Payload down);

  std::uint64_t n() const { return n_; }
  int ranks() const { return K_; }
  std::uint64_t chunk_begin(int r) const;
  std::uint64_t chunk_size(int r) const { return chunk_begin(r + 1) - chunk_begin(r); }
  // The owner of element i < n.
  int owner(std::uint64_t i) const;

  // Phase 1 (see the file comment). Sparse: `up` pairs with indices < n. Dense: n floats.
  void reduce(SparseChunk up, std::uint64_t step);
  void reduce(std::span<const float> up, std::uint64_t step);
  // This rank's chunk summed over ranks (chunk_size(rank()) floats), valid until the next reduce.
  // Writable: the optimizer may turn it into its w in place.
  std::span<float> owner_sum() { return {sum_.data(), sum_.size()}; }

  // Phase 2 (see the file comment). Sparse: this owner's pairs, indices in its chunk. Dense:
  // chunk_size(rank()) floats (may be out's own chunk: out.subspan(chunk_begin(rank()))). out: n
  // floats, overwritten.
  void gather(SparseChunk down, std::span<float> out, std::uint64_t step);
  void gather(std::span<const float> down, std::span<float> out, std::uint64_t step);
  // Pairs owner r sent in the last sparse gather (0 for a dense one).
  std::uint64_t last_down_pairs(int r) const { return down_counts_[static_cast<std::size_t>(r)]; }

  // Pairs all ranks uploaded in the last sparse reduce (n K for a dense one).
  std::uint64_t last_up_pairs_all() const { return up_pairs_all_; }

  std::uint64_t last_up_bytes_sent() const { return up_sent_; }
  std::uint64_t last_up_bytes_recv() const { return up_recv_; }
  std::uint64_t last_down_bytes_sent() const { return down_sent_; }
  std::uint64_t last_down_bytes_recv() const { return down_recv_; }

 private:
  void agree_phase(std::uint64_t step, std::uint32_t phase);

  comm::Backend& backend_;
  std::uint64_t n_;
  int K_, me_;
  Payload up_, down_;
  std::vector<float> sum_;                     // this owner's chunk, summed
  std::vector<float> dense_recv_;              // dense phase 1: K-1 copies of this rank's chunk
  std::vector<std::uint64_t> counts_;          // phase 1: pairs this rank sends each owner
  std::vector<std::uint64_t> all_counts_;      // phase 1: K x K, [sender * K + owner]
  std::vector<std::uint64_t> offsets_;         // each owner's first pair in send_* (phase 1), down_* (2)
  std::vector<std::uint64_t> pos_, from_off_;  // phase 1: grouping cursors; each sender's first pair
  std::vector<Index> send_idx_, recv_idx_;     // phase 1 pairs grouped by owner; received pairs by sender
  std::vector<float> send_val_, recv_val_;
  std::vector<std::uint64_t> down_counts_;  // phase 2: pairs of each owner
  std::vector<Index> down_idx_;             // phase 2: every owner's pairs, in owner order
  std::vector<float> down_val_;
  std::vector<comm::Request> reqs_;
  std::uint64_t up_pairs_all_ = 0;
  std::uint64_t up_sent_ = 0, up_recv_ = 0, down_sent_ = 0, down_recv_ = 0;
};

// The result of both phases recomputed on one host from every rank's upload and every owner's
// downward message (for tests): sum[i] over ranks in the collective's order, and c assembled as
// gather assembles it. ups[r]: rank r's pairs; downs[r]: owner r's pairs.
std::vector<float> liec_reference_sum(const std::vector<SparseChunk>& ups, std::uint64_t n);
std::vector<float> liec_reference_gather(const std::vector<SparseChunk>& downs, std::uint64_t n);

}  // namespace sparcol::coll
