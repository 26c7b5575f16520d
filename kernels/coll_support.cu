// Kernels of the collectives' device path (coll_support.hpp): the ring all-reduce's reduction step
// and the sparse all-gather's index check. Both are elementwise (launch.cuh); their per-element code
// is shared with the CPU twins (coll_support_ops.hpp).
//   add_into          dst, src read; dst written            12 bytes per element
//   first_bad_index   idx read; one atomic per bad index     4 bytes per element
#include "coll_support_ops.hpp"
#include "launch.cuh"
#include "sparcol/device/coll_support.hpp"

namespace sparcol::device {

void add_into(const Stream& s, float* d_dst, const float* d_src, std::uint64_t n) {
  if (n == 0) return;
  detail::dev(d_dst, "add_into: dst");
  detail::dev(d_src, "add_into: src");
  detail::launch_elementwise(s, n, detail::AddIntoOp{d_dst, d_src});
}

void first_bad_index(const Stream& s, const Index* d_idx, std::uint64_t count, std::uint64_t n,
                     std::uint64_t* d_first) {
  detail::dev(d_first, "first_bad_index: first");
  if (count == 0) return;
  detail::dev(d_idx, "first_bad_index: idx");
  detail::launch_elementwise(s, count, detail::FirstBadIndexOp{d_idx, n, d_first});
}

}  // namespace sparcol::device
