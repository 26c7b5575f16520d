// DEF-A (ALGORITHMS.md 7): detached error feedback with local momentum; error e_k in parameter units.
//   z_k = x_t - alpha*e_k;  g_k = grad f(z_k)
//   m_k <- beta*m_k + g_k;  p_k = e_k + eta*m_k;  c_k = C(p_k);  e_k <- p_k - c_k;  x <- x - mean_k c_k
// alpha = 0 is EF-SGDM; without compression it is DMSGD with local momentum.
#include "methods.hpp"
#include "sparcol/coll/dense.hpp"

namespace sparcol::optim::detail {

namespace {

class DefA final : public Optimizer {
 public:
  DefA(comm::Backend& b, const Layout& l, const OptimConfig& c) : Optimizer(b, l, c, c.exchange), e_(n_), m_(n_) {
    alpha_ = c.alpha >= 0 ? c.alpha : 0.3;
  }

  std::span<const float> gradient_point(std::span<const float> x, double) override {
    if (alpha_ == 0.0) return x;
    z_.resize(n_);
    const auto a = static_cast<float>(alpha_);
    for (std::uint64_t i = 0; i < n_; ++i) z_[i] = x[i] - a * e_[i];
    return z_;
  }

  // The DEF code evaluates x - mean_k e_k (one dense all-reduce of e; evaluation time only).
  void evaluation_model(std::span<const float> x, std::span<float> out, bool virtual_model) override {
    if (!virtual_model) {
      Optimizer::evaluation_model(x, out, false);
      return;
    }
    std::copy(e_.begin(), e_.end(), out.begin());
    coll::dense_allreduce_sum(backend_, out.data(), n_);
    const auto k = static_cast<float>(backend_.size());
    for (std::uint64_t i = 0; i < n_; ++i) out[i] = x[i] - out[i] / k;
  }

  std::vector<StateBuffer> state() override { return {{"error", e_}, {"momentum", m_}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    for (std::uint64_t i = 0; i < n_; ++i) {
      m_[i] = beta * m_[i] + g[i];
      e_[i] += eta * m_[i];  // p_k
    }
    const CommStats st = ex_.finish(e_, agg_);  // e_ <- p_k - C(p_k)
    for (std::uint64_t i = 0; i < n_; ++i) x[i] -= agg_[i];
    return st;
  }

 private:
  std::vector<float> e_, m_;
};

}  // namespace

std::unique_ptr<Optimizer> make_def_a(comm::Backend& b, const Layout& l, const OptimConfig& c) {
  return std::make_unique<DefA>(b, l, c);
}

}  // namespace sparcol::optim::detail
