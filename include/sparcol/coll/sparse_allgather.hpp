// Sparse all-gather of (index, value) pairs, and their dense sum in rank order.
//
// Each rank contributes one SparseChunk of k_r pairs (core/payload.hpp; k_r may differ per rank and
// may be 0); every rank receives all of them, chunk(r) being rank r's. Indices are uint32 (core/types.hpp):
// the dense vector may have at most 2^32 - 1 elements, and every index must be < n (checked on the
// contributing rank before anything is sent).
//
// Steps: (1) the call fingerprint exchange also carries every rank's k_r (one small all-gather);
// (2) the exchange, one of two algorithms (Algorithm below; the default picks by world size K):
//   * direct: every rank sends its block straight to each of the K-1 others and receives theirs, all
//     posted at once: one round, so its time is one message time rather than K-1 in sequence (this
//     matters most when ranks share cores and every round waits for a peer to be scheduled). In run()
//     a rank's pairs even leave with the fingerprints of step (1) (their size is known locally), as
//     two messages (indices, values) straight from the caller's chunk; only the receives wait for
//     the counts;
//   * ring: K-1 steps; at step s rank r forwards block (r - s) mod K to rank r+1 and receives block
//     (r - s - 1) mod K from rank r-1.
// Block r on the wire is k_r uint32 indices followed by k_r float values (SparseChunk::wire_bytes(),
// 8 k_r bytes).
// Bytes sent per rank: direct 8 k_r (K-1); ring 8 * (sum over ranks of k_r - k_{(r+1) mod K}) (each
// block except the right neighbour's own passes through every rank once). Equal for equal k_r.
// Dense sum (optional, sum_into): out = 0, then for r = 0..K-1 in rank order, for each pair in the
// order rank r sent them, out[index] += value. Every rank holds the same pairs and adds them in the
// same order, so the result is bitwise identical on all ranks; duplicates (within or across ranks)
// are summed in that order. NaN values propagate into the sum.
//
// Device memory: with an executor (see ring_allreduce.hpp) the pairs, the gathered blocks and the
// sum live in the executor's memory. The gathered pairs are then kept as two arrays (every rank's
// indices in rank order, then every rank's values), so each block travels as two messages (its
// indices, its values) in both algorithms; the sender's index check is a kernel
// (first_bad_index), and sum_into is the sparse_sum kernel, which adds in the same order. The
// chunks returned by chunk(r) then point to device memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/core/payload.hpp"
#include "sparcol/core/types.hpp"
#include "sparcol/device/dispatch.hpp"

namespace sparcol::coll {

class SparseAllgather {
 public:
  enum class Algorithm { kAuto, kDirect, kRing };
  // kAuto uses direct up to this many ranks, ring above (bounding the requests one rank has in flight).
  static constexpr int kDirectMaxRanks = 16;

  // n: length of the dense vector; expected_k: pairs per rank to size scratch for (it grows if a
  // call brings more, so this is a hint, not a limit). Every rank must use the same algorithm.
  // exec: where the pairs live (nullptr: host memory); must outlive this object.
  SparseAllgather(comm::Backend& backend, std::uint64_t n, std::size_t expected_k = 0,
                  Algorithm algorithm = Algorithm::kAuto, device::Exec* exec = nullptr);

  // Gathers every rank's pairs. pairs.indices.size() must equal pairs.values.size(); every index < n.
  void run(SparseChunk pairs, std::uint64_t step = 0);

  // The gather without the fingerprint exchange, for callers that already agreed on the call and
  // know every rank's pair count (counts[r], indexed by rank).
  void run_agreed(SparseChunk pairs, std::span<const std::size_t> counts);

  // Results of the last run(): rank r's pairs, in the order it sent them (count(r) of them).
  int ranks() const { return static_cast<int>(counts_.size()); }
  std::size_t count(int r) const { return counts_[static_cast<std::size_t>(r)]; }
  std::size_t total() const { return total_; }
  SparseChunk chunk(int r) const;

  // out[0..n) <- sum of all gathered pairs, in rank order (see above), then divided by `divisor`
  // (the mean over K ranks with divisor K: (0 + v_1 + v_2 ...) / K, rounded once).
  void sum_into(float* out, float divisor = 1.0f) const;
  // out[index] += scale * value for all gathered pairs in rank order (no zeroing). Host memory only
  // (Error(kInvalidArgument) on a device executor: use sum_into there).
  void accumulate_into(float* out, float scale = 1.0f) const;

  std::uint64_t n() const { return n_; }
  // Payload bytes this rank sent / received in the last run (excluding the fingerprint).
  std::uint64_t last_bytes_sent() const { return last_sent_; }
  std::uint64_t last_bytes_recv() const { return last_recv_; }

 private:
  void check_pairs(SparseChunk pairs) const;
  void stage_own(SparseChunk pairs);
  void set_counts(std::span<const std::size_t> counts);
  const std::byte* block(int r) const;
  bool use_direct() const;
  void receive_direct(int tag);
  void exchange_direct();
  void exchange_ring();
  std::size_t offset(int r) const { return offsets_[static_cast<std::size_t>(r)]; }
  // The device path (exec_ set): the same steps on the split layout.
  void check_pairs_exec(SparseChunk pairs) const;
  void run_exec(SparseChunk pairs, std::uint64_t step);
  void place_own_exec(SparseChunk pairs, std::span<const std::size_t> counts);
  void receive_exec(int blk, int from, int tag);
  void send_own_exec(int to, int tag);
  void exchange_direct_exec();
  void exchange_ring_exec();
  void settle_device_work() const;
  comm::Backend& backend_;
  std::uint64_t n_;
  std::vector<std::size_t> counts_, offsets_;  // pairs per rank, and offsets in pairs (block starts)
  std::size_t total_ = 0;
  Algorithm algorithm_;
  std::vector<std::byte> buffer_;  // block r at byte 8 * offsets_[r]: k_r indices, then k_r values
  std::vector<std::byte> own_;     // this rank's block (its slot in buffer_ stays unused)
  std::vector<comm::Request> reqs_;
  std::uint64_t last_sent_ = 0, last_recv_ = 0;
  device::Exec* exec_ = nullptr;
  device::Buffer<Index> d_idx_;  // device path: every rank's indices at offsets_[r] (own included)
  device::Buffer<float> d_val_;  // and their values
};

}  // namespace sparcol::coll
