// Marsit and the cascading sign ring (ALGORITHMS.md 10.1): EF-signSGD whose scaled signs are
// aggregated by a sign-bit ring all-reduce instead of the all-gather.
//   p_k = e_k + eta*g_k;  b_k = sign(p_k), lambda_k = ||p_k||_1 / d;  (the Exchange's sign message)
//   marsit:       B = Marsit's unbiased merge of the b_k, lambda = mean_k lambda_k;  x <- x - lambda*B
//   sign-cascade: the ring re-compresses the partial sums at every hop;  x <- x - decoded sum / K
//   e_k <- p_k - lambda_k*b_k   (compensation "local": EF-signSGD's own error; both methods)
//   e_k <- p_k - lambda*B       (marsit, compensation "global": the ablation 10.1 warns about)
// The learning rate sits inside the error (parameter units), as in EF-SGD (3); with a constant
// learning rate this is 10.1's p = g + e, x <- x - eta*lambda*B with e scaled by eta. Compressor
// "none" (compression off) gives EF-SGD without compression: DSGD.
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

ExchangeConfig sign_ring_exchange(const OptimConfig& c, bool cascade) {
  ExchangeConfig e = c.exchange;
  if (e.compressor.name == "sign")
    e.sign_reduce = cascade ? ExchangeConfig::SignReduce::kCascade : ExchangeConfig::SignReduce::kMarsit;
  return e;
}

class SignRing final : public Optimizer {
 public:
  SignRing(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e, bool cascade)
      : Optimizer(b, l, c, sign_ring_exchange(c, cascade), e),
        global_(c.marsit_compensation == "global"),
        e_(make_buffer("error")) {
    if (global_) p_ = make_buffer("message copy");
  }

  std::vector<StateBuffer> state() override { return {{"error", e_.span()}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    ops::ef_accumulate(exec_, e_.data(), nullptr, gradient(g, x, lr), 0.0f, static_cast<float>(lr), n_,
                       sparcol::Block{}, nullptr);  // e_ holds p_k
    if (global_) exec_.copy(p_.data(), e_.data(), n_ * sizeof(float));
    const CommStats st = ex_.finish(e_.span(), agg_);  // e_ <- p_k - C(p_k)
    if (global_) {
      // e_k <- p_k - lambda*B: the copy of p_k minus the aggregate (exact: 1 * a = a).
      exec_.copy(e_.data(), p_.data(), n_ * sizeof(float));
      ops::apply_update(exec_, e_.data(), agg_.data(), 1.0f, 0.0f, n_);
    }
    apply_error_feedback_update(exec_, x, agg_, lr, config_);
    return st;
  }

 private:
  bool global_;
  device::Buffer<float> e_, p_;
};

}  // namespace

std::unique_ptr<Optimizer> make_sign_ring(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                          bool cascade) {
  return std::make_unique<SignRing>(b, l, c, e, cascade);
}

}  // namespace sparcol::optim::detail
