// FusedOptimizer: the optimizers of optimizer.hpp with their model, gradients and state in an
// executor's memory (device/dispatch.hpp), each step made of the fused single-pass updates
// (ops.hpp), compression by the top-k / sampled top-k / RBGS kernels and the collectives' executor
// path. With Exec::device() everything stays on the GPU (the host reads back a few scalars per step:
// the gradient's squared norm for the NaN check, and pair counts); with Exec::host() the same code
// runs the CPU twins on host memory.
//
// Contract: with Exec::host() on a host backend a FusedOptimizer reproduces the Optimizer that
// make_optimizer builds for the same configuration bit for bit (model, state, skipped steps and
// communication statistics), on any number of ranks: the twins equal the CPU code element for element
// and the collectives are the same (tests/gpu/test_devpath.cpp). On the GPU the kernels equal the
// twins, so the same holds, with two documented exceptions:
//   * NcclBackend: dense and RBGS all-reduces are ncclAllReduce, whose summation order differs from
//     sparcol's ring for more than two ranks (last-bit differences; exact for K <= 2);
//   * DGC's clipping (clip_norm > 0) sums the squared norm in the fixed tile order of the GPU
//     reduction (elementwise.hpp), the CPU in index order: the clipping factor can differ in its
//     last bit whenever clipping is active.
//
// Supported configurations (fused_unsupported_reason() says why another one is not): every method;
// compressors none, rbgs, topk and topk-sampled (CSER's C1 also "zero"); flat compression (no
// layer-wise groups, no tensor excluded by min_compress_size or compress_only_matrices).
//
// Usage (the model x and gradient g in the executor's memory):
//   FusedOptimizer opt(backend, layout, config, exec);
//   auto z = opt.gradient_point(x, lr);   // where to take the gradient (x, or opt's own buffer)
//   ... g = gradient at z ...
//   opt.step(x, g, t, lr, epoch);
// Spans may point to device memory: they are (pointer, size) pairs, never read on the host. Every
// call returns with its work finished (step() waits for its last kernel), so the caller may read
// x, or hand it to another stream, at once. Device work that produced g must have completed (or
// be queued on exec.stream()) before step() is called.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/optim/layout.hpp"
#include "sparcol/optim/optimizer.hpp"

namespace sparcol::optim {

class FusedOptimizer {
 public:
  // Error(kInvalidArgument) for what make_optimizer rejects and for unsupported configurations
  // (fused_unsupported_reason). backend must accept exec's memory kind; exec must outlive this.
  FusedOptimizer(comm::Backend& backend, const Layout& layout, const OptimConfig& config, device::Exec& exec);
  ~FusedOptimizer();
  FusedOptimizer(const FusedOptimizer&) = delete;
  FusedOptimizer& operator=(const FusedOptimizer&) = delete;

  const std::string& method() const;
  const OptimConfig& config() const;
  double alpha() const;
  std::uint64_t size() const;
  MemKind mem_kind() const;

  // As Optimizer::gradient_point: x itself or an internal buffer (exec memory) valid until the next
  // gradient_point or step.
  std::span<const float> gradient_point(std::span<const float> x, double lr);
  // As Optimizer::step (NaN policy, weight decay, warm-up, statistics).
  StepStats step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr,
                 double epoch = 0.0);
  // As Optimizer::evaluation_model (def-a's virtual model is a collective). out in exec memory.
  void evaluation_model(std::span<const float> x, std::span<float> out, bool virtual_model);
  // The state under Optimizer's names (for checkpoints), spans in exec memory: download them with
  // exec.download, restore with exec.upload.
  std::vector<StateBuffer> state();

  std::uint64_t skipped_steps() const;
  void set_skipped_steps(std::uint64_t n);
  double current_density() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Empty when the fused path supports (layout, config); otherwise why not, e.g. "compressor 'sign' is
// not available on the fused path (supported: none, rbgs, topk, topk-sampled)".
std::string fused_unsupported_reason(const Layout& layout, const OptimConfig& config);

}  // namespace sparcol::optim
