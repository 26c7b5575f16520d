#include "sparcol/coll/sign_allgather.hpp"

#include <cstring>
#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::coll {

SignAllgather::SignAllgather(comm::Backend& backend, std::uint64_t n, device::Exec* exec)
    : backend_(backend), n_(n), words_(SignLayout::words_for(n)), exec_(exec) {
  const auto K = static_cast<std::size_t>(backend.size());
  if (exec_ == nullptr) {
    buffer_.resize(K * block_words());
    return;
  }
  SPARCOL_CHECK_ARG(backend.accepts(exec_->kind()), backend.rank(),
                    "sign_allgather: backend " + backend.name() + " does not move " +
                        (exec_->on_device() ? "device" : "host") + " memory");
  d_words_.assign(*exec_, K * words_, "sign all-gather words");
  d_scales_.assign(*exec_, K, "sign all-gather scales");
}

const std::uint32_t* SignAllgather::words_of(int r) const {
  if (exec_ != nullptr) return d_words_.data() + static_cast<std::size_t>(r) * words_;
  return buffer_.data() + static_cast<std::size_t>(r) * block_words();
}

float SignAllgather::scale_of(int r) const {
  float s;
  if (exec_ != nullptr) {
    exec_->download(&s, d_scales_.data() + r, sizeof s);
    return s;
  }
  std::memcpy(&s, buffer_.data() + static_cast<std::size_t>(r) * block_words() + words_, sizeof s);
  return s;
}

SignBits SignAllgather::bits(int r) const {
  return {n_, {words_of(r), words_}, scale_of(r)};
}

void SignAllgather::run(SignBits mine, std::uint64_t step) {
  agree(backend_, CallSignature{CollOp::kSignAllgather, n_, 0, 0, step, 0, 0});
  run_agreed(mine);
}

void SignAllgather::run_agreed(SignBits mine) {
  const int me = backend_.rank(), n = backend_.size();
  SPARCOL_CHECK_ARG(mine.n == n_, me,
                    "sign_allgather: a message of " + std::to_string(mine.n) + " elements given for " +
                        std::to_string(n_) + " elements");
  SPARCOL_CHECK_ARG(mine.words.size() == words_, me,
                    "sign_allgather: " + std::to_string(mine.words.size()) + " words given for " +
                        std::to_string(n_) + " elements (expected " + std::to_string(words_) + ")");
  if (exec_ != nullptr) {
    run_exec(mine);
    return;
  }
  std::uint32_t* own = buffer_.data() + static_cast<std::size_t>(me) * block_words();
  std::copy(mine.words.begin(), mine.words.end(), own);
  std::memcpy(own + words_, &mine.scale, sizeof mine.scale);
  last_sent_ = last_recv_ = 0;
  const std::size_t bytes = block_words() * sizeof(std::uint32_t);
  const int right = (me + 1) % n, left = (me - 1 + n) % n;
  for (int s = 0; s < n - 1; ++s) {
    const int send_blk = ((me - s) % n + n) % n, recv_blk = ((me - s - 1) % n + n) % n;
    comm::Request reqs[2] = {
        backend_.irecv(buffer_.data() + static_cast<std::size_t>(recv_blk) * block_words(), bytes, left,
                       comm::kTagSign),
        backend_.isend(buffer_.data() + static_cast<std::size_t>(send_blk) * block_words(), bytes, right,
                       comm::kTagSign)};
    backend_.wait_all(reqs);
    last_sent_ += bytes;
    last_recv_ += bytes;
  }
}

void SignAllgather::run_exec(SignBits mine) {
  const int me = backend_.rank(), n = backend_.size();
  const std::size_t word_bytes = words_ * sizeof(std::uint32_t);
  exec_->copy(d_words_.data() + static_cast<std::size_t>(me) * words_, mine.words.data(), word_bytes);
  exec_->upload(d_scales_.data() + me, &mine.scale, sizeof mine.scale);  // waits for the copy too
  last_sent_ = last_recv_ = 0;
  const int right = (me + 1) % n, left = (me - 1 + n) % n;
  for (int s = 0; s < n - 1; ++s) {
    const int send_blk = ((me - s) % n + n) % n, recv_blk = ((me - s - 1) % n + n) % n;
    // Two messages per block, words then scale, in the same order on both sides.
    comm::Request reqs[4] = {
        backend_.irecv(d_words_.data() + static_cast<std::size_t>(recv_blk) * words_, word_bytes, left,
                       comm::kTagSign),
        backend_.irecv(d_scales_.data() + recv_blk, sizeof(float), left, comm::kTagSign),
        backend_.isend(d_words_.data() + static_cast<std::size_t>(send_blk) * words_, word_bytes, right,
                       comm::kTagSign),
        backend_.isend(d_scales_.data() + send_blk, sizeof(float), right, comm::kTagSign)};
    backend_.wait_all(reqs);
    last_sent_ += word_bytes + sizeof(float);
    last_recv_ += word_bytes + sizeof(float);
  }
}

void SignAllgather::mean_into(std::span<float> out) const {
  if (exec_ != nullptr) {
    device::dispatch::sign_decode_mean(*exec_, d_words_.data(), d_scales_.data(), backend_.size(), n_,
                                       out.data());
    exec_->synchronize();
    return;
  }
  const int K = backend_.size();
  std::fill(out.begin(), out.end(), 0.0f);
  for (int r = 0; r < K; ++r) {
    const std::uint32_t* w = words_of(r);
    const float s = scale_of(r);
    for (std::uint64_t j = 0; j < n_; ++j) out[j] += SignLayout::is_set(w, j) ? s : -s;
  }
  const auto k = static_cast<float>(K);
  for (auto& x : out) x /= k;
}

void SignAllgather::majority_into(std::span<float> out) const {
  if (exec_ != nullptr) {
    device::dispatch::sign_decode_majority(*exec_, d_words_.data(), d_scales_.data(), backend_.size(), n_,
                                           out.data());
    exec_->synchronize();
    return;
  }
  const int K = backend_.size();
  float mean_scale = 0;
  for (int r = 0; r < K; ++r) mean_scale += scale_of(r);
  mean_scale /= static_cast<float>(K);
  for (std::uint64_t j = 0; j < n_; ++j) {
    int votes = 0;
    for (int r = 0; r < K; ++r) votes += SignLayout::is_set(words_of(r), j) ? 1 : -1;
    out[j] = votes >= 0 ? mean_scale : -mean_scale;
  }
}

}  // namespace sparcol::coll
