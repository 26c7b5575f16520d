#include "sparcol/coll/ring_allreduce.hpp"

#include <algorithm>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::coll {

RingAllreduce::RingAllreduce(comm::Backend& backend, std::size_t count, std::size_t piece_bytes)
    : backend_(backend), count_(count), piece_floats_(std::max<std::size_t>(1, piece_bytes / sizeof(float))) {
  const int n = backend_.size();
  scratch_.resize(seg_len(0));  // segment 0 is the longest (balanced split puts the remainder first)
  for (int s = 0; s < n - 1; ++s) {
    const int r = backend_.rank();
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
  agree(backend_, CallSignature{CollOp::kRingAllreduce, count_, 0, 0, step, 0, 0});
  run_unchecked(data);
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
      float* __restrict t = target + off;
      const float* __restrict s = recv + off;
      for (std::size_t i = 0; i < len; ++i) t[i] += s[i];
    }
  }
  backend_.wait_all(std::span<comm::Request>(reqs_).subspan(recv_pieces));
}

void RingAllreduce::run_unchecked(float* data) {
  const int n = backend_.size();
  if (n == 1 || count_ == 0) return;
  const int r = backend_.rank();
  auto mod = [n](int x) { return ((x % n) + n) % n; };

  // Phase 1: reduce-scatter.
  for (int s = 0; s < n - 1; ++s) {
    const int send_seg = mod(r - s), recv_seg = mod(r - s - 1);
    exchange(data + seg_start(send_seg), seg_len(send_seg), scratch_.data(), seg_len(recv_seg), true,
             data + seg_start(recv_seg));
  }
  // Phase 2: all-gather of the reduced segments; rank r starts with segment r+1.
  for (int s = 0; s < n - 1; ++s) {
    const int send_seg = mod(r + 1 - s), recv_seg = mod(r - s);
    exchange(data + seg_start(send_seg), seg_len(send_seg), data + seg_start(recv_seg), seg_len(recv_seg), false,
             nullptr);
  }
}

void ring_allreduce_sum(comm::Backend& backend, float* data, std::size_t count) {
  RingAllreduce(backend, count).run(data);
}

}  // namespace sparcol::coll
