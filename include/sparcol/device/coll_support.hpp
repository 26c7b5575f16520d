// Kernels of the collectives' and fused optimizers' device path (kernels/coll_support.cu) and their CPU twins
// (src/device/coll_support_cpu.cpp), declared as ops.hpp declares the others: launchers only in CUDA
// builds, twins in every build, the same per-element code on both sides (src/device/coll_support_ops.hpp).
#pragma once

#include <cstdint>

#include "sparcol/config.hpp"
#include "sparcol/core/types.hpp"
#include "sparcol/device/device.hpp"

namespace sparcol::device {

// The value first_bad_index reports when every index is in range.
inline constexpr std::uint64_t kNoBadIndex = ~std::uint64_t{0};

#if SPARCOL_HAVE_CUDA
// d_dst[i] <- d_dst[i] + d_src[i] (the reduction step of the ring all-reduce; rounded addition, so
// equal to the host's `dst[i] += src[i]` bit for bit). d_dst == d_src is allowed; other overlap is not.
void add_into(const Stream& s, float* d_dst, const float* d_src, std::uint64_t n);
// *d_first <- the smallest position j < count with d_idx[j] >= n, or kNoBadIndex when there is none
// (the sparse all-gather's check of a sender's indices). *d_first must hold kNoBadIndex before the
// call (memset to 0xff): the kernel only lowers it.
void first_bad_index(const Stream& s, const Index* d_idx, std::uint64_t count, std::uint64_t n,
                     std::uint64_t* d_first);
// *d_count <- the number of j < n with d_v[j] != 0 (NaN counts, -0 does not), the aggregate's nnz
// in the communication statistics. Scratch-free: one atomic per warp.
void count_nonzero(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t* d_count);
#endif

namespace cpu {
void add_into(float* dst, const float* src, std::uint64_t n);
void first_bad_index(const Index* idx, std::uint64_t count, std::uint64_t n, std::uint64_t* first);
void count_nonzero(const float* v, std::uint64_t n, std::uint64_t* count);
}  // namespace cpu

}  // namespace sparcol::device
