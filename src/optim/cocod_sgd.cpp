// CoCoD-SGD (ALGORITHMS.md 10.9 [P]): computation and communication decoupled. Round r of worker k:
// start the all-reduce of its model x_k^r behind computation (coll::Background), run tau = period
// local SGD steps from x_k^r to y_k, then x_k^{r+1} = mean_j x_j^r + (y_k - x_k^r).
//   local step: m_k <- beta*m_k + (g_k + wd*x_k); x_k <- x_k - eta*m_k   (beta = 0: plain SGD; the
//               momentum stays local: the spec averages only the models)
// The all-reduce of a round starts in gradient_point() of the round's first step (before that
// step's gradient is computed, so it overlaps all tau gradients; a caller that skips
// gradient_point() starts it in step()), and completes in the round's last step. The ring
// all-reduce runs on the Background's duplicated backend: bitwise the blocking ring, and a dead or
// stopped peer is its named timeout, rethrown by the step that waits for it.
#include <memory>

#include "methods.hpp"
#include "sparcol/coll/background.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

class CocodSgd final : public Optimizer {
 public:
  CocodSgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Optimizer(b, l, c, dense_exchange(c.exchange), e),
        m_(make_buffer("momentum")),
        tmp_(make_buffer("scratch")),
        start_(make_buffer("round start")),
        sum_(make_buffer("round sum")),
        bg_(b),
        ring_(bg_.backend(), n_, coll::RingAllreduce::kDefaultPieceBytes,
              coll::RingAllreduce::Algorithm::kAuto, e.on_device() ? &e : nullptr) {}

  ~CocodSgd() override {
    try {
      bg_.wait();  // a round in flight at the end of a run (its peers complete it too)
    } catch (...) {
      // The step that would have waited for it is never taken; its error has nowhere to go.
    }
  }

  std::span<const float> gradient_point(std::span<const float> x, double) override {
    start_round(x);
    return x;
  }

  bool per_worker_models() const override { return true; }
  bool at_checkpoint_boundary() const override { return !bg_.in_flight(); }

  std::vector<StateBuffer> state() override { return {{"momentum", m_.span()}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    start_round(x);
    const auto eta = static_cast<float>(lr);
    ops::dmsgd_local(exec_, m_.data(), tmp_.data(), gradient(g, x, lr), static_cast<float>(config_.momentum),
                     n_);
    ops::apply_update(exec_, x.data(), tmp_.data(), eta, 0.0f, n_);
    CommStats st;
    st.dense_elements = static_cast<double>(static_cast<std::uint64_t>(backend_.size() + 1) * n_);
    if ((t + 1) % static_cast<std::uint64_t>(config_.period) != 0) return st;
    // The round's end: x <- mean_j x_j^r + (x - x^r).
    st.time_comm_s = bg_.wait();
    ops::detached_point(exec_, tmp_.data(), x.data(), start_.data(), 1.0f, n_);  // y - x^r
    const float inv_k = 1.0f / static_cast<float>(backend_.size());
    ops::detached_point(exec_, x.data(), tmp_.data(), sum_.data(), -inv_k, n_);  // + sum / K
    st.rounds = 1;
    st.bytes_sent = st.bytes_recv = ring_.bytes_sent_per_run();
    const auto K = static_cast<double>(backend_.size());
    st.elements_up = static_cast<double>(n_);
    st.elements_up_all = K * static_cast<double>(n_);
    st.elements_down = static_cast<double>(n_);
    st.bytes_up = st.bytes_down = n_ * sizeof(float);
    return st;
  }

 private:
  void start_round(std::span<const float> x) {
    if (bg_.in_flight()) return;
    const std::size_t bytes = n_ * sizeof(float);
    exec_.copy(start_.data(), x.data(), bytes);
    exec_.copy(sum_.data(), x.data(), bytes);
    exec_.synchronize();
    float* sum = sum_.data();
    bg_.start([this, sum](comm::Backend&) { ring_.run(sum); });
  }

  device::Buffer<float> m_, tmp_, start_, sum_;
  coll::Background bg_;
  coll::RingAllreduce ring_;
};

}  // namespace

std::unique_ptr<Optimizer> make_cocod_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  return std::make_unique<CocodSgd>(b, l, c, e);
}

}  // namespace sparcol::optim::detail
