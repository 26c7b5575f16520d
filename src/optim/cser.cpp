// CSER with momentum (ALGORITHMS.md 8). x is the synchronized model xh (replicated); worker k trains
// on xh + r_k.
//   g_k = grad f(xh + r_k);  m_k <- beta*m_k + g_k;  delta_k = eta*m_k
//   partial sync: c_k = C1(delta_k); xh <- xh - mean c; r_k <- r_k - (delta_k - c_k)
//   error reset every H steps ((t+1) mod H == 0): c2_k = C2(r_k); xh <- xh + mean c2; r_k <- r_k - c2_k
// C1 named "zero" sends nothing (step 2 purely local: r_k <- r_k - delta_k).
// C1 and C2 draw their random choices (RBGS blocks, sampling offsets) from different streams of the
// shared seed (ExchangeConfig::stream), so at a reset step C2 does not pick C1's block.
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

// The stream of C2's random choices; C1 keeps stream 0.
constexpr std::uint32_t kResetStream = 1u << 31;

ExchangeConfig with_compressor(const ExchangeConfig& base, const compress::CompressorConfig& c,
                               std::uint32_t stream = 0) {
  ExchangeConfig e = base;
  e.compressor = c;
  e.stream = stream;
  return e;
}

class Cser final : public Optimizer {
 public:
  Cser(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Optimizer(
            b, l, c,
            c.cser_c1.name == "zero" ? dense_exchange(c.exchange) : with_compressor(c.exchange, c.cser_c1),
            e),
        c1_zero_(c.cser_c1.name == "zero"),
        reset_(b, l, with_compressor(c.exchange, c.cser_c2, kResetStream), e),
        r_(make_buffer("local residual")),
        m_(make_buffer("momentum")),
        delta_(make_buffer("delta")) {}

  std::span<const float> gradient_point(std::span<const float> x, double) override {
    if (z_.size() != n_) z_ = make_buffer("gradient point");
    ops::offset_point(exec_, z_.data(), x.data(), r_.data(), n_);
    exec_.synchronize();
    return z_.span();
  }

  std::vector<StateBuffer> state() override {
    return {{"local_residual", r_.span()}, {"momentum", m_.span()}};
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    ops::cser_momentum(exec_, m_.data(), delta_.data(), gradient(g, x, lr), beta, eta, n_);  // delta = eta*m
    CommStats st;
    if (!c1_zero_) {
      st = ex_.finish(delta_.span(), agg_);  // delta_ <- delta_k - c_k
      apply_aggregate(exec_, x.data(), agg_, 1.0f);
    }
    ops::apply_update(exec_, r_.data(), delta_.data(), 1.0f, 0.0f, n_);  // r <- r - delta
    const auto H = static_cast<std::uint64_t>(config_.cser_period);
    if ((t + 1) % H == 0) {
      // Error reset. The step's NaN verdict was taken already; this begin() only agrees on the call.
      reset_.begin(t, false);
      st.add(reset_.finish(r_.span(), agg_));                            // r_ <- r_k - c2_k
      ops::apply_update(exec_, x.data(), agg_.data(), -1.0f, 0.0f, n_);  // x + mean c2
    }
    st.dense_elements =
        static_cast<double>(static_cast<std::uint64_t>(backend_.size() + 1) * n_);  // once per step
    return st;
  }

 private:
  bool c1_zero_;
  Exchange reset_;
  device::Buffer<float> r_, m_, delta_;
};

}  // namespace

std::unique_ptr<Optimizer> make_cser(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  return std::make_unique<Cser>(b, l, c, e);
}

}  // namespace sparcol::optim::detail
