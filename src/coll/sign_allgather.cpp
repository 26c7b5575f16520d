#include "sparcol/coll/sign_allgather.hpp"

#include <cstring>
#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::coll {

SignAllgather::SignAllgather(comm::Backend& backend, std::uint64_t n, device::Exec* exec)
    : backend_(backend), n_(n), words_((n + 31) / 32), exec_(exec) {
  const auto K = static_cast<std::size_t>(backend.size());
  if (exec_ == nullptr) {
    buffer_.resize(K * (words_ + 1));
    return;
  }
  SPARCOL_CHECK_ARG(backend.accepts(exec_->kind()), backend.rank(),
                    "sign_allgather: backend " + backend.name() + " does not move " +
                        (exec_->on_device() ? "device" : "host") + " memory");
  d_words_.assign(*exec_, K * words_, "sign all-gather words");
  d_scales_.assign(*exec_, K, "sign all-gather scales");
}

std::span<const std::uint32_t> SignAllgather::bits(int r) const {
  if (exec_ != nullptr) return {d_words_.data() + static_cast<std::size_t>(r) * words_, words_};
  return {buffer_.data() + static_cast<std::size_t>(r) * block_words(), words_};
}

float SignAllgather::scale(int r) const {
  float s;
  if (exec_ != nullptr) {
    exec_->download(&s, d_scales_.data() + r, sizeof s);
    return s;
  }
  std::memcpy(&s, buffer_.data() + static_cast<std::size_t>(r) * block_words() + words_, sizeof s);
  return s;
}

void SignAllgather::run(std::span<const std::uint32_t> bits_in, float scale_in, std::uint64_t step) {
  agree(backend_, CallSignature{CollOp::kSignAllgather, n_, 0, 0, step, 0, 0});
  run_agreed(bits_in, scale_in);
}

void SignAllgather::run_agreed(std::span<const std::uint32_t> bits_in, float scale_in) {
  const int me = backend_.rank(), n = backend_.size();
  SPARCOL_CHECK_ARG(bits_in.size() == words_, me,
                    "sign_allgather: " + std::to_string(bits_in.size()) + " words given for " +
                        std::to_string(n_) + " elements (expected " + std::to_string(words_) + ")");
  if (exec_ != nullptr) {
    run_exec(bits_in, scale_in);
    return;
  }
  std::uint32_t* mine = buffer_.data() + static_cast<std::size_t>(me) * block_words();
  std::copy(bits_in.begin(), bits_in.end(), mine);
  std::memcpy(mine + words_, &scale_in, sizeof scale_in);
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

void SignAllgather::run_exec(std::span<const std::uint32_t> bits_in, float scale_in) {
  const int me = backend_.rank(), n = backend_.size();
  const std::size_t word_bytes = words_ * sizeof(std::uint32_t);
  exec_->copy(d_words_.data() + static_cast<std::size_t>(me) * words_, bits_in.data(), word_bytes);
  exec_->upload(d_scales_.data() + me, &scale_in, sizeof scale_in);  // waits for the copy too
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
    const auto b = bits(r);
    const float s = scale(r);
    for (std::uint64_t j = 0; j < n_; ++j) out[j] += ((b[j >> 5] >> (j & 31)) & 1u) ? s : -s;
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
  for (int r = 0; r < K; ++r) mean_scale += scale(r);
  mean_scale /= static_cast<float>(K);
  for (std::uint64_t j = 0; j < n_; ++j) {
    int votes = 0;
    for (int r = 0; r < K; ++r) votes += ((bits(r)[j >> 5] >> (j & 31)) & 1u) ? 1 : -1;
    out[j] = votes >= 0 ? mean_scale : -mean_scale;
  }
}

}  // namespace sparcol::coll
