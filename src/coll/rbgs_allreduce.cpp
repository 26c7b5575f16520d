#include "sparcol/coll/rbgs_allreduce.hpp"

#include <string>

#include "sparcol/coll/agree.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::coll {

RbgsAllreduce::RbgsAllreduce(comm::Backend& backend, std::size_t n, std::size_t k, device::Exec* exec)
    : backend_(backend),
      n_(n),
      k_(k),
      ring_(backend, k, RingAllreduce::kDefaultPieceBytes, RingAllreduce::Algorithm::kAuto, exec),
      exec_(exec),
      packed_(exec != nullptr ? 0 : k) {
  if (exec_ != nullptr) d_packed_.assign(*exec_, k, "rbgs packed block");
  SPARCOL_CHECK_ARG(k <= n, backend.rank(),
                    "rbgs_allreduce: block length k = " + std::to_string(k) +
                        " exceeds the vector length n = " + std::to_string(n));
  SPARCOL_CHECK_ARG(n <= kMaxElements, backend.rank(),
                    "rbgs_allreduce: vectors longer than 2^32-1 elements are not supported (n = " +
                        std::to_string(n) + ")");
}

Block RbgsAllreduce::run(float* data, std::uint64_t seed, std::uint64_t step, std::uint32_t tensor) {
  // The fingerprint exchange is finished inside the all-reduce's first round (RingAllreduce::run_with).
  Agreement pending(backend_, CallSignature{CollOp::kRbgsAllreduce, n_, k_, seed, step, tensor, 0});
  const Block b = rbgs_block(n_, k_, seed, step, tensor);
  if (b.wrap_len() == 0) {
    // A contiguous block (all but a fraction of about k/n of the steps) is reduced where it lies:
    // packing it would only copy k floats out and back.
    ring_.run_with(data + b.start, pending);
    return b;
  }
  if (exec_ != nullptr) {
    device::dispatch::rbgs_pack(*exec_, data, b, d_packed_.data());
    ring_.run_with(d_packed_.data(), pending);  // waits for the pack before anything is sent
    device::dispatch::rbgs_unpack(*exec_, d_packed_.data(), b, 1.0f, data, /*zero_outside=*/false);
    exec_->synchronize();
    return b;
  }
  rbgs_pack(data, b, packed_.data());
  ring_.run_with(packed_.data(), pending);
  rbgs_unpack(packed_.data(), b, data);
  return b;
}

void RbgsAllreduce::run_packed(float* packed, std::uint64_t seed, std::uint64_t step, std::uint32_t tensor) {
  Agreement pending(backend_, CallSignature{CollOp::kRbgsAllreduce, n_, k_, seed, step, tensor, 0});
  ring_.run_with(packed, pending);
}

}  // namespace sparcol::coll
