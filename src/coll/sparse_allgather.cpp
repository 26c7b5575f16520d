#include "sparcol/coll/sparse_allgather.hpp"

#include <cstring>
#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/coll_support.hpp"

namespace sparcol::coll {

SparseAllgather::SparseAllgather(comm::Backend& backend, std::uint64_t n, std::size_t expected_k,
                                 Algorithm algorithm, device::Exec* exec)
    : backend_(backend), n_(n), algorithm_(algorithm), exec_(exec) {
  SPARCOL_CHECK_ARG(
      n <= kMaxElements, backend.rank(),
      "sparse_allgather: vectors longer than 2^32-1 elements are not supported (uint32 indices; n = " +
          std::to_string(n) + ")");
  reqs_.reserve(4 * static_cast<std::size_t>(backend.size()));
  if (exec_ != nullptr) {
    SPARCOL_CHECK_ARG(backend.accepts(exec_->kind()), backend.rank(),
                      "sparse_allgather: backend " + backend.name() + " does not move " +
                          (exec_->on_device() ? "device" : "host") + " memory");
    const std::size_t cap = expected_k * static_cast<std::size_t>(backend.size());
    d_idx_.assign(*exec_, cap, "sparse all-gather indices");
    d_val_.assign(*exec_, cap, "sparse all-gather values");
    return;
  }
  buffer_.reserve(expected_k * static_cast<std::size_t>(backend.size()) * kPairBytes);
}

const std::byte* SparseAllgather::block(int r) const {
  return r == backend_.rank() ? own_.data() : buffer_.data() + kPairBytes * offset(r);
}

SparseChunk SparseAllgather::chunk(int r) const {
  const std::size_t k = count(r);
  if (exec_ != nullptr) return {{d_idx_.data() + offset(r), k}, {d_val_.data() + offset(r), k}};
  const std::byte* b = block(r);
  return {{reinterpret_cast<const Index*>(b), k}, {reinterpret_cast<const float*>(b + sizeof(Index) * k), k}};
}

void SparseAllgather::check_pairs(SparseChunk pairs) const {
  const int me = backend_.rank();
  SPARCOL_CHECK_ARG(pairs.indices.size() == pairs.values.size(), me,
                    "sparse_allgather: " + std::to_string(pairs.indices.size()) + " indices but " +
                        std::to_string(pairs.values.size()) + " values");
  for (std::size_t i = 0; i < pairs.indices.size(); ++i) {
    SPARCOL_CHECK_ARG(pairs.indices[i] < n_, me,
                      "sparse_allgather: index " + std::to_string(pairs.indices[i]) + " at position " +
                          std::to_string(i) + " is out of range for a vector of " + std::to_string(n_) +
                          " elements");
  }
}

void SparseAllgather::run(SparseChunk pairs, std::uint64_t step) {
  if (exec_ != nullptr) {
    run_exec(pairs, step);
    return;
  }
  check_pairs(pairs);
  // (1) Fingerprint + counts in one small exchange.
  Agreement pending(backend_, CallSignature{CollOp::kSparseAllgather, n_, 0, 0, step, 0, 0},
                    RankLocal{pairs.size(), 0}, /*need_locals=*/true);
  const int me = backend_.rank();
  const int n = backend_.size();
  last_sent_ = last_recv_ = 0;
  reqs_.clear();
  const bool early = n > 1 && use_direct();
  if (early) {
    // Direct: this rank's pairs do not depend on anyone's count, so they leave in the fingerprint
    // round, under the call's own tag (see Agreement), as two messages (pairs) straight from
    // the caller's spans; the copy into own_ below then overlaps the transfers. Only the receives
    // wait for the counts.
    const int tag = pending.data_tag();
    if (!pairs.indices.empty()) {
      for (int i = 1; i < n; ++i) {
        const int to = (me + i) % n;
        reqs_.push_back(backend_.isend(pairs.indices.data(), pairs.indices.size_bytes(), to, tag));
        reqs_.push_back(backend_.isend(pairs.values.data(), pairs.values.size_bytes(), to, tag));
        last_sent_ += pairs.indices.size_bytes() + pairs.values.size_bytes();
      }
    }
  }
  stage_own(pairs);
  std::vector<std::size_t> counts;
  try {
    const auto& locals = pending.finish();
    for (const auto& l : locals) counts.push_back(l.count);
  } catch (...) {
    reqs_.clear();  // cancels what is still pending
    throw;
  }
  set_counts(counts);
  if (n == 1) return;
  if (early) {
    // Each block arrives as its two messages, matched in order (same source and tag).
    const int tag = pending.data_tag();
    for (int i = 1; i < n; ++i) {
      const int from = (me - i + n) % n;
      const std::size_t k = count(from);
      if (k == 0) continue;
      std::byte* dst = buffer_.data() + kPairBytes * offset(from);
      reqs_.push_back(backend_.irecv(dst, k * sizeof(Index), from, tag));
      reqs_.push_back(backend_.irecv(dst + k * sizeof(Index), k * sizeof(float), from, tag));
      last_recv_ += kPairBytes * k;
    }
    backend_.wait_all(reqs_);
  } else if (use_direct()) {
    exchange_direct();
  } else {
    exchange_ring();
  }
}

void SparseAllgather::run_agreed(SparseChunk pairs, std::span<const std::size_t> counts) {
  if (exec_ != nullptr) {
    place_own_exec(pairs, counts);
    last_sent_ = last_recv_ = 0;
    if (backend_.size() > 1) {
      if (use_direct()) {
        exchange_direct_exec();
      } else {
        exchange_ring_exec();
      }
    }
    exec_->synchronize();
    return;
  }
  stage_own(pairs);
  set_counts(counts);
  last_sent_ = last_recv_ = 0;
  if (backend_.size() == 1) return;
  if (use_direct()) {
    exchange_direct();
  } else {
    exchange_ring();
  }
}

void SparseAllgather::stage_own(SparseChunk pairs) {
  own_.resize(pairs.indices.size() * kPairBytes);
  if (!pairs.indices.empty()) {
    std::memcpy(own_.data(), pairs.indices.data(), pairs.indices.size_bytes());
    std::memcpy(own_.data() + pairs.indices.size_bytes(), pairs.values.data(), pairs.values.size_bytes());
  }
}

void SparseAllgather::set_counts(std::span<const std::size_t> counts) {
  const int me = backend_.rank();
  const int n = backend_.size();
  SPARCOL_CHECK(counts.size() == static_cast<std::size_t>(n) &&
                    counts[static_cast<std::size_t>(me)] * kPairBytes == own_.size(),
                ErrorCode::kInternal, me,
                "sparse_allgather: counts do not match the world or this rank's pairs");
  counts_.assign(counts.begin(), counts.end());
  offsets_.assign(static_cast<std::size_t>(n) + 1, 0);
  for (int r = 0; r < n; ++r)
    offsets_[static_cast<std::size_t>(r) + 1] =
        offsets_[static_cast<std::size_t>(r)] + counts_[static_cast<std::size_t>(r)];
  total_ = offsets_[static_cast<std::size_t>(n)];
  // Every block has its slot; this rank's own stays unused (its block lives in own_, so that it can
  // be sent before the others' counts are known).
  buffer_.resize(total_ * kPairBytes);
}

bool SparseAllgather::use_direct() const {
  if (algorithm_ == Algorithm::kDirect) return true;
  if (algorithm_ == Algorithm::kRing) return false;
  return backend_.size() <= kDirectMaxRanks;
}

// (2a) Every rank sends its own block straight to every other rank: one round, no forwarding. The
// i-th message goes to rank me+i and the i-th receive comes from rank me-i, so at each position of
// the posting order the ranks form a permutation and no rank is every rank's first target.
void SparseAllgather::receive_direct(int tag) {
  const int me = backend_.rank();
  const int n = backend_.size();
  for (int i = 1; i < n; ++i) {
    const int from = (me - i + n) % n;
    const std::size_t bytes = kPairBytes * count(from);
    reqs_.push_back(backend_.irecv(buffer_.data() + kPairBytes * offset(from), bytes, from, tag));
    last_recv_ += bytes;
  }
}

void SparseAllgather::exchange_direct() {
  const int me = backend_.rank();
  const int n = backend_.size();
  reqs_.clear();
  receive_direct(comm::kTagSparse);
  for (int i = 1; i < n; ++i) {
    reqs_.push_back(backend_.isend(own_.data(), own_.size(), (me + i) % n, comm::kTagSparse));
    last_sent_ += own_.size();
  }
  backend_.wait_all(reqs_);
}

// (2b) Ring all-gather of the variable-size blocks: K-1 steps of one message each way.
void SparseAllgather::exchange_ring() {
  const int me = backend_.rank();
  const int n = backend_.size();
  const int right = (me + 1) % n, left = (me - 1 + n) % n;
  for (int s = 0; s < n - 1; ++s) {
    const int send_blk = ((me - s) % n + n) % n, recv_blk = ((me - s - 1) % n + n) % n;
    const std::size_t send_bytes = kPairBytes * count(send_blk), recv_bytes = kPairBytes * count(recv_blk);
    comm::Request reqs[2] = {
        backend_.irecv(buffer_.data() + kPairBytes * offset(recv_blk), recv_bytes, left, comm::kTagSparse),
        backend_.isend(block(send_blk), send_bytes, right, comm::kTagSparse)};
    backend_.wait_all(reqs);
    last_sent_ += send_bytes;
    last_recv_ += recv_bytes;
  }
}

void SparseAllgather::sum_into(float* out, float divisor) const {
  if (exec_ != nullptr) {
    device::dispatch::sparse_sum(*exec_, {d_idx_.span().first(total_), d_val_.span().first(total_)}, n_,
                                 divisor, out);
    exec_->synchronize();
    return;
  }
  if (n_ != 0) std::memset(out, 0, n_ * sizeof(float));  // out may be null when n = 0
  accumulate_into(out, 1.0f);
  if (divisor != 1.0f)
    for (std::uint64_t i = 0; i < n_; ++i) out[i] /= divisor;
}

void SparseAllgather::accumulate_into(float* out, float scale) const {
  SPARCOL_CHECK_ARG(exec_ == nullptr || !exec_->on_device(), backend_.rank(),
                    "sparse_allgather: accumulate_into needs host memory (use sum_into on device memory)");
  for (int r = 0; r < ranks(); ++r) {
    const SparseChunk c = chunk(r);
    if (scale == 1.0f) {
      for (std::size_t i = 0; i < c.size(); ++i) out[c.indices[i]] += c.values[i];
    } else {
      for (std::size_t i = 0; i < c.size(); ++i) out[c.indices[i]] += scale * c.values[i];
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Device path (exec_ set): the same algorithm on the split layout (all indices, then all values).
// ------------------------------------------------------------------------------------------------

void SparseAllgather::settle_device_work() const {
  // Copies and kernels queued on the executor must finish before buffers are handed to a backend
  // that does not share its stream (host staging reads them synchronously).
  if (exec_->on_device() && exec_->stream().handle() != backend_.stream_handle()) exec_->synchronize();
}

void SparseAllgather::check_pairs_exec(SparseChunk pairs) const {
  const int me = backend_.rank();
  SPARCOL_CHECK_ARG(pairs.indices.size() == pairs.values.size(), me,
                    "sparse_allgather: " + std::to_string(pairs.indices.size()) + " indices but " +
                        std::to_string(pairs.values.size()) + " values");
  const std::uint64_t bad =
      device::dispatch::first_bad_index(*exec_, pairs.indices.data(), pairs.indices.size(), n_);
  if (bad == device::kNoBadIndex) return;
  Index value = 0;
  exec_->download(&value, pairs.indices.data() + bad, sizeof value);
  throw Error(ErrorCode::kInvalidArgument, me,
              "sparse_allgather: index " + std::to_string(value) + " at position " + std::to_string(bad) +
                  " is out of range for a vector of " + std::to_string(n_) + " elements");
}

// Counts, offsets and room for every block; this rank's pairs copied into its own slot.
void SparseAllgather::place_own_exec(SparseChunk pairs, std::span<const std::size_t> counts) {
  const int me = backend_.rank();
  const int n = backend_.size();
  SPARCOL_CHECK(counts.size() == static_cast<std::size_t>(n) &&
                    counts[static_cast<std::size_t>(me)] == pairs.indices.size() &&
                    pairs.indices.size() == pairs.values.size(),
                ErrorCode::kInternal, me,
                "sparse_allgather: counts do not match the world or this rank's pairs");
  counts_.assign(counts.begin(), counts.end());
  offsets_.assign(static_cast<std::size_t>(n) + 1, 0);
  for (int r = 0; r < n; ++r)
    offsets_[static_cast<std::size_t>(r) + 1] =
        offsets_[static_cast<std::size_t>(r)] + counts_[static_cast<std::size_t>(r)];
  total_ = offsets_[static_cast<std::size_t>(n)];
  if (d_idx_.size() < total_) {
    // Grows to the largest total seen (a threshold compressor's counts vary from step to step).
    d_idx_.assign(*exec_, total_, "sparse all-gather indices");
    d_val_.assign(*exec_, total_, "sparse all-gather values");
  }
  exec_->copy(d_idx_.data() + offset(me), pairs.indices.data(), pairs.indices.size_bytes());
  exec_->copy(d_val_.data() + offset(me), pairs.values.data(), pairs.values.size_bytes());
}

// Block `blk` arrives from rank `from` as two messages, its indices then its values (same source
// and tag: received in order).
void SparseAllgather::receive_exec(int blk, int from, int tag) {
  const std::size_t k = count(blk);
  reqs_.push_back(backend_.irecv(d_idx_.data() + offset(blk), k * sizeof(Index), from, tag));
  reqs_.push_back(backend_.irecv(d_val_.data() + offset(blk), k * sizeof(float), from, tag));
  last_recv_ += kPairBytes * k;
}

void SparseAllgather::send_own_exec(int to, int tag) {
  const int me = backend_.rank();
  const std::size_t k = count(me);
  reqs_.push_back(backend_.isend(d_idx_.data() + offset(me), k * sizeof(Index), to, tag));
  reqs_.push_back(backend_.isend(d_val_.data() + offset(me), k * sizeof(float), to, tag));
  last_sent_ += kPairBytes * k;
}

void SparseAllgather::run_exec(SparseChunk pairs, std::uint64_t step) {
  check_pairs_exec(pairs);
  Agreement pending(backend_, CallSignature{CollOp::kSparseAllgather, n_, 0, 0, step, 0, 0},
                    RankLocal{pairs.size(), 0}, /*need_locals=*/true);
  const int me = backend_.rank();
  const int n = backend_.size();
  last_sent_ = last_recv_ = 0;
  reqs_.clear();
  const bool early = n > 1 && use_direct();
  const int tag = pending.data_tag();
  if (early && !pairs.indices.empty()) {
    // As on the host: this rank's pairs leave in the fingerprint round, from the caller's buffers
    // (ready: check_pairs_exec waited for the executor). Zero-pair ranks send nothing here, and the
    // receivers below expect nothing from them.
    for (int i = 1; i < n; ++i) {
      const int to = (me + i) % n;
      reqs_.push_back(backend_.isend(pairs.indices.data(), pairs.indices.size_bytes(), to, tag));
      reqs_.push_back(backend_.isend(pairs.values.data(), pairs.values.size_bytes(), to, tag));
      last_sent_ += pairs.indices.size_bytes() + pairs.values.size_bytes();
    }
  }
  std::vector<std::size_t> counts;
  try {
    for (const auto& l : pending.finish()) counts.push_back(l.count);
  } catch (...) {
    reqs_.clear();  // cancels what is still pending
    throw;
  }
  place_own_exec(pairs, counts);
  if (n > 1) {
    if (early) {
      for (int i = 1; i < n; ++i) {
        const int from = (me - i + n) % n;
        if (count(from) > 0) receive_exec(from, from, tag);
      }
      backend_.wait_all(reqs_);
    } else if (use_direct()) {
      exchange_direct_exec();
    } else {
      exchange_ring_exec();
    }
  }
  exec_->synchronize();
}

void SparseAllgather::exchange_direct_exec() {
  const int me = backend_.rank();
  const int n = backend_.size();
  settle_device_work();  // the own block was just copied into place
  reqs_.clear();
  for (int i = 1; i < n; ++i) receive_exec((me - i + n) % n, (me - i + n) % n, comm::kTagSparse);
  for (int i = 1; i < n; ++i) send_own_exec((me + i) % n, comm::kTagSparse);
  backend_.wait_all(reqs_);
}

void SparseAllgather::exchange_ring_exec() {
  const int me = backend_.rank();
  const int n = backend_.size();
  const int right = (me + 1) % n, left = (me - 1 + n) % n;
  settle_device_work();
  for (int s = 0; s < n - 1; ++s) {
    const int send_blk = ((me - s) % n + n) % n, recv_blk = ((me - s - 1) % n + n) % n;
    const std::size_t ks = count(send_blk);
    reqs_.clear();
    receive_exec(recv_blk, left, comm::kTagSparse);
    reqs_.push_back(
        backend_.isend(d_idx_.data() + offset(send_blk), ks * sizeof(Index), right, comm::kTagSparse));
    reqs_.push_back(
        backend_.isend(d_val_.data() + offset(send_blk), ks * sizeof(float), right, comm::kTagSparse));
    last_sent_ += kPairBytes * ks;
    backend_.wait_all(reqs_);
  }
}

}  // namespace sparcol::coll
