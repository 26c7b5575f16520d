// A2CiD2 and async-gossip (ALGORITHMS.md 10.6; docs/async_gossip.md): asynchronous pairwise gossip
// on a graph, with (a2cid2) or without (async-gossip: eta = alpha = 0) the continuous momentum.
//
// Each rank keeps x_i and its momentum copy xt_i in this object, shared by the caller's thread (the
// gradient events) and the protocol thread of a topo::PairGossip (the communication events), under
// one mutex. Time is counted in gradients: a running average (factor 1/2) of the wall time between
// two gradient events is the unit of dt.
//   start (first call):  x_i <- mean_j x_j (an all-reduce), xt_i <- x_i
//   gradient_point:      a copy of x_i (the gradient is taken there while pairs may change x_i)
//   step (gradient):     mix over dt since i's last event (topo::acid_mix); m <- beta*m + g + wd*z;
//                        x_i -= lr*m; xt_i -= lr*m; the caller's x <- x_i; budget += comm_rate
//   averaging with j:    mix over dt; send x_i; receive x_j; with d = x_j - x_i (the values sent):
//                        x_i += d/2, xt_i += alpha*d (the same on j with -d: every event keeps the
//                        sum over ranks of x + xt, and without momentum the sum of x)
//                        acid_order "exchange-first" (the authors' order): send x_i as it stood at
//                        i's last event, receive x_j likewise, then mix over dt and use d = x_j - x_i
//                        with i's mixed x_i (the sum of x + xt is then kept only when dt = 0)
//   end (step total_steps - 1): the protocol ends; the caller's evaluation averages the models.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>

#include "decentralized.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/topo/acid.hpp"
#include "sparcol/topo/pair_gossip.hpp"

namespace sparcol::optim::detail {

namespace {

using Clock = std::chrono::steady_clock;

class AsyncGossip final : public Decentralized {
 public:
  AsyncGossip(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Decentralized(b, l, c, e),
        acid_(c.method == "a2cid2"),
        exchange_first_(acid_ && c.acid_order == "exchange-first") {
    const int me = b.rank();
    SPARCOL_CHECK_ARG(!e.on_device(), me, c.method + ": the communication thread works on host memory");
    SPARCOL_CHECK_ARG(b.size() >= 2, me, c.method + " needs at least 2 ranks");
    SPARCOL_CHECK_ARG(topo::connected(graph_), me,
                      c.method + ": topology " + graph_.name + " is not connected");
    if (acid_) {
      k_ = topo::acid_constants(graph_, c.comm_rate, me);
    } else {
      // The same constants, for the record, where they are defined; eta = alpha = 0 is the method.
      try {
        k_ = topo::acid_constants(graph_, c.comm_rate, me);
      } catch (const Error&) {
        k_ = topo::AcidConstants{};
      }
      have_chi_ = k_.chi1 > 0;
      k_.eta = 0;
      k_.alpha = 0;
    }
    const std::string why = b.concurrent_use_reason();
    SPARCOL_CHECK(why.empty(), ErrorCode::kBackend, me, c.method + " (a communication thread): " + why);
    x_.assign(n_, 0.0f);
    xt_.assign(acid_ ? n_ : 0, 0.0f);
    z_.assign(n_, 0.0f);
  }

  ~AsyncGossip() override = default;  // gossip_ (declared last) ends the protocol first

  std::span<const float> gradient_point(std::span<const float> x, double) override {
    start(x);
    std::lock_guard lock(mu_);
    std::copy(x_.begin(), x_.end(), z_.begin());
    have_z_ = true;
    return z_;
  }

  std::vector<StateBuffer> state() override { return {{"momentum", m_.span()}}; }
  bool at_checkpoint_boundary() const override { return false; }

  std::string startup_text() const override {
    char buf[320];
    if (acid_ || have_chi_) {
      std::snprintf(buf, sizeof buf, "%s: comm rate %g (%s), chi1 %.4f, chi2 %.4f, eta %.4f, alpha %.4f%s",
                    config_.method.c_str(), config_.comm_rate, config_.comm_schedule.c_str(), k_.chi1,
                    k_.chi2, k_.eta, k_.alpha, acid_ ? "" : " (async-gossip: eta = alpha = 0)");
    } else {
      std::snprintf(buf, sizeof buf, "%s: comm rate %g (%s), eta = alpha = 0 (chi1, chi2 undefined on %s)",
                    config_.method.c_str(), config_.comm_rate, config_.comm_schedule.c_str(),
                    graph_.name.c_str());
    }
    return std::string(buf) +
           (acid_ ? (exchange_first_ ? "; order exchange-first" : "; order mix-first") : "") +
           "; asynchronous: the run depends on timing";
  }

  std::vector<std::pair<std::string, double>> event_counts() override {
    const topo::PairGossipStats s = gossip_ ? gossip_->stats() : topo::PairGossipStats{};
    const auto steps = static_cast<double>(grads_);
    return {{"gradient_steps", steps},
            {"averagings", static_cast<double>(s.averagings)},
            {"averagings_per_step", steps > 0 ? static_cast<double>(s.averagings) / steps : 0.0},
            {"requests", static_cast<double>(s.requests)},
            {"refused", static_cast<double>(s.refused)},
            {"seconds_per_gradient", grad_s_}};
  }

 protected:
  bool global_verdict() const override { return false; }

  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    start(x);
    if (gossip_) gossip_->check();
    // The point the gradient was taken at (coupled weight decay); x if gradient_point was skipped.
    const float* z = have_z_ ? z_.data() : x.data();
    const auto beta = static_cast<float>(config_.momentum);
    const auto wd = static_cast<float>(config_.weight_decay);
    float* m = m_.data();  // host memory (no device executor)
    for (std::uint64_t i = 0; i < n_; ++i) m[i] = beta * m[i] + g[i] + wd * z[i];
    have_z_ = false;
    const auto eta = static_cast<float>(lr);
    {
      std::lock_guard lock(mu_);
      const auto now = Clock::now();
      const double dt_s = std::chrono::duration<double>(now - last_grad_).count();
      grad_s_ = grads_ == 0 ? dt_s : 0.5 * grad_s_ + 0.5 * dt_s;
      last_grad_ = now;
      mix(now);
      for (std::uint64_t i = 0; i < n_; ++i) x_[i] -= eta * m[i];
      if (acid_)
        for (std::uint64_t i = 0; i < n_; ++i) xt_[i] -= eta * m[i];
      std::copy(x_.begin(), x_.end(), x.begin());
      ++grads_;
    }
    CommStats st;
    if (gossip_ && !gossip_->finished()) {
      gossip_->add_step();
      if (config_.total_steps > 0 && t + 1 >= config_.total_steps) {
        gossip_->finish();
        // An averaging answered while the protocol ended belongs to the final model too.
        std::lock_guard lock(mu_);
        std::copy(x_.begin(), x_.end(), x.begin());
      }
    }
    const topo::PairGossipStats s = gossip_->stats();
    st = stats_of(s.bytes_sent - last_sent_, s.bytes_recv - last_recv_, s.averagings - last_avg_);
    last_sent_ = s.bytes_sent;
    last_recv_ = s.bytes_recv;
    last_avg_ = s.averagings;
    if (s.averagings > 0 || gossip_->finished()) {
      std::lock_guard lock(mu_);
      st.time_comm_s = comm_s_total_ - last_comm_s_;
      last_comm_s_ = comm_s_total_;
    }
    return st;
  }

 private:
  // The first call: the all-reduce average of x, xt = x, and the protocol thread.
  void start(std::span<const float> x) {
    if (gossip_) return;
    std::copy(x.begin(), x.end(), x_.begin());
    backend_.allreduce_sum(x_.data(), n_);
    const float inv = 1.0f / static_cast<float>(backend_.size());
    for (auto& v : x_) v *= inv;
    if (acid_) xt_ = x_;
    last_event_ = last_grad_ = Clock::now();
    topo::PairGossip::Hooks hooks;
    hooks.prepare = [this](int, std::span<float> send) {
      std::lock_guard lock(mu_);
      exch_t0_ = Clock::now();
      if (!exchange_first_) mix(exch_t0_);  // exchange-first: x as it stood at the last event
      std::copy(x_.begin(), x_.end(), send.begin());
    };
    hooks.apply = [this](int, std::span<const float> send, std::span<const float> recv) {
      std::lock_guard lock(mu_);
      float* xt = acid_ ? xt_.data() : nullptr;
      if (exchange_first_) {
        mix(Clock::now());  // this end's mixing, after the exchange; then x_i is the mixed x
        topo::acid_average(x_.data(), xt, n_, x_.data(), recv.data(), k_.alpha);
      } else {
        topo::acid_average(x_.data(), xt, n_, send.data(), recv.data(), k_.alpha);
      }
      comm_s_total_ += std::chrono::duration<double>(Clock::now() - exch_t0_).count();
    };
    gossip_ = std::make_unique<topo::PairGossip>(backend_, graph_, n_, config_.comm_rate, std::move(hooks),
                                                 config_.exchange.seed, config_.comm_schedule == "poisson");
  }

  // The continuous momentum since this rank's last event (called with mu_ held).
  void mix(Clock::time_point now) {
    if (acid_ && grad_s_ > 0) {
      const double dt = std::chrono::duration<double>(now - last_event_).count() / grad_s_;
      topo::acid_mix(x_.data(), xt_.data(), n_, k_.eta, dt);
    }
    last_event_ = now;
  }

  const bool acid_;
  const bool exchange_first_;  // acid_order "exchange-first"
  topo::AcidConstants k_;
  bool have_chi_ = true;
  std::mutex mu_;
  std::vector<float> x_, xt_, z_;
  bool have_z_ = false;
  Clock::time_point last_event_{}, last_grad_{}, exch_t0_{};
  double grad_s_ = 0;  // running average of the seconds per gradient (the time unit)
  std::uint64_t grads_ = 0;
  double comm_s_total_ = 0, last_comm_s_ = 0;
  std::uint64_t last_sent_ = 0, last_recv_ = 0, last_avg_ = 0;
  std::unique_ptr<topo::PairGossip> gossip_;  // last: destroyed (joined) before the state it uses
};

}  // namespace

std::unique_ptr<Optimizer> make_async_gossip(comm::Backend& b, const Layout& l, const OptimConfig& c,
                                             Exec& e) {
  return std::make_unique<AsyncGossip>(b, l, c, e);
}

}  // namespace sparcol::optim::detail
