// EF-SGD and EF-SGDM (ALGORITHMS.md 3): error feedback with the learning rate inside the error
// (parameter units).
//   q_k = g_k, or with momentum m_k <- beta*m_k + g_k, q_k = m_k
//   p_k = e_k + eta*q_k;  c_k = C(p_k);  e_k <- p_k - c_k;  x <- x - mean_k c_k
//   (wd_outside: x <- x - (mean_k c_k + eta*wd*x))
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

class EfSgd final : public Optimizer {
 public:
  EfSgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e, bool momentum)
      : Optimizer(b, l, c, c.exchange, e), momentum_(momentum), e_(make_buffer("error")) {
    if (momentum_) m_ = make_buffer("momentum");
  }

  std::vector<StateBuffer> state() override {
    if (momentum_) return {{"error", e_.span()}, {"momentum", m_.span()}};
    return {{"error", e_.span()}};
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    ops::ef_accumulate(exec_, e_.data(), momentum_ ? m_.data() : nullptr, gradient(g, x, lr), beta,
                       static_cast<float>(lr), n_, sparcol::Block{}, nullptr);  // e_ holds p_k
    const CommStats st = ex_.finish(e_.span(), agg_);                           // e_ <- p_k - C(p_k)
    apply_error_feedback_update(exec_, x, agg_, lr, config_);
    return st;
  }

 private:
  bool momentum_;
  device::Buffer<float> e_, m_;
};

}  // namespace

std::unique_ptr<Optimizer> make_ef_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                       bool momentum) {
  return std::make_unique<EfSgd>(b, l, c, e, momentum);
}

}  // namespace sparcol::optim::detail
