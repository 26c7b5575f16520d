// FusedOptimizer (see fused.hpp): every method of optimizer.hpp as fused updates on an executor.
//
// Each step follows the CPU optimizer's operations one for one (src/optim/<method>.cpp), with the
// loops replaced by the fused kernels and their twins (device/ops.hpp) and the Exchange replaced by
// FusedExchange below, which does what Exchange::finish does for one flat group:
//   rbgs      the fused update already moved the block into send() and left 0 there; ring all-reduce
//             of the k values (the same RingAllreduce over k floats as the Exchange), then the mean
//             unpacked into agg (zero elsewhere);
//   topk      top-k (or DGC's sampled top-k) of the message, its sent coordinates zeroed, sparse
//             all-gather of the pairs, their sum in rank order divided by K into agg;
//   none      ring all-reduce of the whole message, agg = sum / K, the message zeroed.
// Scalars the host needs (the gradient's squared norm, pair counts, the aggregate's nnz) are read
// back; nothing else leaves the executor's memory.
#include "sparcol/optim/fused.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "sparcol/coll/agree.hpp"
#include "sparcol/coll/dense.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/compress/compressor.hpp"
#include "sparcol/compress/topk.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::optim {

namespace {

using device::Buffer;
using device::Exec;
namespace ops = device::dispatch;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

enum class Kind { kZero, kDense, kBlock, kSparse };

Kind kind_of(const std::string& name) {
  if (name == "zero") return Kind::kZero;
  if (name == "none") return Kind::kDense;
  if (name == "rbgs") return Kind::kBlock;
  return Kind::kSparse;  // topk, topk-sampled (others are rejected before)
}

bool supported_compressor(const std::string& name, bool zero_allowed) {
  return name == "none" || name == "rbgs" || name == "topk" || name == "topk-sampled" ||
         (zero_allowed && name == "zero");
}

// One exchange of a message vector, as Exchange::finish does it for one flat group (see above).
class FusedExchange {
 public:
  FusedExchange(comm::Backend& b, Exec& ex, std::uint64_t n, compress::CompressorConfig comp,
                std::uint64_t seed)
      : b_(b), ex_(ex), n_(n), comp_(std::move(comp)), seed_(seed), kind_(kind_of(comp_.name)) {
    if (kind_ != Kind::kZero) set_density(comp_.density);
  }

  Kind kind() const { return kind_; }
  std::uint64_t k() const { return k_; }
  double density() const { return comp_.density; }
  // What the step's fingerprint names: elements selected, and compression groups.
  std::uint64_t total_k() const { return kind_ == Kind::kBlock || kind_ == Kind::kSparse ? k_ : 0; }
  std::uint64_t groups() const { return (kind_ == Kind::kBlock || kind_ == Kind::kSparse) && n_ > 0 ? 1 : 0; }

  // As Exchange::set_density: a new k, with buffers and collectives sized for it.
  void set_density(double rho) {
    SPARCOL_CHECK_ARG(rho > 0 && rho <= 1 && std::isfinite(rho), b_.rank(),
                      "density must be in (0, 1], got " + std::to_string(rho));
    comp_.density = rho;
    k_ = n_ == 0 ? 0 : compress::make_compressor(comp_)->target_k(n_);
    ring_.reset();
    sparse_.reset();
    if (n_ == 0) return;
    if (kind_ == Kind::kDense) {
      ring_ = std::make_unique<coll::RingAllreduce>(b_, n_, coll::RingAllreduce::kDefaultPieceBytes,
                                                    coll::RingAllreduce::Algorithm::kAuto, &ex_);
    } else if (kind_ == Kind::kBlock) {
      send_.assign(ex_, k_, "rbgs send block");
      ring_ = std::make_unique<coll::RingAllreduce>(b_, k_, coll::RingAllreduce::kDefaultPieceBytes,
                                                    coll::RingAllreduce::Algorithm::kAuto, &ex_);
    } else if (kind_ == Kind::kSparse) {
      idx_.assign(ex_, k_, "top-k indices");
      val_.assign(ex_, k_, "top-k values");
      sparse_ =
          std::make_unique<coll::SparseAllgather>(b_, n_, k_, coll::SparseAllgather::Algorithm::kAuto, &ex_);
    }
  }

  // The step's block for a fused update to extract (kBlock), or no block.
  Block block(std::uint64_t t) const {
    if (kind_ != Kind::kBlock || n_ == 0) return Block{};
    const sparcol::Block b = sparcol::rbgs_block(n_, k_, seed_, t, 0);
    return Block{b.n, b.start, b.length};
  }
  float* send() { return send_.data(); }

  // The message is in v; for kBlock its block is in send() already when `extracted`. Leaves the
  // residual in v, the mean over ranks in agg, and zeroes `mask` where the message was sent (DGC's
  // momentum masking; for kBlock the fused update does that itself).
  CommStats finish(float* v, float* agg, std::uint64_t t, float* mask, bool extracted) {
    CommStats st;
    const auto K = static_cast<std::uint64_t>(b_.size());
    const auto kf = static_cast<float>(K);
    st.dense_elements = static_cast<double>((K + 1) * n_);
    if (n_ == 0) return st;
    const auto t0 = Clock::now();
    switch (kind_) {
      case Kind::kZero:
        break;
      case Kind::kDense: {
        st.time_compress_s = seconds_since(t0);
        const auto t1 = Clock::now();
        ring_->run_unchecked(v);
        ops::rbgs_unpack(ex_, v, Block{n_, 0, n_}, kf, agg, true);  // agg = sum / K
        ex_.zero(v, n_ * sizeof(float));                            // everything was sent
        if (mask != nullptr) ex_.zero(mask, n_ * sizeof(float));
        ex_.synchronize();
        st.time_comm_s = seconds_since(t1);
        st.elements_up = static_cast<double>(n_);
        st.bytes_up = 4 * n_;
        st.elements_up_all = static_cast<double>(K) * st.elements_up;
        st.elements_down = static_cast<double>(n_);
        st.bytes_sent = st.bytes_recv = ring_->bytes_sent_per_run();
        break;
      }
      case Kind::kBlock: {
        const Block b = block(t);
        if (!extracted) ops::rbgs_extract(ex_, v, b, send_.data());
        st.time_compress_s = seconds_since(t0);
        const auto t1 = Clock::now();
        ring_->run_unchecked(send_.data());
        ops::rbgs_unpack(ex_, send_.data(), b, kf, agg, true);
        ex_.synchronize();
        st.time_comm_s = seconds_since(t1);
        st.elements_up = static_cast<double>(k_);
        st.bytes_up = 4 * k_;
        st.elements_up_all = static_cast<double>(K) * st.elements_up;
        st.elements_down = static_cast<double>(k_);
        st.bytes_sent = st.bytes_recv = ring_->bytes_sent_per_run();
        break;
      }
      case Kind::kSparse: {
        const std::uint64_t count = select(v, t);
        ops::scatter_zero(ex_, v, n_, idx_.data(), count);  // v <- v - C(v): sent coordinates become 0
        if (mask != nullptr) ops::scatter_zero(ex_, mask, n_, idx_.data(), count);
        st.time_compress_s = seconds_since(t0);
        const auto t1 = Clock::now();
        std::vector<std::size_t> counts(K, k_);
        if (comp_.name == "topk-sampled") {
          // A threshold selection's count differs per rank (Exchange: one small all-gather).
          std::vector<std::uint64_t> all(K);
          coll::allgather_small(b_.control(), &count, sizeof count, all.data(), comm::kTagFingerprint);
          for (std::size_t r = 0; r < K; ++r) counts[r] = all[r];
        }
        sparse_->run_agreed(std::span<const Index>(idx_.data(), count),
                            std::span<const float>(val_.data(), count), counts);
        sparse_->sum_into(agg, kf);
        const std::uint64_t nnz = ops::count_nonzero(ex_, agg, n_);
        st.time_comm_s = seconds_since(t1);
        std::uint64_t pairs_all = 0;
        for (auto c : counts) pairs_all += c;
        st.elements_up = 2.0 * static_cast<double>(count);
        st.bytes_up = kPairBytes * count;
        st.elements_up_all = 2.0 * static_cast<double>(pairs_all);
        st.elements_down = 2.0 * static_cast<double>(nnz);
        st.bytes_sent = sparse_->last_bytes_sent();
        st.bytes_recv = sparse_->last_bytes_recv();
        break;
      }
    }
    st.bytes_down = static_cast<std::uint64_t>(st.elements_down) * 4;
    return st;
  }

 private:
  // The compressor's selection into idx_/val_; returns the number of pairs.
  std::uint64_t select(const float* v, std::uint64_t t) {
    if (comp_.name == "topk-sampled") {
      const compress::DgcSamplePlan p = compress::dgc_sample_plan(n_, k_, comp_.sample_ratio);
      if (k_ < n_ && p.stride > 1) {
        const device::SamplePlan plan{p.stride, compress::dgc_sample_offset(p.stride, seed_, t, 0),
                                      p.top_samples};
        return ops::topk_sampled(ex_, v, n_, k_, plan, idx_.data(), val_.data()).count;
      }
      // The "sample" would be all of v: the exact top-k, as the compressor does.
    }
    ops::topk(ex_, v, n_, k_, idx_.data(), val_.data());
    return k_;
  }

  comm::Backend& b_;
  Exec& ex_;
  std::uint64_t n_;
  compress::CompressorConfig comp_;
  std::uint64_t seed_;
  Kind kind_;
  std::uint64_t k_ = 0;
  Buffer<float> send_;
  Buffer<Index> idx_;
  Buffer<float> val_;
  std::unique_ptr<coll::RingAllreduce> ring_;
  std::unique_ptr<coll::SparseAllgather> sparse_;
};

enum class Method { kDmsgd, kDmsgdLocal, kEfSgd, kEfSgdm, kDgc, kDgcMfm, kGmc, kGmcPlus, kDefA, kCser };

Method method_of(const std::string& m) {
  if (m == "dmsgd") return Method::kDmsgd;
  if (m == "dmsgd-local") return Method::kDmsgdLocal;
  if (m == "ef-sgd") return Method::kEfSgd;
  if (m == "ef-sgdm") return Method::kEfSgdm;
  if (m == "dgc") return Method::kDgc;
  if (m == "dgc-mfm") return Method::kDgcMfm;
  if (m == "gmc") return Method::kGmc;
  if (m == "gmc-plus") return Method::kGmcPlus;
  if (m == "def-a") return Method::kDefA;
  return Method::kCser;
}

compress::CompressorConfig dense_compressor() {
  compress::CompressorConfig c;
  c.name = "none";
  c.density = 1.0;
  return c;
}

}  // namespace

std::string fused_unsupported_reason(const Layout& layout, const OptimConfig& config) {
  const bool cser = config.method == "cser";
  const bool dense = method_is_dense(config.method);
  auto bad_compressor = [](const std::string& what, const std::string& name, bool zero_allowed) {
    return what + " '" + name +
           "' is not available on the fused path (supported: " + (zero_allowed ? "zero, " : "") +
           "none, rbgs, topk, topk-sampled)";
  };
  if (cser) {
    if (!supported_compressor(config.cser_c1.name, true))
      return bad_compressor("CSER's C1 compressor", config.cser_c1.name, true);
    if (!supported_compressor(config.cser_c2.name, false))
      return bad_compressor("CSER's C2 compressor", config.cser_c2.name, false);
  } else if (!dense && !supported_compressor(config.exchange.compressor.name, false)) {
    return bad_compressor("compressor", config.exchange.compressor.name, false);
  }
  if (dense) return {};  // the dense methods ignore the compressor and the groups
  if (config.exchange.layerwise)
    return "layer-wise compression is not available on the fused path (use flat compression)";
  for (const auto& t : layout.tensors) {
    if (t.size == 0) continue;
    if (t.size < config.exchange.min_compress_size || (config.exchange.compress_only_matrices && t.dims <= 1))
      return "tensor '" + t.name +
             "' would be all-reduced densely (min_compress_size / compress_only_matrices), " +
             "which the fused path does not support: every tensor must be compressed";
  }
  return {};
}

struct FusedOptimizer::Impl {
  comm::Backend& b;
  OptimConfig cfg;
  Exec& ex;
  Method method;
  std::uint64_t n;
  double alpha = 0.0;
  double target_density;
  std::uint64_t skipped = 0;
  // The exchange of the step (C1 for CSER) and CSER's error reset (C2).
  std::unique_ptr<FusedExchange> main, reset;
  // State and scratch, allocated as the method needs them (names as in src/optim).
  Buffer<float> u, m, v, e, r, delta, z, agg, geff;

  Impl(comm::Backend& backend, const Layout& layout, const OptimConfig& config, Exec& exec)
      : b(backend),
        cfg(config),
        ex(exec),
        method(method_of(config.method)),
        n(layout.total()),
        target_density(config.exchange.compressor.density) {}

  Buffer<float> make(const char* what) { return Buffer<float>(ex, n, what); }
};

FusedOptimizer::FusedOptimizer(comm::Backend& backend, const Layout& layout, const OptimConfig& config,
                               device::Exec& exec) {
  const int me = backend.rank();
  // The CPU factory validates names and ranges (and builds nothing that needs memory for n = 0).
  (void)make_optimizer(backend, Layout{}, config);
  layout.validate();
  const std::string why = fused_unsupported_reason(layout, config);
  SPARCOL_CHECK_ARG(why.empty(), me, config.method + ": " + why);
  SPARCOL_CHECK_ARG(layout.total() <= kMaxElements, me,
                    "exchange: " + std::to_string(layout.total()) +
                        " parameters exceed the 2^32-1 supported by uint32 indices");
  SPARCOL_CHECK_ARG(
      backend.accepts(exec.kind()), me,
      "backend " + backend.name() + " does not move " + (exec.on_device() ? "device" : "host") + " memory");
  impl_ = std::make_unique<Impl>(backend, layout, config, exec);
  Impl& s = *impl_;
  const std::uint64_t seed = config.exchange.seed;
  switch (s.method) {
    case Method::kDmsgd:
    case Method::kDmsgdLocal:
      s.main = std::make_unique<FusedExchange>(backend, exec, s.n, dense_compressor(), seed);
      s.m = s.make("momentum");
      s.v = s.make("message");
      break;
    case Method::kEfSgd:
    case Method::kEfSgdm:
    case Method::kDefA:
      s.main = std::make_unique<FusedExchange>(backend, exec, s.n, config.exchange.compressor, seed);
      s.e = s.make("error");
      if (s.method != Method::kEfSgd) s.m = s.make("momentum");
      if (s.method == Method::kDefA) s.alpha = config.alpha >= 0 ? config.alpha : 0.3;
      break;
    case Method::kDgc:
    case Method::kDgcMfm:
      s.main = std::make_unique<FusedExchange>(backend, exec, s.n, config.exchange.compressor, seed);
      s.u = s.make("momentum");
      s.v = s.make("velocity");
      break;
    case Method::kGmc:
    case Method::kGmcPlus:
      s.main = std::make_unique<FusedExchange>(backend, exec, s.n, config.exchange.compressor, seed);
      s.u = s.make("residual");
      s.m = s.make("global momentum");
      if (s.method == Method::kGmcPlus) s.alpha = config.alpha >= 0 ? config.alpha : 0.5;
      break;
    case Method::kCser:
      s.main = std::make_unique<FusedExchange>(backend, exec, s.n, config.cser_c1, seed);
      s.reset = std::make_unique<FusedExchange>(backend, exec, s.n, config.cser_c2, seed);
      s.r = s.make("local residual");
      s.m = s.make("momentum");
      s.delta = s.make("delta");
      break;
  }
  s.agg = s.make("aggregate");
}

FusedOptimizer::~FusedOptimizer() = default;

const std::string& FusedOptimizer::method() const {
  return impl_->cfg.method;
}
const OptimConfig& FusedOptimizer::config() const {
  return impl_->cfg;
}
double FusedOptimizer::alpha() const {
  return impl_->alpha;
}
std::uint64_t FusedOptimizer::size() const {
  return impl_->n;
}
MemKind FusedOptimizer::mem_kind() const {
  return impl_->ex.kind();
}
std::uint64_t FusedOptimizer::skipped_steps() const {
  return impl_->skipped;
}
void FusedOptimizer::set_skipped_steps(std::uint64_t n) {
  impl_->skipped = n;
}
double FusedOptimizer::current_density() const {
  return impl_->main->density();
}

std::span<const float> FusedOptimizer::gradient_point(std::span<const float> x, double lr) {
  Impl& s = *impl_;
  const bool detach = (s.method == Method::kGmcPlus || s.method == Method::kDefA) && s.alpha != 0.0;
  if (!detach && s.method != Method::kCser) return x;
  if (s.z.size() != s.n) s.z = s.make("gradient point");
  if (s.method == Method::kGmcPlus) {
    ops::detached_point(s.ex, s.z.data(), x.data(), s.u.data(), static_cast<float>(s.alpha * lr), s.n);
  } else if (s.method == Method::kDefA) {
    ops::detached_point(s.ex, s.z.data(), x.data(), s.e.data(), static_cast<float>(s.alpha), s.n);
  } else {
    ops::offset_point(s.ex, s.z.data(), x.data(), s.r.data(), s.n);
  }
  s.ex.synchronize();
  return s.z.span();
}

StepStats FusedOptimizer::step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr,
                               double epoch) {
  Impl& s = *impl_;
  const int me = s.b.rank();
  const std::string& name = s.cfg.method;
  const std::uint64_t n = s.n;
  SPARCOL_CHECK_ARG(x.size() == n && g.size() == n, me,
                    name + ": step with " + std::to_string(x.size()) + " parameters and " +
                        std::to_string(g.size()) + " gradient entries, expected " + std::to_string(n));
  SPARCOL_CHECK_ARG(std::isfinite(lr) && lr >= 0, me,
                    name + ": learning rate must be finite and >= 0, got " + std::to_string(lr));
  // Finite iff its squared norm is (each term is at most 2^256, far from double's limit).
  const bool finite = std::isfinite(ops::sum_squares(s.ex, g.data(), n));

  // DGC's density warm-up (Dgc::before_step).
  if ((s.method == Method::kDgc || s.method == Method::kDgcMfm) && s.cfg.warmup_epochs > 0) {
    const int w = s.cfg.warmup_epochs;
    const double rho = s.target_density;
    const auto ep = static_cast<int>(std::floor(epoch));
    const double d = ep < w ? std::max(std::pow(std::pow(rho, 1.0 / (w + 1)), ep + 1), rho) : rho;
    if (d != s.main->density()) s.main->set_density(d);
  }

  // The verdict and the call fingerprint (Exchange::begin).
  const auto locals =
      coll::agree(s.b,
                  coll::CallSignature{coll::CollOp::kExchange, n, s.main->total_k(), s.cfg.exchange.seed, t,
                                      s.main->groups(), 0},
                  coll::RankLocal{0, finite ? 0 : coll::kFlagNonFinite}, /*need_locals=*/true);
  StepStats stats;
  for (std::size_t r = 0; r < locals.size(); ++r)
    if (locals[r].flags & coll::kFlagNonFinite) stats.bad_ranks.push_back(static_cast<int>(r));
  if (!stats.bad_ranks.empty()) {
    std::string ranks;
    for (int r : stats.bad_ranks) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (s.cfg.nan_policy == NanPolicy::kStop) {
      throw Error(ErrorCode::kNumerical, me,
                  name + ": non-finite gradient (NaN or Inf) at step " + std::to_string(t) + " on rank(s) " +
                      ranks + "; stopping (nan policy 'stop')");
    }
    ++s.skipped;
    stats.skipped = true;
    return stats;
  }
  if (n == 0) {
    stats.comm.dense_elements = 0;
    return stats;
  }

  const auto beta = static_cast<float>(s.cfg.momentum);
  const auto eta = static_cast<float>(lr);
  const auto wd = static_cast<float>(s.cfg.weight_decay);
  const bool wd_in = s.cfg.weight_decay != 0.0 && !s.cfg.wd_outside;
  // Coupled weight decay at the gradient point (Optimizer::step recomputes it the same way).
  const float* zp = x.data();
  if (wd_in) zp = gradient_point(x, lr).data();
  device::GradientInput gi{g.data(), zp, wd_in ? wd : 0.0f, 1.0f};
  const Block block = s.main->block(t);
  float* send = block.length != 0 ? s.main->send() : nullptr;
  CommStats st;

  switch (s.method) {
    case Method::kGmc:
    case Method::kGmcPlus: {
      ops::gmc_accumulate(s.ex, s.u.data(), s.m.data(), gi, beta, n, block, send);  // u holds v_k
      st = s.main->finish(s.u.data(), s.agg.data(), t, nullptr, true);
      std::swap(s.m, s.agg);  // m <- a_t
      ops::apply_update(s.ex, x.data(), s.m.data(), eta, 0.0f, n);
      break;
    }
    case Method::kDgc:
    case Method::kDgcMfm: {
      const bool mfm = s.method == Method::kDgcMfm;
      if (s.cfg.clip_norm > 0) {
        // Local clipping to G / sqrt(K) of the gradient after weight decay (Dgc::do_step).
        const float* gw = g.data();
        if (wd_in) {
          // g + wd * z, materialised for its norm: x - c*d with c = -wd is exactly g + wd*z.
          if (s.geff.size() != n) s.geff = s.make("gradient with weight decay");
          ops::detached_point(s.ex, s.geff.data(), g.data(), zp, -wd, n);
          gw = s.geff.data();
        }
        const double norm = std::sqrt(ops::sum_squares(s.ex, gw, n));
        const double limit = s.cfg.clip_norm / std::sqrt(static_cast<double>(s.b.size()));
        gi.scale = norm > limit ? static_cast<float>(limit / norm) : 1.0f;
      }
      ops::dgc_accumulate(s.ex, s.u.data(), s.v.data(), gi, beta, s.cfg.nesterov, mfm && block.length != 0, n,
                          block, send);
      st = s.main->finish(s.v.data(), s.agg.data(), t, mfm && block.length == 0 ? s.u.data() : nullptr, true);
      const float wd_out = s.cfg.wd_outside && s.cfg.weight_decay != 0 ? wd : 0.0f;
      ops::apply_update(s.ex, x.data(), s.agg.data(), eta, wd_out, n);
      break;
    }
    case Method::kEfSgd:
    case Method::kEfSgdm:
    case Method::kDefA: {
      ops::ef_accumulate(s.ex, s.e.data(), s.method == Method::kEfSgd ? nullptr : s.m.data(), gi, beta, eta,
                         n, block, send);
      st = s.main->finish(s.e.data(), s.agg.data(), t, nullptr, true);
      ops::apply_update(s.ex, x.data(), s.agg.data(), 1.0f, 0.0f, n);  // x - mean c
      break;
    }
    case Method::kDmsgdLocal: {
      ops::dmsgd_local(s.ex, s.m.data(), s.v.data(), gi, beta, n);
      st = s.main->finish(s.v.data(), s.agg.data(), t, nullptr, true);
      ops::apply_update(s.ex, x.data(), s.agg.data(), eta, 0.0f, n);
      break;
    }
    case Method::kDmsgd: {
      // The message is the gradient itself (with weight decay: x - c*d with c = -wd is g + wd*z).
      if (wd_in) {
        ops::detached_point(s.ex, s.v.data(), g.data(), zp, -wd, n);
      } else {
        s.ex.copy(s.v.data(), g.data(), n * sizeof(float));
      }
      st = s.main->finish(s.v.data(), s.agg.data(), t, nullptr, true);
      ops::dmsgd_apply(s.ex, s.m.data(), x.data(), s.agg.data(), beta, eta, n);
      break;
    }
    case Method::kCser: {
      const Kind c1 = s.main->kind();
      if (c1 == Kind::kZero || c1 == Kind::kBlock) {
        // m, r updated in one pass; the block of delta goes to send (r loses 0 there).
        ops::cser_accumulate(s.ex, s.m.data(), s.r.data(), gi, beta, eta, n, block, send);
        if (c1 == Kind::kBlock) {
          st = s.main->finish(nullptr, s.agg.data(), t, nullptr, true);
          ops::apply_update(s.ex, x.data(), s.agg.data(), 1.0f, 0.0f, n);
        }
      } else {
        ops::cser_momentum(s.ex, s.m.data(), s.delta.data(), gi, beta, eta, n);
        st = s.main->finish(s.delta.data(), s.agg.data(), t, nullptr, true);  // delta <- delta - c
        ops::cser_apply(s.ex, x.data(), s.r.data(), s.agg.data(), s.delta.data(), n);
      }
      const auto H = static_cast<std::uint64_t>(s.cfg.cser_period);
      if ((t + 1) % H == 0) {
        // Error reset: C2 of r, r keeps the rest, x + mean.
        st.add(s.reset->finish(s.r.data(), s.agg.data(), t, nullptr, false));
        ops::apply_update(s.ex, x.data(), s.agg.data(), -1.0f, 0.0f, n);
      }
      st.dense_elements =
          static_cast<double>(static_cast<std::uint64_t>(s.b.size() + 1) * n);  // once per step
      break;
    }
  }
  s.ex.synchronize();
  stats.comm = st;
  return stats;
}

void FusedOptimizer::evaluation_model(std::span<const float> x, std::span<float> out, bool virtual_model) {
  Impl& s = *impl_;
  SPARCOL_CHECK_ARG(x.size() == s.n && out.size() == s.n, s.b.rank(),
                    s.cfg.method + ": evaluation_model with vectors of " + std::to_string(x.size()) +
                        " and " + std::to_string(out.size()) + " elements, expected " + std::to_string(s.n));
  if (s.method != Method::kDefA || !virtual_model) {
    s.ex.copy(out.data(), x.data(), s.n * sizeof(float));
    s.ex.synchronize();
    return;
  }
  // x - mean_k e_k (DefA::evaluation_model): the sum of e, divided by K (rounded once), subtracted.
  s.ex.copy(out.data(), s.e.data(), s.n * sizeof(float));
  s.ex.synchronize();
  coll::dense_allreduce_sum(s.b, out.data(), s.n);
  if (s.n == 0) return;
  ops::rbgs_unpack(s.ex, out.data(), Block{s.n, 0, s.n}, static_cast<float>(s.b.size()), s.agg.data(), true);
  ops::detached_point(s.ex, out.data(), x.data(), s.agg.data(), 1.0f, s.n);  // x - 1 * (sum / K)
  s.ex.synchronize();
}

std::vector<StateBuffer> FusedOptimizer::state() {
  Impl& s = *impl_;
  switch (s.method) {
    case Method::kGmc:
    case Method::kGmcPlus:
      return {{"residual", s.u.span()}, {"global_momentum", s.m.span()}};
    case Method::kDgc:
    case Method::kDgcMfm:
      return {{"momentum", s.u.span()}, {"velocity", s.v.span()}};
    case Method::kEfSgd:
      return {{"error", s.e.span()}};
    case Method::kEfSgdm:
    case Method::kDefA:
      return {{"error", s.e.span()}, {"momentum", s.m.span()}};
    case Method::kCser:
      return {{"local_residual", s.r.span()}, {"momentum", s.m.span()}};
    case Method::kDmsgd:
    case Method::kDmsgdLocal:
      return {{"momentum", s.m.span()}};
  }
  return {};
}

}  // namespace sparcol::optim
