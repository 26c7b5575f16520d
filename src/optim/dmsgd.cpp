// DMSGD: dense momentum SGD (ALGORITHMS.md 2). The compressor of the configuration is ignored:
// these are the uncompressed baselines.
//   global: gbar = mean_k g_k;  m <- beta*m + gbar;  x <- x - eta*m       (wd_outside: x - eta*(m + wd*x))
//   local:  m_k <- beta*m_k + g_k;  x <- x - eta*mean_k m_k                (wd_outside: x - eta*(a + wd*x))
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

class Dmsgd final : public Optimizer {
 public:
  Dmsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e, bool local)
      : Optimizer(b, l, c, dense_exchange(c.exchange), e),
        local_(local),
        m_(make_buffer("momentum")),
        v_(make_buffer("message")) {}

  std::vector<StateBuffer> state() override { return {{"momentum", m_.span()}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    const float wd = wd_outside();
    const device::GradientInput gi = gradient(g, x, lr);
    if (local_) {
      ops::dmsgd_local(exec_, m_.data(), v_.data(), gi, beta, n_);  // v is a copy the exchange zeroes
      const CommStats st = ex_.finish(v_.span(), agg_);
      ops::apply_update(exec_, x.data(), agg_.data(), eta, wd, n_);
      return st;
    }
    // The message is the gradient itself (with weight decay: x - c*d with c = -wd is g + wd*z).
    if (gi.wd != 0.0f) {
      ops::detached_point(exec_, v_.data(), g.data(), gi.z, -gi.wd, n_);
    } else {
      exec_.copy(v_.data(), g.data(), n_ * sizeof(float));
    }
    const CommStats st = ex_.finish(v_.span(), agg_);
    if (wd == 0.0f) {
      ops::dmsgd_apply(exec_, m_.data(), x.data(), agg_.data(), beta, eta, n_);
    } else {
      // m <- beta*m + a (v_, free now, takes the unused eta*m), then x <- x - eta*(m + wd*x).
      ops::cser_momentum(exec_, m_.data(), v_.data(), device::GradientInput{agg_.data(), nullptr, 0.0f, 1.0f},
                         beta, 1.0f, n_);
      ops::apply_update(exec_, x.data(), m_.data(), eta, wd, n_);
    }
    return st;
  }

 private:
  bool local_;
  device::Buffer<float> m_;
  device::Buffer<float> v_;  // the message (a copy: the exchange leaves its residual, zero, in it)
};

}  // namespace

std::unique_ptr<Optimizer> make_dmsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                      bool local) {
  return std::make_unique<Dmsgd>(b, l, c, e, local);
}

}  // namespace sparcol::optim::detail
