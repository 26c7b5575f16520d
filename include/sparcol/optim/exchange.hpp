// Exchange: compensate-compress-communicate-decompress for one optimizer step (GRACE's `step`).
//
// Given the vector v a rank wants to send (its error-compensated message: u + g + beta*m for GMC,
// e + eta*m for EF-SGDM, ...), an Exchange
//   1. compresses v, per compression group (the whole flat vector by default, each tensor with
//      `layerwise`), with the group's k and the shared (seed, step, group id);
//   2. leaves the compression error in v:  v <- v - C(v)   (the new residual);
//   3. aggregates: agg <- (1/K) * sum over ranks of C_r(v_r), summed in rank order where the
//      collective allows (sparse, sign), divided by K once (ALGORITHMS.md 0.1);
//   4. reports the communication of the step (CommStats, ALGORITHMS.md 9).
// The collective follows the compressor's Aggregation: sparse all-gather (topk, topk-sampled, randk,
// sidco), ring all-reduce of the shared-support values (rbgs, randk-shared), sign all-gather (sign),
// ring all-reduce of everything (none). Tensors excluded from compression (smaller than
// min_compress_size, or with dims <= 1 when compress_only_matrices) are ring all-reduced densely.
//
// Executors (device/dispatch.hpp): v and the aggregate live in the executor's memory, and every
// step is made of the dispatch functions (the CPU twins on the host executor, the kernels on a
// device executor), so the same code runs on both and gives the same bits. Compression on the host
// executor is the host compressor (compress/), on a device executor the kernel of the same contract
// (device/ops.hpp: top-k and sampled top-k select bitwise what the compressors select; RBGS is the
// block gather of both): compressors with a kernel (none, topk, topk-sampled, rbgs) run on both;
// randk, randk-shared, sidco and sign run on the host executor only, and layer-wise groups and
// tensors excluded from compression need the host executor too. Everything else is refused when the Exchange
// is built (unsupported_on_device() says why).
//
// Two phases, because the NaN policy must be decided before any optimizer state changes:
//   begin(step, nonfinite) — one small all-gather: the call fingerprint (mismatch detection) plus
//     every rank's "my gradient is not finite" flag. Returns the verdict; all ranks see the same.
//   finish(v, agg) — everything else; must follow a begin() whose verdict was not `skip`.
// Every rank calls both, in the same order, with the same layout and configuration.
// No allocation in steady state: buffers are sized when the Exchange is built and when the density
// changes (DGC warm-up); a threshold compressor (sidco) may grow the pair buffer the first times it
// sends more than before.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparcol/coll/agree.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sign_allgather.hpp"
#include "sparcol/coll/sign_ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/backend.hpp"
#include "sparcol/compress/compressor.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/optim/layout.hpp"

namespace sparcol::optim {

struct ExchangeConfig {
  compress::CompressorConfig compressor;
  bool layerwise = false;               // one compressor call per tensor (k_l = max(1, ceil(rho*n_l)))
  std::uint64_t min_compress_size = 0;  // tensors with fewer elements are all-reduced densely
  bool compress_only_matrices = false;  // tensors with dims <= 1 are all-reduced densely (DGC code)
  std::uint64_t seed = 0;               // shared by all ranks: RBGS blocks, shared random-k, sampling
  std::uint32_t stream = 0;             // added to every group id: two exchanges of one optimizer
                                        // (CSER's C1 and C2) draw independent blocks and samples
  bool track_support = true;            // host: sparse aggregates keep their support (Aggregate);
                                        // false: always dense (the same bits; tests, benchmarks)
  // How the messages of the compressor "sign" are aggregated (ALGORITHMS.md 1.4, 10.1): the sign
  // all-gather (exact mean of the K scaled signs, or majority vote), Marsit's sign ring all-reduce
  // (lambda * B, B merged without re-compression), or the cascading ring (re-compression at every
  // hop). The residual left in v is the local one, v - C(v), in all three.
  enum class SignReduce { kAllgather, kMarsit, kCascade };
  SignReduce sign_reduce = SignReduce::kAllgather;
};

// Communication of one step (or, summed, of a run), per rank. "up"/"down" follow the parameter-server
// model of the GMC paper's RCC (spec 9): up = this worker's message, down = what a server would
// broadcast back. bytes_sent/bytes_recv are what this rank actually moved in the all-reduce form.
struct CommStats {
  double elements_up = 0;      // this rank's message: values + indices (sign: n/32 + 1)
  double elements_up_all = 0;  // the same summed over all ranks (what the server receives)
  double elements_down = 0;    // top-k: 2*nnz(aggregate); rbgs: k; dense: d; sign: K messages
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
  std::uint64_t bytes_sent = 0;  // payload bytes this rank sent in the collectives (no fingerprints)
  std::uint64_t bytes_recv = 0;
  // Of bytes_sent, what a separate downward phase sent (liec: the all-gather of the owners' compressed
  // chunks); 0 for the methods whose collective has no separate down-link.
  std::uint64_t bytes_sent_down = 0;
  double dense_elements = 0;   // (K+1)*d: the RCC denominator of this step
  double time_compress_s = 0;  // compression and residual update
  double time_comm_s = 0;      // agreement, collectives and decompression
  // Communication rounds of this step: one per message exchange (Exchange::finish: one averaging of
  // every rank's message, whatever collectives it takes) or neighbour exchange the step starts; 0 for
  // a purely local step. Fingerprint agreements are not counted.
  std::uint64_t rounds = 0;

  double rcc() const { return dense_elements > 0 ? (elements_up_all + elements_down) / dense_elements : 0.0; }
  void add(const CommStats& o);
};

struct Verdict {
  bool skip = false;           // some rank's input was not finite: nobody may change state
  std::vector<int> bad_ranks;  // which ranks flagged it (ascending)
};

// The mean of one step's messages: a dense vector of n floats in an executor's memory that is +0
// outside its support. The aggregate of top-k or RBGS has at most K*k non-zeros, so on the host
// executor the Exchange records where it wrote (support(), at most K*k distinct indices, in host
// memory) and clears only those positions the next time; an optimizer then updates only those
// elements (apply_aggregate). dense() means the support is not tracked: the compressor is dense or
// sign, some tensors are all-reduced densely, the executor is a device (there every pass runs at
// memory bandwidth and the support would cost a sort), or somebody else wrote the values
// (forget_support()). Reading values() is always correct.
class Aggregate {
 public:
  Aggregate() = default;
  Aggregate(device::Exec& exec, std::uint64_t n, const char* what = "aggregate");

  float* data() const { return values_.data(); }
  std::span<float> values() const { return values_.span(); }
  std::uint64_t size() const { return values_.size(); }
  bool dense() const { return dense_; }
  std::span<const Index> support() const { return {support_.data(), support_.size()}; }
  // When the support is ascending (the sparse sums of up to kMaxMergeRanks ranks, RBGS blocks that
  // do not wrap): support_values()[j] is the value at support()[j].
  bool sorted() const { return !dense_ && sorted_; }
  std::span<const float> support_values() const { return {support_values_.data(), support_values_.size()}; }
  // The values were changed outside the Exchange (a checkpoint restore): the support is unknown.
  void forget_support() { dense_ = true; }

 private:
  friend class Exchange;
  device::Buffer<float> values_;
  std::vector<Index> support_;         // distinct, in the order first written (host executor only)
  std::vector<float> support_values_;  // with sorted_: the values at support_
  bool dense_ = false;                 // a new aggregate is all zeros: its (empty) support is known
  bool sorted_ = true;                 // support_ ascending and support_values_ filled
};

// x <- x - eta * agg (eta >= 0), touching only agg's support when it is known: bit for bit the dense
// update, because x - eta * (+0) is x.
void apply_aggregate(device::Exec& exec, float* x, const Aggregate& agg, float eta);

class Exchange {
 public:
  // exec: where v and the aggregates live; must outlive the Exchange. Error(kInvalidArgument) for a
  // configuration the executor cannot run (see the file comment) or a backend that does not move
  // its memory.
  Exchange(comm::Backend& backend, const Layout& layout, ExchangeConfig config, device::Exec& exec);
  ~Exchange();

  // The host sums the sparse messages of at most this many ranks by merging them in index order
  // (sequential, an ascending support); more ranks add into the vector (random access, the support
  // in the order first written). The same bits either way.
  static constexpr int kMaxMergeRanks = 16;

  Verdict begin(std::uint64_t step, bool local_nonfinite);
  // v: the message (n floats, exec memory), left holding its residual; agg: receives the mean.
  CommStats finish(std::span<float> v, Aggregate& agg);

  // u <- 0 on every coordinate the last finish() sent from a compressed group (momentum factor
  // masking). Tensors excluded from compression are not masked (they keep plain momentum, as in the
  // DGC code); with the compressor "none" every coordinate counts as sent.
  void zero_sent(std::span<float> u);

  // Changes the density of every compressed group (DGC warm-up); all ranks must do the same.
  void set_density(double rho);
  double density() const { return config_.compressor.density; }

  // The fused top-k of a method that computes its message in one pass of its own (GMC on the host
  // executor, src/optim/gmc.cpp): fused_selector() is null unless this exchange compresses one flat
  // group with the host top-k, so that the message pass can feed the selector (TopkSelector's fused
  // interface, with fused_k() elements) while it writes v. arm_fused(true) after a pass that fed
  // it: the next finish() then takes the selection from it (the same bits as selecting on v). A
  // skipped step (begin) disarms it.
  compress::TopkSelector* fused_selector();
  std::uint64_t fused_k() const;
  void arm_fused(bool armed) { fused_armed_ = armed && fused_selector() != nullptr; }

  const std::string& compressor_name() const { return config_.compressor.name; }
  compress::Aggregation aggregation() const { return kind_; }
  std::uint64_t size() const { return n_; }
  int groups() const { return static_cast<int>(groups_.size()); }
  device::Exec& exec() const { return exec_; }

 private:
  // How a group is compressed: a kernel family of device/ops.hpp, or the host compressor.
  enum class Path { kDense, kTopk, kTopkSampled, kBlock, kHost };
  struct Segment {
    std::uint64_t offset, size;
  };
  struct Group {
    std::vector<Segment> segments;  // contiguous pieces of the flat vector, concatenated
    std::uint64_t n = 0;
    std::uint64_t k = 0;
    std::uint32_t id = 0;
    sparcol::Block block;          // kBlock: the block of the last finish()
    std::uint64_t pair_begin = 0;  // sparse: this group's pairs in pair_idx_/pair_val_
    std::uint64_t pair_count = 0;
    compress::Message msg;   // kHost: the host compressor's message
    std::vector<float> raw;  // the cascading sign ring: the uncompressed group (its hops add it)
  };

  void build_groups(const Layout& layout);
  std::uint64_t to_global(const Group& g, std::uint64_t local) const;
  float* group_view(Group& g, std::span<float> v, bool gather);
  void scatter_group(const Group& g, const float* from, std::span<float> v);
  std::uint64_t total_k() const;
  void reserve_pairs(std::uint64_t pairs);
  std::uint64_t compress_group(Group& g, float* view, std::uint64_t pairs, std::uint64_t& packed_pos);
  void sum_pairs_tracked(Aggregate& agg, float divisor, std::uint64_t& nnz);
  bool merge_pairs_sorted(Aggregate& agg, float divisor, std::uint64_t& nnz);
  void clear(Aggregate& agg) const;

  comm::Backend& backend_;
  ExchangeConfig config_;
  device::Exec& exec_;
  std::unique_ptr<compress::Compressor> compressor_;
  compress::Aggregation kind_;
  Path path_ = Path::kHost;
  bool track_ = false;  // host executor: aggregates keep their support
  bool variable_count_ = false;
  std::uint64_t n_ = 0;
  std::vector<Group> groups_;
  std::vector<Segment> dense_;  // segments all-reduced densely
  std::uint64_t dense_count_ = 0;
  std::uint64_t step_ = 0;
  bool begun_ = false;

  device::Buffer<float> gather_;    // a multi-segment group gathered contiguously
  device::Buffer<float> packed_;    // shared-support values + dense values, all-reduced together
  device::Buffer<Index> pair_idx_;  // all sparse pairs of this rank, global indices
  device::Buffer<float> pair_val_;
  std::uint64_t pairs_ = 0;          // pairs of the last finish()
  coll::AgreeScratch agree_;         // the step's fingerprint exchange
  std::vector<std::size_t> counts_;  // pairs per rank of the last sparse gather
  std::vector<std::uint64_t> all_counts_;
  std::vector<std::uint64_t>
      marks_;                       // one bit per element: the tracked sum's "seen" set (all 0 between calls)
  std::vector<Index> old_support_;  // the previous support while the merge writes the new one
  compress::TopkSelector fused_sel_;
  bool fused_armed_ = false;
  std::unique_ptr<coll::RingAllreduce> ring_;  // over packed_ (size fixed per density)
  std::unique_ptr<coll::SparseAllgather> sparse_;
  std::vector<std::unique_ptr<coll::SignAllgather>> signs_;
  std::vector<std::unique_ptr<coll::SignRingAllreduce>> marsit_;      // sign_reduce kMarsit
  std::vector<std::unique_ptr<coll::SignCascadeAllreduce>> cascade_;  // sign_reduce kCascade
};

// Why `exec_kind` cannot run this exchange configuration on `layout` (empty when it can): the
// device executor runs the compressors none, topk, topk-sampled and rbgs on flat groups in which
// every tensor is compressed.
std::string unsupported_on_device(const Layout& layout, const ExchangeConfig& config);

}  // namespace sparcol::optim
