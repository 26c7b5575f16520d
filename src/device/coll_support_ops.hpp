// Internal to src/device and kernels/: the per-element functors of coll_support.hpp's operations,
// run by the CUDA kernel (kernels/coll_support.cu through launch.cuh) and by the CPU twin's loop
// (src/device/coll_support_cpu.cpp). Same load/store contract as element_ops.hpp.
#pragma once

#include <cstdint>

#include "sparcol/device/elementwise.hpp"

namespace sparcol::device::detail {

struct AddIntoOp {
  float* dst;
  const float* src;
  struct In {
    float d, s;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {dst[i], src[i]}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const { dst[i] = fadd(in.d, in.s); }
};

// Over positions j < count. Several elements may lower *first concurrently: an atomic minimum on the
// device, a plain one in the twin's sequential loop.
struct FirstBadIndexOp {
  const Index* idx;
  std::uint64_t n;
  std::uint64_t* first;
  using In = Index;
  SPARCOL_HD In load(std::uint64_t j) const { return idx[j]; }
  SPARCOL_HD void store(std::uint64_t j, In i) const {
    if (i < n) return;
#if defined(__CUDA_ARCH__)
    atomicMin(reinterpret_cast<unsigned long long*>(first), static_cast<unsigned long long>(j));
#else
    if (j < *first) *first = j;
#endif
  }
};

}  // namespace sparcol::device::detail
