// DEF-A (ALGORITHMS.md 7): detached error feedback with local momentum; error e_k in parameter units.
//   z_k = x_t - alpha*e_k;  g_k = grad f(z_k)
//   m_k <- beta*m_k + g_k;  p_k = e_k + eta*m_k;  c_k = C(p_k);  e_k <- p_k - c_k;  x <- x - mean_k c_k
// alpha = 0 is EF-SGDM; without compression it is DMSGD with local momentum.
#include "methods.hpp"
#include "sparcol/coll/dense.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

class DefA final : public Optimizer {
 public:
  DefA(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Optimizer(b, l, c, c.exchange, e), e_(make_buffer("error")), m_(make_buffer("momentum")) {
    alpha_ = c.alpha >= 0 ? c.alpha : 0.3;
  }

  std::span<const float> gradient_point(std::span<const float> x, double) override {
    if (alpha_ == 0.0) return x;
    if (z_.size() != n_) z_ = make_buffer("gradient point");
    ops::detached_point(exec_, z_.data(), x.data(), e_.data(), static_cast<float>(alpha_), n_);
    exec_.synchronize();
    return z_.span();
  }

  // The DEF code evaluates x - mean_k e_k (one dense all-reduce of e; evaluation time only): the sum
  // of e, divided by K (rounded once), subtracted.
  void evaluation_model(std::span<const float> x, std::span<float> out, bool virtual_model) override {
    if (!virtual_model) {
      Optimizer::evaluation_model(x, out, false);
      return;
    }
    SPARCOL_CHECK_ARG(x.size() == n_ && out.size() == n_, backend_.rank(),
                      "def-a: evaluation_model with vectors of " + std::to_string(x.size()) + " and " +
                          std::to_string(out.size()) + " elements, expected " + std::to_string(n_));
    exec_.copy(out.data(), e_.data(), n_ * sizeof(float));
    exec_.synchronize();
    coll::dense_allreduce_sum(backend_, out.data(), n_);
    if (n_ == 0) return;
    // out <- x - 1 * (sum / K), through the aggregate buffer (its support is then unknown).
    ops::rbgs_unpack(exec_, out.data(), sparcol::Block{n_, 0, n_}, static_cast<float>(backend_.size()),
                     agg_.data(), true);
    agg_.forget_support();
    ops::detached_point(exec_, out.data(), x.data(), agg_.data(), 1.0f, n_);
    exec_.synchronize();
  }

  std::vector<StateBuffer> state() override { return {{"error", e_.span()}, {"momentum", m_.span()}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    ops::ef_accumulate(exec_, e_.data(), m_.data(), gradient(g, x, lr), static_cast<float>(config_.momentum),
                       static_cast<float>(lr), n_, sparcol::Block{}, nullptr);  // e_ holds p_k
    const CommStats st = ex_.finish(e_.span(), agg_);                           // e_ <- p_k - C(p_k)
    apply_error_feedback_update(exec_, x, agg_, lr, config_);
    return st;
  }

 private:
  device::Buffer<float> e_, m_;
};

}  // namespace

std::unique_ptr<Optimizer> make_def_a(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  return std::make_unique<DefA>(b, l, c, e);
}

}  // namespace sparcol::optim::detail
