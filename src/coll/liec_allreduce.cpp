#include "sparcol/coll/liec_allreduce.hpp"

#include <algorithm>
#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::coll {

namespace {
constexpr int kTag = comm::kTagLiec;
}  // namespace

LiecAllreduce::LiecAllreduce(comm::Backend& backend, std::uint64_t n, Payload up, Payload down)
    : backend_(backend), n_(n), K_(backend.size()), me_(backend.rank()), up_(up), down_(down) {
  SPARCOL_CHECK_ARG(backend.accepts(MemKind::kHost), me_,
                    "liec_allreduce: backend " + backend.name() + " does not move host memory");
  SPARCOL_CHECK_ARG(n <= kMaxElements, me_,
                    "liec_allreduce: " + std::to_string(n) + " elements exceed the uint32 index range");
  const auto K = static_cast<std::size_t>(K_);
  sum_.resize(chunk_size(me_));
  if (up_ == Payload::kDense) dense_recv_.resize((K - 1) * sum_.size());
  counts_.assign(K, 0);
  all_counts_.assign(K * K, 0);
  offsets_.assign(K + 1, 0);
  down_counts_.assign(K, 0);
  pos_.assign(K, 0);
  from_off_.assign(K, 0);
  reqs_.reserve(4 * K);
}

std::uint64_t LiecAllreduce::chunk_begin(int r) const {
  const auto K = static_cast<std::uint64_t>(K_);
  const auto ur = static_cast<std::uint64_t>(r);
  return ur * (n_ / K) + std::min(ur, n_ % K);
}

int LiecAllreduce::owner(std::uint64_t i) const {
  const auto K = static_cast<std::uint64_t>(K_);
  const std::uint64_t q = n_ / K, rem = n_ % K;
  const std::uint64_t big = rem * (q + 1);  // the first rem chunks hold q + 1 elements
  if (i < big) return static_cast<int>(i / (q + 1));
  return static_cast<int>(rem + (i - big) / q);
}

void LiecAllreduce::agree_phase(std::uint64_t step, std::uint32_t phase) {
  // k: the payload kinds (bit 0: sparse upload, bit 1: sparse download).
  const std::uint64_t kinds = (up_ == Payload::kSparse ? 1u : 0u) | (down_ == Payload::kSparse ? 2u : 0u);
  agree(backend_, CallSignature{CollOp::kLiecAllreduce, n_, kinds, 0, step, phase, 0});
}

// ---------------------------------------------------------------------------------------------
// Phase 1: every rank's upload to the owners, summed there
// ---------------------------------------------------------------------------------------------

void LiecAllreduce::reduce(SparseChunk up, std::uint64_t step) {
  SPARCOL_CHECK_ARG(up_ == Payload::kSparse, me_, "liec_allreduce: a sparse upload to a dense reduce");
  SPARCOL_CHECK_ARG(up.indices.size() == up.values.size(), me_,
                    "liec_allreduce: " + std::to_string(up.indices.size()) + " indices and " +
                        std::to_string(up.values.size()) + " values");
  for (const Index i : up.indices)
    SPARCOL_CHECK_ARG(i < n_, me_,
                      "liec_allreduce: index " + std::to_string(i) + " >= n = " + std::to_string(n_));
  agree_phase(step, 0);
  const auto K = static_cast<std::size_t>(K_);
  // Group the pairs by owner (counting sort, stable).
  std::fill(counts_.begin(), counts_.end(), 0);
  for (const Index i : up.indices) ++counts_[static_cast<std::size_t>(owner(i))];
  offsets_[0] = 0;
  for (std::size_t r = 0; r < K; ++r) offsets_[r + 1] = offsets_[r] + counts_[r];
  if (send_idx_.size() < up.size()) {
    send_idx_.resize(up.size());
    send_val_.resize(up.size());
  }
  {
    std::vector<std::uint64_t>& pos = pos_;
    std::copy(offsets_.begin(), offsets_.end() - 1, pos.begin());
    for (std::size_t j = 0; j < up.size(); ++j) {
      const auto r = static_cast<std::size_t>(owner(up.indices[j]));
      send_idx_[pos[r]] = up.indices[j];
      send_val_[pos[r]] = up.values[j];
      ++pos[r];
    }
  }
  // Every rank's counts for every owner.
  allgather_small(backend_, counts_.data(), K * sizeof(std::uint64_t), all_counts_.data(), kTag);
  up_sent_ = up_recv_ = static_cast<std::uint64_t>(K - 1) * K * sizeof(std::uint64_t);
  up_pairs_all_ = 0;
  for (const auto c : all_counts_) up_pairs_all_ += c;
  std::uint64_t incoming = 0;
  for (std::size_t s = 0; s < K; ++s)
    if (static_cast<int>(s) != me_) incoming += all_counts_[s * K + static_cast<std::size_t>(me_)];
  if (recv_idx_.size() < incoming) {
    recv_idx_.resize(incoming);
    recv_val_.resize(incoming);
  }
  // One round: the i-th receive comes from rank me - i, the i-th send goes to me + i.
  reqs_.clear();
  std::vector<std::uint64_t>& from_off = from_off_;  // where sender s's pairs land in recv_*
  {
    std::uint64_t o = 0;
    for (std::size_t s = 0; s < K; ++s) {
      from_off[s] = o;
      if (static_cast<int>(s) != me_) o += all_counts_[s * K + static_cast<std::size_t>(me_)];
    }
  }
  for (int i = 1; i < K_; ++i) {
    const int from = (me_ - i + K_) % K_;
    const auto fs = static_cast<std::size_t>(from);
    const std::uint64_t c = all_counts_[fs * K + static_cast<std::size_t>(me_)];
    if (c == 0) continue;
    reqs_.push_back(backend_.irecv(recv_idx_.data() + from_off[fs], c * sizeof(Index), from, kTag));
    reqs_.push_back(backend_.irecv(recv_val_.data() + from_off[fs], c * sizeof(float), from, kTag));
    up_recv_ += c * kPairBytes;
  }
  for (int i = 1; i < K_; ++i) {
    const int to = (me_ + i) % K_;
    const auto ts = static_cast<std::size_t>(to);
    const std::uint64_t c = counts_[ts];
    if (c == 0) continue;
    reqs_.push_back(backend_.isend(send_idx_.data() + offsets_[ts], c * sizeof(Index), to, kTag));
    reqs_.push_back(backend_.isend(send_val_.data() + offsets_[ts], c * sizeof(float), to, kTag));
    up_sent_ += c * kPairBytes;
  }
  backend_.wait_all(reqs_);
  // The owner's sum: +0, then sender by sender in rank order.
  std::fill(sum_.begin(), sum_.end(), 0.0f);
  const std::uint64_t base = chunk_begin(me_);
  for (std::size_t s = 0; s < K; ++s) {
    const bool self = static_cast<int>(s) == me_;
    const std::uint64_t c = self ? counts_[s] : all_counts_[s * K + static_cast<std::size_t>(me_)];
    const Index* idx = self ? send_idx_.data() + offsets_[s] : recv_idx_.data() + from_off[s];
    const float* val = self ? send_val_.data() + offsets_[s] : recv_val_.data() + from_off[s];
    for (std::uint64_t j = 0; j < c; ++j) {
      const std::uint64_t local = idx[j] - base;
      SPARCOL_CHECK(local < sum_.size(), ErrorCode::kInternal, me_,
                    "liec_allreduce: rank " + std::to_string(s) + " sent index " + std::to_string(idx[j]) +
                        " outside this rank's chunk");
      sum_[local] += val[j];
    }
  }
}

void LiecAllreduce::reduce(std::span<const float> up, std::uint64_t step) {
  SPARCOL_CHECK_ARG(up_ == Payload::kDense, me_, "liec_allreduce: a dense upload to a sparse reduce");
  SPARCOL_CHECK_ARG(up.size() == n_, me_,
                    "liec_allreduce: a dense upload of " + std::to_string(up.size()) +
                        " elements for n = " + std::to_string(n_));
  agree_phase(step, 0);
  const std::size_t mine = sum_.size();
  up_pairs_all_ = n_ * static_cast<std::uint64_t>(K_);
  // Slot of sender q in dense_recv_: q for q < me, q - 1 for q > me.
  auto slot = [&](int q) {
    return dense_recv_.data() + static_cast<std::size_t>(q < me_ ? q : q - 1) * mine;
  };
  reqs_.clear();
  up_sent_ = up_recv_ = 0;
  if (mine > 0) {
    for (int i = 1; i < K_; ++i) {
      const int from = (me_ - i + K_) % K_;
      reqs_.push_back(backend_.irecv(slot(from), mine * sizeof(float), from, kTag));
      up_recv_ += mine * sizeof(float);
    }
  }
  for (int i = 1; i < K_; ++i) {
    const int to = (me_ + i) % K_;
    const std::uint64_t len = chunk_size(to);
    if (len == 0) continue;
    reqs_.push_back(backend_.isend(up.data() + chunk_begin(to), len * sizeof(float), to, kTag));
    up_sent_ += len * sizeof(float);
  }
  backend_.wait_all(reqs_);
  const float* own = up.data() + chunk_begin(me_);
  for (std::size_t e = 0; e < mine; ++e) {
    float acc = me_ == 0 ? own[e] : slot(0)[e];
    for (int q = 1; q < K_; ++q) acc += (q == me_ ? own : slot(q))[e];
    sum_[e] = acc;
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 2: the owners' downward messages to everyone
// ---------------------------------------------------------------------------------------------

void LiecAllreduce::gather(SparseChunk down, std::span<float> out, std::uint64_t step) {
  SPARCOL_CHECK_ARG(down_ == Payload::kSparse, me_, "liec_allreduce: a sparse download to a dense gather");
  SPARCOL_CHECK_ARG(
      out.size() == n_, me_,
      "liec_allreduce: gather into " + std::to_string(out.size()) + " elements, n = " + std::to_string(n_));
  SPARCOL_CHECK_ARG(down.indices.size() == down.values.size(), me_,
                    "liec_allreduce: " + std::to_string(down.indices.size()) + " indices and " +
                        std::to_string(down.values.size()) + " values");
  const std::uint64_t lo = chunk_begin(me_), hi = chunk_begin(me_ + 1);
  for (const Index i : down.indices)
    SPARCOL_CHECK_ARG(i >= lo && i < hi, me_,
                      "liec_allreduce: downward index " + std::to_string(i) + " outside this rank's chunk [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + ")");
  agree_phase(step, 1);
  const auto K = static_cast<std::size_t>(K_);
  const std::uint64_t mine = down.size();
  allgather_small(backend_, &mine, sizeof mine, down_counts_.data(), kTag);
  down_sent_ = down_recv_ = static_cast<std::uint64_t>(K - 1) * sizeof(std::uint64_t);
  std::uint64_t total = 0;
  for (const auto c : down_counts_) total += c;
  if (down_idx_.size() < total) {
    down_idx_.resize(total);
    down_val_.resize(total);
  }
  // Owner r's pairs at offsets_[r] (recomputed here for phase 2).
  offsets_[0] = 0;
  for (std::size_t r = 0; r < K; ++r) offsets_[r + 1] = offsets_[r] + down_counts_[r];
  const auto me = static_cast<std::size_t>(me_);
  std::copy(down.indices.begin(), down.indices.end(),
            down_idx_.begin() + static_cast<std::ptrdiff_t>(offsets_[me]));
  std::copy(down.values.begin(), down.values.end(),
            down_val_.begin() + static_cast<std::ptrdiff_t>(offsets_[me]));
  reqs_.clear();
  for (int i = 1; i < K_; ++i) {
    const int from = (me_ - i + K_) % K_;
    const auto fs = static_cast<std::size_t>(from);
    const std::uint64_t c = down_counts_[fs];
    if (c == 0) continue;
    reqs_.push_back(backend_.irecv(down_idx_.data() + offsets_[fs], c * sizeof(Index), from, kTag));
    reqs_.push_back(backend_.irecv(down_val_.data() + offsets_[fs], c * sizeof(float), from, kTag));
    down_recv_ += c * kPairBytes;
  }
  if (mine > 0) {
    for (int i = 1; i < K_; ++i) {
      const int to = (me_ + i) % K_;
      reqs_.push_back(backend_.isend(down_idx_.data() + offsets_[me], mine * sizeof(Index), to, kTag));
      reqs_.push_back(backend_.isend(down_val_.data() + offsets_[me], mine * sizeof(float), to, kTag));
      down_sent_ += mine * kPairBytes;
    }
  }
  backend_.wait_all(reqs_);
  std::fill(out.begin(), out.end(), 0.0f);
  for (std::size_t r = 0; r < K; ++r) {
    const std::uint64_t b = chunk_begin(static_cast<int>(r)), e = chunk_begin(static_cast<int>(r) + 1);
    for (std::uint64_t j = offsets_[r]; j < offsets_[r + 1]; ++j) {
      const Index i = down_idx_[j];
      // Checked here too: another rank's indices are only as good as its check.
      SPARCOL_CHECK(i >= b && i < e, ErrorCode::kInternal, me_,
                    "liec_allreduce: owner " + std::to_string(r) + " sent index " + std::to_string(i) +
                        " outside its chunk");
      out[i] = down_val_[j];
    }
  }
}

void LiecAllreduce::gather(std::span<const float> down, std::span<float> out, std::uint64_t step) {
  SPARCOL_CHECK_ARG(down_ == Payload::kDense, me_, "liec_allreduce: a dense download to a sparse gather");
  SPARCOL_CHECK_ARG(
      out.size() == n_, me_,
      "liec_allreduce: gather into " + std::to_string(out.size()) + " elements, n = " + std::to_string(n_));
  SPARCOL_CHECK_ARG(down.size() == chunk_size(me_), me_,
                    "liec_allreduce: a dense download of " + std::to_string(down.size()) +
                        " elements for a chunk of " + std::to_string(chunk_size(me_)));
  agree_phase(step, 1);
  std::fill(down_counts_.begin(), down_counts_.end(), 0);
  const std::uint64_t mine = down.size();
  // down may be this rank's chunk of out itself (nothing to copy then).
  if (down.data() != out.data() + chunk_begin(me_))
    std::copy_n(down.data(), mine, out.data() + chunk_begin(me_));
  reqs_.clear();
  down_sent_ = down_recv_ = 0;
  for (int i = 1; i < K_; ++i) {
    const int from = (me_ - i + K_) % K_;
    const std::uint64_t len = chunk_size(from);
    if (len == 0) continue;
    reqs_.push_back(backend_.irecv(out.data() + chunk_begin(from), len * sizeof(float), from, kTag));
    down_recv_ += len * sizeof(float);
  }
  if (mine > 0) {
    for (int i = 1; i < K_; ++i) {
      const int to = (me_ + i) % K_;
      reqs_.push_back(backend_.isend(out.data() + chunk_begin(me_), mine * sizeof(float), to, kTag));
      down_sent_ += mine * sizeof(float);
    }
  }
  backend_.wait_all(reqs_);
}

// ---------------------------------------------------------------------------------------------
// Host references (tests)
// ---------------------------------------------------------------------------------------------

std::vector<float> liec_reference_sum(const std::vector<SparseChunk>& ups, std::uint64_t n) {
  std::vector<float> sum(n, 0.0f);
  for (const auto& u : ups)
    for (std::size_t j = 0; j < u.size(); ++j) sum[u.indices[j]] += u.values[j];
  return sum;
}

std::vector<float> liec_reference_gather(const std::vector<SparseChunk>& downs, std::uint64_t n) {
  std::vector<float> c(n, 0.0f);
  for (const auto& d : downs)
    for (std::size_t j = 0; j < d.size(); ++j) c[d.indices[j]] = d.values[j];
  return c;
}

}  // namespace sparcol::coll
