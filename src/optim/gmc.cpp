// GMC and GMC+ (ALGORITHMS.md 5.3 all-reduce form, 6). Residual u_k in gradient units; global
// momentum m replicated on every rank (m_t = (x_{t-1} - x_t) / eta_{t-1}).
//   [GMC+: gradient at z_k = x_t - alpha*eta_t*u_k]
//   v_k = u_k + g_k + beta*m;  s_k = S(v_k);  u_k <- v_k - s_k
//   a_t = mean_k s_k (rank order, divided by K once);  x <- x - eta_t*a_t;  m <- a_t
// Without compression u = 0 and this is DMSGD with global momentum, exactly.
//
// m is the Exchange's aggregate itself: with top-k or RBGS it has at most K*k non-zeros.
//
// The host executor computes the message in one pass of its own (fused_message), before the NaN
// verdict: block by block it checks g, writes v_k into a second buffer w (streaming stores: u is
// only read), takes m from the aggregate's ascending support (its values, read in order, instead of
// a pass over m), and feeds the fused top-k selector, so that neither the NaN check nor the top-k
// reads the vector again. A skipped step drops w, so u stays as it was; otherwise w becomes u after
// the exchange. Cost: one more vector of n floats. The same bits as the separate passes (the tests
// compare them): every element is computed by the same expression.
#include <algorithm>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "methods.hpp"
#include "sparcol/core/prefetch.hpp"
#include "sparcol/device/elementwise.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

// Elements per block of the fused pass: u, g and the block of v stay in the L1 cache.
constexpr std::uint64_t kFuseBlock = 2048;

// dst[0, len) <- src[0, len), bypassing the cache where the CPU can (dst is written once and read
// next at the exchange's sparse positions only).
void stream_copy(float* dst, const float* src, std::uint64_t len) {
#if defined(__SSE2__)
  std::uint64_t i = 0;
  if (reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
    for (; i + 4 <= len; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  }
  std::memcpy(dst + i, src + i, (len - i) * sizeof(float));
#else
  std::memcpy(dst, src, len * sizeof(float));
#endif
}

void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

class Gmc final : public Optimizer {
 public:
  Gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e, bool plus)
      : Optimizer(b, l, c, c.exchange, e), plus_(plus), u_(make_buffer("residual")) {
    alpha_ = plus ? (c.alpha >= 0 ? c.alpha : 0.5) : 0.0;
  }

  std::span<const float> gradient_point(std::span<const float> x, double lr) override {
    if (!plus_ || alpha_ == 0.0) return x;
    if (z_.size() != n_) z_ = make_buffer("gradient point");
    ops::detached_point(exec_, z_.data(), x.data(), u_.data(), static_cast<float>(alpha_ * lr), n_);
    exec_.synchronize();
    return z_.span();
  }

  bool fused_message(std::span<const float> x, std::span<const float> g, double lr, bool& finite) override {
    prepared_ = false;
    if (exec_.on_device() || !config_.exchange.track_support) return false;
    const Aggregate& agg = agg_;
    if (!agg.dense() && !agg.sorted()) return false;  // support in arbitrary order: the separate passes
    if (w_.size() != n_) w_ = make_buffer("message");
    const auto beta = static_cast<float>(config_.momentum);
    const device::GradientInput gi = gradient(g, x, lr);
    const float* u = u_.data();
    const float* m = agg.data();
    const float* gg = gi.g;
    const bool plain = gi.wd == 0.0f && gi.scale == 1.0f;
    auto grad = [&gi](std::uint64_t i) {
      return device::effective_gradient(gi.g[i], gi.wd != 0.0f ? gi.z[i] : 0.0f, gi.wd, gi.scale);
    };
    compress::TopkSelector* sel = ex_.fused_selector();
    const bool feed = sel != nullptr && sel->fused_begin(n_, ex_.fused_k(), [&](std::uint64_t i) {
      return device::gmc_message(u[i], grad(i), beta, m[i]);
    });
    const std::span<const Index> support = agg.support();
    const std::span<const float> support_values = agg.support_values();
    std::size_t next = 0;  // the first support index not yet patched
    std::uint32_t all = 0xffffffffu;
    float block[kFuseBlock];
    float* w = w_.data();
    for (std::uint64_t base = 0; base < n_; base += kFuseBlock) {
      const std::uint64_t len = std::min(kFuseBlock, n_ - base);
      const float* ub = u + base;
      const float* gb = gg + base;
      if (base + 2 * kFuseBlock <= n_) {
        // The next block's lines of u and g (m when dense): more reads in flight than the hardware
        // prefetcher keeps for three streams (about 5% of the pass on the test machine).
        for (std::uint64_t j = kFuseBlock; j < 2 * kFuseBlock; j += 16) {
          prefetch_for_read(ub + j);
          prefetch_for_read(gb + j);
          if (agg.dense()) prefetch_for_read(m + base + j);
        }
      }
      for (std::uint64_t j = 0; j < len; ++j) {
        std::uint32_t bits;
        std::memcpy(&bits, gb + j, sizeof bits);
        all &= (bits & 0x7f800000u) == 0x7f800000u ? 0u : 0xffffffffu;
      }
      if (agg.dense()) {
        const float* mb = m + base;
        if (plain) {
          for (std::uint64_t j = 0; j < len; ++j) block[j] = device::gmc_message(ub[j], gb[j], beta, mb[j]);
        } else {
          for (std::uint64_t j = 0; j < len; ++j)
            block[j] = device::gmc_message(ub[j], grad(base + j), beta, mb[j]);
        }
      } else {
        // m is +0 outside its support; at the support, its value (read in index order).
        if (plain) {
          for (std::uint64_t j = 0; j < len; ++j) block[j] = device::gmc_message(ub[j], gb[j], beta, 0.0f);
        } else {
          for (std::uint64_t j = 0; j < len; ++j)
            block[j] = device::gmc_message(ub[j], grad(base + j), beta, 0.0f);
        }
        for (; next < support.size() && support[next] < base + len; ++next) {
          const std::uint64_t i = support[next];
          block[i - base] = device::gmc_message(u[i], grad(i), beta, support_values[next]);
        }
      }
      if (feed) sel->fused_collect(block, base, len);
      stream_copy(w + base, block, len);
    }
    stream_fence();
    ex_.arm_fused(feed);
    finite = all != 0;
    prepared_ = true;
    return true;
  }

  void drop_message() override { prepared_ = false; }

  std::vector<StateBuffer> state() override {
    agg_.forget_support();  // the caller may overwrite m
    return {{"residual", u_.span()}, {"global_momentum", agg_.values()}};
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    if (prepared_) {
      // fused_message wrote v_k into w.
      prepared_ = false;
      const CommStats st = ex_.finish(w_.span(), agg_);  // w <- v_k - S(v_k); m <- a_t
      std::swap(u_, w_);
      apply_aggregate(exec_, x.data(), agg_, static_cast<float>(lr));
      return st;
    }
    const auto beta = static_cast<float>(config_.momentum);
    const device::GradientInput gi = gradient(g, x, lr);
    const Aggregate& m = agg_;  // a_{t-1}
    if (m.dense()) {
      ops::gmc_accumulate(exec_, u_.data(), m.data(), gi, beta, n_, sparcol::Block{},
                          nullptr);  // u holds v_k
    } else {
      ops::gmc_accumulate_sparse(exec_, u_.data(), m.data(), m.support().data(), m.support().size(), gi, beta,
                                 n_);
    }
    const CommStats st = ex_.finish(u_.span(), agg_);  // u <- v_k - S(v_k); m <- a_t
    apply_aggregate(exec_, x.data(), agg_, static_cast<float>(lr));
    return st;
  }

 private:
  bool plus_;
  device::Buffer<float> u_;
  device::Buffer<float> w_;  // host: the message of fused_message (then the residual, swapped with u_)
  bool prepared_ = false;
};

}  // namespace

std::unique_ptr<Optimizer> make_gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                    bool plus) {
  return std::make_unique<Gmc>(b, l, c, e, plus);
}

}  // namespace sparcol::optim::detail
