#include "sparcol/coll/ring_allreduce.hpp"

#include <algorithm>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::coll {

RingAllreduce::RingAllreduce(comm::Backend& backend, std::size_t count, std::size_t piece_bytes,
                             Algorithm algorithm, device::Exec* exec)
    : backend_(backend),
      count_(count),
      piece_floats_(std::max<std::size_t>(1, piece_bytes / sizeof(float))),
      exec_(exec) {
  const int n = backend_.size();
  const MemKind memory = exec_ != nullptr ? exec_->kind() : MemKind::kHost;
  SPARCOL_CHECK_ARG(backend_.accepts(memory), backend_.rank(),
                    "ring_allreduce: backend " + backend_.name() + " does not move " +
                        (memory == MemKind::kDevice ? "device" : "host") + " memory");
  native_ = algorithm == Algorithm::kNative ||
            (algorithm == Algorithm::kAuto && backend_.mem_kind() == MemKind::kDevice);
  direct_ = !native_ &&
            (algorithm == Algorithm::kDirect || (algorithm == Algorithm::kAuto && n <= kDirectMaxRanks &&
                                                 count * sizeof(float) <= kDirectMaxBytes));
  // Segment 0 is the longest (the balanced split puts the remainder first).
  const std::size_t scratch_len = native_   ? 0
                                  : direct_ ? static_cast<std::size_t>(n - 1) * seg_len(backend_.rank())
                                            : seg_len(0);
  if (exec_ != nullptr) {
    d_scratch_.assign(*exec_, scratch_len, "ring all-reduce scratch");
  } else {
    scratch_.resize(scratch_len);
  }
  const int r = backend_.rank();
  if (native_) {
    // What a bandwidth-optimal all-reduce sends; the library's own algorithm may differ.
    bytes_per_run_ = 2 * 4 * count_ * static_cast<std::size_t>(n - 1) / static_cast<std::size_t>(n);
    return;
  }
  if (direct_) {
    // Every segment but its own once, then its own to each of the K-1 others.
    bytes_per_run_ = 4 * ((count_ - seg_len(r)) + static_cast<std::size_t>(n - 1) * seg_len(r));
    return;
  }
  for (int s = 0; s < n - 1; ++s) {
    bytes_per_run_ += 4 * (seg_len(((r - s) % n + n) % n) + seg_len(((r + 1 - s) % n + n) % n));
  }
}

std::size_t RingAllreduce::seg_start(int i) const {
  const auto n = static_cast<std::size_t>(backend_.size());
  const std::size_t q = count_ / n, rem = count_ % n;
  const auto ui = static_cast<std::size_t>(i);
  return ui * q + std::min(ui, rem);
}

void RingAllreduce::run(float* data, std::uint64_t step) {
  Agreement pending(backend_, CallSignature{CollOp::kRingAllreduce, count_, 0, 0, step, 0, 0});
  run_with(data, pending);
}

void RingAllreduce::run_with(float* data, Agreement& pending) {
  if (direct_ && backend_.size() > 1 && count_ > 0) {
    run_direct(data, &pending);
    if (exec_ != nullptr) exec_->synchronize();
    return;
  }
  pending.finish();
  run_unchecked(data);
}

void RingAllreduce::settle_device_work() {
  // Work queued on the backend's own stream is ordered with its transfers; anything else must have
  // finished before a host backend copies the buffers (staging) or another stream reads them.
  if (exec_ != nullptr && exec_->on_device() && exec_->stream().handle() != backend_.stream_handle())
    exec_->synchronize();
}

// One ring step: send [send, send_len) to the right neighbour while receiving recv_len floats from
// the left one, piece by piece. With reduce, each received piece is added into target; otherwise
// pieces land directly in recv.
void RingAllreduce::exchange(const float* send, std::size_t send_len, float* recv, std::size_t recv_len,
                             bool reduce, float* target) {
  const int n = backend_.size();
  const int r = backend_.rank();
  const int right = (r + 1) % n, left = (r - 1 + n) % n;
  const std::size_t send_pieces = (send_len + piece_floats_ - 1) / piece_floats_;
  const std::size_t recv_pieces = (recv_len + piece_floats_ - 1) / piece_floats_;
  settle_device_work();  // the previous step's reductions: sent now, or read from the receive buffer
  reqs_.clear();
  // Receives first (so that messages find a posted buffer), then sends.
  for (std::size_t p = 0; p < recv_pieces; ++p) {
    const std::size_t off = p * piece_floats_, len = std::min(piece_floats_, recv_len - off);
    reqs_.push_back(backend_.irecv(recv + off, len * sizeof(float), left, comm::kTagRing));
  }
  for (std::size_t p = 0; p < send_pieces; ++p) {
    const std::size_t off = p * piece_floats_, len = std::min(piece_floats_, send_len - off);
    reqs_.push_back(backend_.isend(send + off, len * sizeof(float), right, comm::kTagRing));
  }
  for (std::size_t p = 0; p < recv_pieces; ++p) {
    backend_.wait(reqs_[p]);
    if (reduce) {
      const std::size_t off = p * piece_floats_, len = std::min(piece_floats_, recv_len - off);
      if (exec_ != nullptr) {
        device::dispatch::add_into(*exec_, target + off, recv + off, len);  // the same rounded sums
        continue;
      }
      float* __restrict t = target + off;
      const float* __restrict s = recv + off;
      for (std::size_t i = 0; i < len; ++i) t[i] += s[i];
    }
  }
  backend_.wait_all(std::span<comm::Request>(reqs_).subspan(recv_pieces));
}

void RingAllreduce::run_unchecked(float* data) {
  if (backend_.size() == 1 || count_ == 0) return;
  if (native_) {
    settle_device_work();
    backend_.allreduce_sum(data, count_);
  } else if (direct_) {
    run_direct(data, nullptr);
  } else {
    run_ring(data);
  }
  if (exec_ != nullptr) exec_->synchronize();  // the result is in place when run() returns
}

void RingAllreduce::run_direct(float* data, Agreement* pending) {
  const int n = backend_.size();
  const int r = backend_.rank();
  const std::size_t mine = seg_len(r);
  float* own = data + seg_start(r);
  // With a pending agreement the first round carries the fingerprints too; its data messages then use
  // the call's own tag (see Agreement) and land in scratch, which is not read before the check passed.
  const int tag = pending != nullptr ? pending->data_tag() : comm::kTagRing;
  // Phase 1: reduce-scatter in one round. The i-th receive comes from rank r-i and the i-th send goes to
  // rank r+i, so at every position of the posting order the ranks form a permutation. Scratch slot
  // for rank q: q for q < r, q - 1 for q > r (segment r is not sent to itself).
  float* const scratch_base = scratch();
  auto slot = [&](int q) { return scratch_base + static_cast<std::size_t>(q < r ? q : q - 1) * mine; };
  settle_device_work();
  reqs_.clear();
  if (mine > 0) {
    for (int i = 1; i < n; ++i) {
      const int from = (r - i + n) % n;
      reqs_.push_back(backend_.irecv(slot(from), mine * sizeof(float), from, tag));
    }
  }
  for (int i = 1; i < n; ++i) {
    const int to = (r + i) % n;
    if (seg_len(to) > 0)
      reqs_.push_back(backend_.isend(data + seg_start(to), seg_len(to) * sizeof(float), to, tag));
  }
  if (pending != nullptr) {
    try {
      pending->finish();
    } catch (...) {
      reqs_.clear();  // cancels what is still pending
      throw;
    }
  }
  backend_.wait_all(reqs_);
  // Sum in rank order, a cache-sized chunk at a time: acc = x_0 + x_1 + ... + x_{K-1}, where x_r is
  // this rank's own copy (in `own`) and the others are in scratch.
  if (exec_ != nullptr && mine > 0) {
    // Whole segments instead of chunks, in the same order per element: x_0 is accumulated where it
    // lies (own for rank 0, its scratch slot otherwise) and the sum copied to own.
    float* acc0 = r == 0 ? own : slot(0);
    for (int q = 1; q < n; ++q) device::dispatch::add_into(*exec_, acc0, q == r ? own : slot(q), mine);
    if (r != 0) exec_->copy(own, acc0, mine * sizeof(float));
    settle_device_work();  // own is sent below
  }
  constexpr std::size_t kChunk = 2048;
  float acc[kChunk];
  for (std::size_t off = 0; exec_ == nullptr && off < mine; off += kChunk) {
    const std::size_t len = std::min(kChunk, mine - off);
    const float* first = (r == 0 ? own : slot(0)) + off;
    std::copy(first, first + len, acc);
    for (int q = 1; q < n; ++q) {
      const float* __restrict x = (q == r ? own : slot(q)) + off;
      for (std::size_t e = 0; e < len; ++e) acc[e] += x[e];
    }
    std::copy(acc, acc + len, own + off);
  }
  // Phase 2: all-gather in one round, straight into `data`.
  reqs_.clear();
  for (int i = 1; i < n; ++i) {
    const int from = (r - i + n) % n;
    if (seg_len(from) > 0)
      reqs_.push_back(backend_.irecv(data + seg_start(from), seg_len(from) * sizeof(float), from, tag));
  }
  if (mine > 0) {
    for (int i = 1; i < n; ++i) reqs_.push_back(backend_.isend(own, mine * sizeof(float), (r + i) % n, tag));
  }
  backend_.wait_all(reqs_);
}

void RingAllreduce::run_ring(float* data) {
  const int n = backend_.size();
  const int r = backend_.rank();
  auto mod = [n](int x) { return ((x % n) + n) % n; };

  // Phase 1: reduce-scatter.
  for (int s = 0; s < n - 1; ++s) {
    const int send_seg = mod(r - s), recv_seg = mod(r - s - 1);
    exchange(data + seg_start(send_seg), seg_len(send_seg), scratch(), seg_len(recv_seg), true,
             data + seg_start(recv_seg));
  }
  // Phase 2: all-gather of the reduced segments; rank r starts with segment r+1.
  for (int s = 0; s < n - 1; ++s) {
    const int send_seg = mod(r + 1 - s), recv_seg = mod(r - s);
    exchange(data + seg_start(send_seg), seg_len(send_seg), data + seg_start(recv_seg), seg_len(recv_seg),
             false, nullptr);
  }
}

void ring_allreduce_sum(comm::Backend& backend, float* data, std::size_t count) {
  RingAllreduce(backend, count).run(data);
}

}  // namespace sparcol::coll
