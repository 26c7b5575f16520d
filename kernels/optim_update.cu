// Fused optimizer updates (ALGORITHMS.md 2-8): one pass per step reads and writes every state vector
// once, and extracts the RBGS block of the message in the same pass.
//
// Each launcher runs one functor of element_ops.hpp through the generic elementwise kernel
// (launch.cuh): grid-stride, kUnroll elements loaded per thread before any store, 64-bit indices.
// The per-element formulas are elementwise.hpp's, in the operation order of src/optim, with every
// product rounded before it is added, so the result equals the CPU optimizer's bit for bit.
//
// Bytes per element (fp32, no weight decay; + 4 with weight decay, + 4 per block element sent):
//   gmc_accumulate   u, m, g read; u written                     16
//   dgc_accumulate   u, v, g read; u, v written                  20
//   ef_accumulate    e, m, g read; e, m written (EF-SGD: 12)     20
//   cser_accumulate  m, r, g read; m, r written                  20
//   apply_update     x, a read; x written                        12
// Preconditions: the vectors do not overlap, except where a launcher documents otherwise.
#include "launch.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

using detail::check_gradient;
using detail::check_send;
using detail::dev;
using detail::launch_elementwise;

void detached_point(const Stream& s, float* d_z, const float* d_x, const float* d_d, float c,
                    std::uint64_t n) {
  if (n == 0) return;
  dev(d_z, "detached_point: z");
  dev(d_x, "detached_point: x");
  dev(d_d, "detached_point: d");
  launch_elementwise(s, n, detail::DetachedPointOp{d_z, d_x, d_d, c});
}

void offset_point(const Stream& s, float* d_z, const float* d_x, const float* d_r, std::uint64_t n) {
  if (n == 0) return;
  dev(d_z, "offset_point: z");
  dev(d_x, "offset_point: x");
  dev(d_r, "offset_point: r");
  launch_elementwise(s, n, detail::OffsetPointOp{d_z, d_x, d_r});
}

void gmc_accumulate(const Stream& s, float* d_u, const float* d_m, const GradientInput& g, float beta,
                    std::uint64_t n, const Block& send, float* d_send) {
  check_send(send, n, d_send, "gmc_accumulate");
  if (n == 0) return;
  dev(d_u, "gmc_accumulate: u");
  dev(d_m, "gmc_accumulate: m");
  check_gradient(g, n, "gmc_accumulate");
  launch_elementwise(s, n, detail::GmcAccumulateOp{d_u, d_m, g, beta, send, d_send});
}

void dgc_accumulate(const Stream& s, float* d_u, float* d_v, const GradientInput& g, float beta,
                    bool nesterov, bool mask_momentum, std::uint64_t n, const Block& send, float* d_send) {
  check_send(send, n, d_send, "dgc_accumulate");
  if (n == 0) return;
  dev(d_u, "dgc_accumulate: u");
  dev(d_v, "dgc_accumulate: v");
  check_gradient(g, n, "dgc_accumulate");
  launch_elementwise(s, n, detail::DgcAccumulateOp{d_u, d_v, g, beta, nesterov, mask_momentum, send, d_send});
}

void ef_accumulate(const Stream& s, float* d_e, float* d_m, const GradientInput& g, float beta, float eta,
                   std::uint64_t n, const Block& send, float* d_send) {
  check_send(send, n, d_send, "ef_accumulate");
  if (n == 0) return;
  dev(d_e, "ef_accumulate: e");
  if (d_m != nullptr) dev(d_m, "ef_accumulate: m");
  check_gradient(g, n, "ef_accumulate");
  launch_elementwise(s, n, detail::EfAccumulateOp{d_e, d_m, g, beta, eta, send, d_send});
}

void cser_accumulate(const Stream& s, float* d_m, float* d_r, const GradientInput& g, float beta, float eta,
                     std::uint64_t n, const Block& send, float* d_send) {
  check_send(send, n, d_send, "cser_accumulate");
  if (n == 0) return;
  dev(d_m, "cser_accumulate: m");
  dev(d_r, "cser_accumulate: r");
  check_gradient(g, n, "cser_accumulate");
  launch_elementwise(s, n, detail::CserAccumulateOp{d_m, d_r, g, beta, eta, send, d_send});
}

void cser_momentum(const Stream& s, float* d_m, float* d_delta, const GradientInput& g, float beta, float eta,
                   std::uint64_t n) {
  if (n == 0) return;
  dev(d_m, "cser_momentum: m");
  dev(d_delta, "cser_momentum: delta");
  check_gradient(g, n, "cser_momentum");
  launch_elementwise(s, n, detail::CserMomentumOp{d_m, d_delta, g, beta, eta});
}

void cser_apply(const Stream& s, float* d_x, float* d_r, const float* d_a, const float* d_delta,
                std::uint64_t n) {
  if (n == 0) return;
  dev(d_x, "cser_apply: x");
  dev(d_r, "cser_apply: r");
  dev(d_a, "cser_apply: a");
  dev(d_delta, "cser_apply: delta");
  launch_elementwise(s, n, detail::CserApplyOp{d_x, d_r, d_a, d_delta});
}

void dmsgd_local(const Stream& s, float* d_m, float* d_v, const GradientInput& g, float beta,
                 std::uint64_t n) {
  if (n == 0) return;
  dev(d_m, "dmsgd_local: m");
  dev(d_v, "dmsgd_local: v");
  check_gradient(g, n, "dmsgd_local");
  launch_elementwise(s, n, detail::DmsgdLocalOp{d_m, d_v, g, beta});
}

void dmsgd_apply(const Stream& s, float* d_m, float* d_x, const float* d_a, float beta, float eta,
                 std::uint64_t n) {
  if (n == 0) return;
  dev(d_m, "dmsgd_apply: m");
  dev(d_x, "dmsgd_apply: x");
  dev(d_a, "dmsgd_apply: a");
  launch_elementwise(s, n, detail::DmsgdApplyOp{d_m, d_x, d_a, beta, eta});
}

void apply_update(const Stream& s, float* d_x, const float* d_a, float eta, float wd, std::uint64_t n) {
  if (n == 0) return;
  dev(d_x, "apply_update: x");
  dev(d_a, "apply_update: a");
  launch_elementwise(s, n, detail::ApplyUpdateOp{d_x, d_a, eta, wd});
}

void sparse_apply_update(const Stream& s, float* d_x, const float* d_a, const Index* d_idx,
                         std::uint64_t count, float eta) {
  if (count == 0) return;
  dev(d_x, "sparse_apply_update: x");
  dev(d_a, "sparse_apply_update: a");
  dev(d_idx, "sparse_apply_update: indices");
  launch_elementwise(s, count, detail::SparseApplyUpdateOp{d_x, d_a, d_idx, eta});
}

void gmc_accumulate_sparse(const Stream& s, float* d_u, const float* d_m, const Index* d_idx,
                           std::uint64_t count, const GradientInput& g, float beta, std::uint64_t n,
                           float* d_save) {
  if (n == 0) return;
  dev(d_u, "gmc_accumulate_sparse: u");
  check_gradient(g, n, "gmc_accumulate_sparse");
  // Pass 1 reads u before pass 2 rewrites it; the stream orders the three launches.
  if (count > 0) {
    dev(d_m, "gmc_accumulate_sparse: m");
    dev(d_idx, "gmc_accumulate_sparse: indices");
    dev(d_save, "gmc_accumulate_sparse: save");
    launch_elementwise(s, count, detail::GmcSupportSaveOp{d_u, d_m, g, beta, d_idx, d_save});
  }
  launch_elementwise(s, n, detail::GmcAccumulateOp{d_u, nullptr, g, beta, Block{}, nullptr});
  if (count > 0) launch_elementwise(s, count, detail::ScatterValuesOp{d_u, d_idx, d_save});
}

}  // namespace sparcol::device
