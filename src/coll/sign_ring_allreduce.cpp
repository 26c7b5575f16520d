#include "sparcol/coll/sign_ring_allreduce.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::coll {

namespace {

int mod(int x, int n) {
  return ((x % n) + n) % n;
}

// Copies SignLayout words (32-bit) into 64-bit words: the same bytes on a little-endian machine, the
// odd last 32-bit word padded with zeros (core/payload.hpp, BitLayout).
void widen(std::span<const std::uint32_t> w32, std::vector<SignWord>& w64) {
  std::fill(w64.begin(), w64.end(), SignWord{0});
  for (std::size_t i = 0; i < w32.size(); ++i) w64[i / 2] |= static_cast<SignWord>(w32[i]) << (32 * (i % 2));
}

// Merges `mine` into `merged` (len words from global word `first`) at hop h: q = h + 1.
void merge_chunk(std::uint64_t key, std::uint64_t first, std::uint64_t len, std::uint64_t q,
                 const SignWord* mine, SignWord* merged) {
  for (std::uint64_t i = 0; i < len; ++i)
    merged[i] = marsit_merge_word(key, first + i, q, mine[i], merged[i]);
}

}  // namespace

std::uint64_t sign_chunk_start(std::uint64_t words, int ranks, int c) {
  const auto K = static_cast<std::uint64_t>(ranks);
  const auto uc = static_cast<std::uint64_t>(c);
  return uc * (words / K) + std::min(uc, words % K);
}

// ---------------------------------------------------------------------------------------------
// Marsit
// ---------------------------------------------------------------------------------------------

SignRingAllreduce::SignRingAllreduce(comm::Backend& backend, std::uint64_t n)
    : backend_(backend), n_(n), words_(SignLayout64::words_for(n)) {
  SPARCOL_CHECK_ARG(backend.accepts(MemKind::kHost), backend.rank(),
                    "sign_ring_allreduce: backend " + backend.name() + " does not move host memory");
  buf_.resize(words_);
  const int K = backend.size();
  recv_.resize(sign_chunk_start(words_, K, 1) - sign_chunk_start(words_, K, 0));
  scales_.resize(static_cast<std::size_t>(K));
}

void SignRingAllreduce::run(SignBits mine, std::uint64_t seed, std::uint64_t step, std::uint32_t tensor) {
  agree(backend_, CallSignature{CollOp::kSignRingAllreduce, n_, 0, seed, step, tensor, 0});
  run_agreed(mine, seed, step, tensor);
}

void SignRingAllreduce::run_agreed(SignBits mine, std::uint64_t seed, std::uint64_t step,
                                   std::uint32_t tensor) {
  const int me = backend_.rank(), K = backend_.size();
  SPARCOL_CHECK_ARG(mine.n == n_, me,
                    "sign_ring_allreduce: a message of " + std::to_string(mine.n) + " elements given for " +
                        std::to_string(n_) + " elements");
  SPARCOL_CHECK_ARG(mine.words.size() == SignLayout::words_for(n_), me,
                    "sign_ring_allreduce: " + std::to_string(mine.words.size()) + " words given for " +
                        std::to_string(n_) + " elements (expected " +
                        std::to_string(SignLayout::words_for(n_)) + ")");
  last_sent_ = last_recv_ = 0;
  // 1. lambda: the mean of the scales, added in rank order.
  allgather_small(backend_, &mine.scale, sizeof(float), scales_.data(), comm::kTagSign);
  float sum = 0.0f;
  for (const float s : scales_) sum += s;
  scale_ = sum / static_cast<float>(K);
  last_sent_ += static_cast<std::uint64_t>(K - 1) * sizeof(float);
  last_recv_ += static_cast<std::uint64_t>(K - 1) * sizeof(float);
  widen(mine.words, buf_);
  if (K == 1 || words_ == 0) return;
  const int right = (me + 1) % K, left = (me - 1 + K) % K;
  auto start = [&](int c) { return sign_chunk_start(words_, K, c); };
  auto len = [&](int c) { return start(c + 1) - start(c); };
  // 2. Reduce-scatter with the merge.
  for (int s = 0; s < K - 1; ++s) {
    const int send_c = mod(me - s, K), recv_c = mod(me - s - 1, K);
    const std::size_t sbytes = len(send_c) * sizeof(SignWord), rbytes = len(recv_c) * sizeof(SignWord);
    comm::Request reqs[2] = {backend_.irecv(recv_.data(), rbytes, left, comm::kTagSign),
                             backend_.isend(buf_.data() + start(send_c), sbytes, right, comm::kTagSign)};
    backend_.wait_all(reqs);
    last_sent_ += sbytes;
    last_recv_ += rbytes;
    // buf_'s chunk recv_c still holds this rank's own bits: merge the incoming chunk (s + 1 workers)
    // with them, P(take mine) = 1 / (s + 2), and keep the result there.
    const std::uint64_t key =
        marsit_key(seed, step, tensor, static_cast<std::uint32_t>(recv_c), static_cast<std::uint32_t>(s + 1));
    SignWord* own = buf_.data() + start(recv_c);
    for (std::uint64_t i = 0; i < len(recv_c); ++i)
      own[i] = marsit_merge_word(key, start(recv_c) + i, static_cast<std::uint64_t>(s) + 2, own[i], recv_[i]);
  }
  // 3. All-gather of the merged chunks: rank r starts with chunk r + 1.
  for (int s = 0; s < K - 1; ++s) {
    const int send_c = mod(me + 1 - s, K), recv_c = mod(me - s, K);
    const std::size_t sbytes = len(send_c) * sizeof(SignWord), rbytes = len(recv_c) * sizeof(SignWord);
    comm::Request reqs[2] = {backend_.irecv(buf_.data() + start(recv_c), rbytes, left, comm::kTagSign),
                             backend_.isend(buf_.data() + start(send_c), sbytes, right, comm::kTagSign)};
    backend_.wait_all(reqs);
    last_sent_ += sbytes;
    last_recv_ += rbytes;
  }
}

void SignRingAllreduce::decode_into(std::span<float> out) const {
  SPARCOL_CHECK_ARG(out.size() == n_, backend_.rank(),
                    "sign_ring_allreduce: decode into " + std::to_string(out.size()) +
                        " elements, expected " + std::to_string(n_));
  const float s = scale_;
  for (std::uint64_t j = 0; j < n_; ++j) out[j] = SignLayout64::is_set(buf_.data(), j) ? s : -s;
}

std::vector<SignWord> marsit_reference(const std::vector<std::vector<std::uint32_t>>& bits, std::uint64_t n,
                                       std::uint64_t seed, std::uint64_t step, std::uint32_t tensor) {
  const int K = static_cast<int>(bits.size());
  const std::uint64_t W = SignLayout64::words_for(n);
  std::vector<std::vector<SignWord>> wide(bits.size(), std::vector<SignWord>(W));
  for (std::size_t r = 0; r < bits.size(); ++r) widen(bits[r], wide[r]);
  std::vector<SignWord> out(W, 0);
  for (int c = 0; c < K; ++c) {
    const std::uint64_t first = sign_chunk_start(W, K, c), len = sign_chunk_start(W, K, c + 1) - first;
    // The chunk starts as rank c's bits; hop h merges rank c + h's bits with q = h + 1.
    std::copy_n(wide[static_cast<std::size_t>(c)].begin() + static_cast<std::ptrdiff_t>(first), len,
                out.begin() + static_cast<std::ptrdiff_t>(first));
    for (int h = 1; h < K; ++h) {
      const auto& mine = wide[static_cast<std::size_t>(mod(c + h, K))];
      merge_chunk(
          marsit_key(seed, step, tensor, static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(h)), first,
          len, static_cast<std::uint64_t>(h) + 1, mine.data() + first, out.data() + first);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cascading baseline
// ---------------------------------------------------------------------------------------------

SignCascadeAllreduce::SignCascadeAllreduce(comm::Backend& backend, std::uint64_t n)
    : backend_(backend), n_(n), words64_(SignLayout64::words_for(n)) {
  SPARCOL_CHECK_ARG(backend.accepts(MemKind::kHost), backend.rank(),
                    "sign_cascade_allreduce: backend " + backend.name() + " does not move host memory");
  const int K = backend.size();
  slot_off_.assign(static_cast<std::size_t>(K) + 1, 0);
  std::uint64_t widest = 0;
  for (int c = 0; c < K; ++c) {
    slot_off_[static_cast<std::size_t>(c) + 1] =
        slot_off_[static_cast<std::size_t>(c)] + chunk_words32(c) + 1;
    widest = std::max(widest, chunk_size(c));
  }
  final_.resize(slot_off_.back());
  send_.resize(SignLayout::words_for(widest) + 1);
  recv_.resize(SignLayout::words_for(widest) + 1);
  sum_.resize(widest);
}

std::uint64_t SignCascadeAllreduce::chunk_begin(int c) const {
  return std::min(n_, 64 * sign_chunk_start(words64_, backend_.size(), c));
}

std::uint64_t SignCascadeAllreduce::chunk_size(int c) const {
  return chunk_begin(c + 1) - chunk_begin(c);
}

void SignCascadeAllreduce::compress_into(const float* v, std::uint64_t len, std::uint32_t* msg) const {
  // The scaled sign of 1.4, as the compressor "sign" computes it (core/payload.hpp).
  sign_pack({v, len}, msg);
  const float s = sign_scale({v, len});
  std::memcpy(msg + SignLayout::words_for(len), &s, sizeof s);
}

SignBits SignCascadeAllreduce::chunk(int c) const {
  const std::uint64_t w = chunk_words32(c);
  float s;
  std::memcpy(&s, slot(c) + w, sizeof s);
  return {chunk_size(c), {slot(c), w}, s};
}

void SignCascadeAllreduce::run(std::span<const float> p, std::uint64_t step) {
  agree(backend_, CallSignature{CollOp::kSignCascade, n_, 0, 0, step, 0, 0});
  run_agreed(p);
}

void SignCascadeAllreduce::run_agreed(std::span<const float> p) {
  const int me = backend_.rank(), K = backend_.size();
  SPARCOL_CHECK_ARG(
      p.size() == n_, me,
      "sign_cascade_allreduce: " + std::to_string(p.size()) + " elements given for " + std::to_string(n_));
  last_sent_ = last_recv_ = 0;
  const int right = (me + 1) % K, left = (me - 1 + K) % K;
  auto msg_bytes = [&](int c) { return (chunk_words32(c) + 1) * sizeof(std::uint32_t); };
  // Hop 0: this rank's own chunk, compressed once.
  compress_into(p.data() + chunk_begin(me), chunk_size(me), send_.data());
  for (int s = 0; s < K - 1; ++s) {
    const int send_c = mod(me - s, K), recv_c = mod(me - s - 1, K);
    comm::Request reqs[2] = {backend_.irecv(recv_.data(), msg_bytes(recv_c), left, comm::kTagSign),
                             backend_.isend(send_.data(), msg_bytes(send_c), right, comm::kTagSign)};
    backend_.wait_all(reqs);
    last_sent_ += msg_bytes(send_c);
    last_recv_ += msg_bytes(recv_c);
    // Decode, add the own chunk, re-compress (the next hop's message).
    const std::uint64_t len = chunk_size(recv_c), b = chunk_begin(recv_c);
    float scale;
    std::memcpy(&scale, recv_.data() + SignLayout::words_for(len), sizeof scale);
    for (std::uint64_t j = 0; j < len; ++j)
      sum_[j] = (SignLayout::is_set(recv_.data(), j) ? scale : -scale) + p[b + j];
    compress_into(sum_.data(), len, send_.data());
  }
  // send_ holds the final message of chunk (me + 1) mod K (chunk me when K = 1).
  const int own = mod(me + 1, K);
  std::copy_n(send_.data(), chunk_words32(own) + 1, slot(own));
  for (int s = 0; s < K - 1; ++s) {
    const int send_c = mod(me + 1 - s, K), recv_c = mod(me - s, K);
    comm::Request reqs[2] = {backend_.irecv(slot(recv_c), msg_bytes(recv_c), left, comm::kTagSign),
                             backend_.isend(slot(send_c), msg_bytes(send_c), right, comm::kTagSign)};
    backend_.wait_all(reqs);
    last_sent_ += msg_bytes(send_c);
    last_recv_ += msg_bytes(recv_c);
  }
}

void SignCascadeAllreduce::decode_into(std::span<float> out) const {
  SPARCOL_CHECK_ARG(out.size() == n_, backend_.rank(),
                    "sign_cascade_allreduce: decode into " + std::to_string(out.size()) +
                        " elements, expected " + std::to_string(n_));
  const int K = backend_.size();
  const auto kf = static_cast<float>(K);
  for (int c = 0; c < K; ++c) {
    const SignBits m = chunk(c);
    const std::uint64_t b = chunk_begin(c);
    for (std::uint64_t j = 0; j < m.n; ++j) out[b + j] = (m.is_set(j) ? m.scale : -m.scale) / kf;
  }
}

}  // namespace sparcol::coll
