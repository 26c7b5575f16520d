// The local-SGD family with periodic averaging (ALGORITHMS.md 10.7, 10.8): local-sgd, vrl-sgd, stl-sgd.
// Every rank keeps its own model x_k (per_worker_models); the models are averaged after the steps
// local_period() names.
//   local step:  d = g_k(x_k) + wd*x_k;  m_k <- beta*m_k + d;  x_k <- x_k - eta*(m_k - D_k)
//   averaging:   xbar = mean_k x_k, mbar = mean_k m_k (one dense all-reduce of [x | m]);
//                vrl-sgd: D_k <- D_k + (xbar - x_k)/(eta*p) with x_k before the average, p the steps
//                since the previous averaging;  x_k <- xbar, m_k <- mbar
// local-sgd and stl-sgd have no D (D = 0: the same arithmetic bit for bit, since m - 0 is m);
// stl-sgd's period and learning-rate factor change with its stage (local_period).
// With a compressor other than "none" the averaging sends the model difference through the
// error-feedback exchange: e_k <- e_k + (x_k - xref); c_k = C(e_k); e_k <- e_k - c_k;
// xbar = xref + mean_k c_k (xref: the last averaged model, the same on every rank); the momentum
// buffers then take a second, dense all-reduce.
#include <cmath>

#include "methods.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::optim {

namespace {

std::uint64_t stl_first_stage(const OptimConfig& c) {
  const std::uint64_t parts = (std::uint64_t{1} << c.stl_stages) - 1;  // T_1 (1 + 2 + ... + 2^(S-1))
  return std::max<std::uint64_t>(1, c.total_steps / parts);
}

std::uint64_t stl_stage_start(const OptimConfig& c, int s) {  // s = 1..S
  return stl_first_stage(c) * ((std::uint64_t{1} << (s - 1)) - 1);
}

}  // namespace

LocalPeriod local_period(const OptimConfig& c, std::uint64_t t) {
  LocalPeriod p;
  const auto k1 = static_cast<std::uint64_t>(c.period);
  std::uint64_t start = 0, k = k1;
  bool stage_end = false;
  if (c.method == "stl-sgd" && c.stl_stages > 1) {
    int s = 1;
    while (s < c.stl_stages && stl_stage_start(c, s + 1) <= t) ++s;
    start = stl_stage_start(c, s);
    k = c.stl_iid
            ? k1 << (s - 1)
            : std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(
                                             static_cast<double>(k1) * std::pow(std::sqrt(2.0), s - 1))));
    stage_end = s < c.stl_stages && t + 1 == stl_stage_start(c, s + 1);
    p.stage = s;
    p.lr_factor = std::ldexp(1.0, 1 - s);
  }
  p.period = k;
  const std::uint64_t local = t + 1 - start;  // steps into the stage, this one included
  p.average = local % k == 0 || stage_end;
  p.length = (local - 1) % k + 1;
  return p;
}

namespace detail {

namespace {

namespace ops = device::dispatch;

class LocalSgd final : public Optimizer {
 public:
  LocalSgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Optimizer(b, l, c, c.exchange, e),
        vrl_(c.method == "vrl-sgd"),
        compressed_(c.exchange.compressor.name != "none"),
        momentum_(c.momentum != 0.0),
        m_(make_buffer("momentum")),
        tmp_(make_buffer("scratch")) {
    if (vrl_) d_ = make_buffer("correction");
    if (compressed_) {
      e_ = make_buffer("averaging residual");
      ref_ = make_buffer("reference model");
      ref_set_ = device::Buffer<float>(e, 1, "reference set");
      if (momentum_) {
        mom_ = std::make_unique<Exchange>(b, Layout::flat(n_), dense_exchange(c.exchange), e);
        mom_agg_ = Aggregate(e, n_, "momentum mean");
      }
    } else if (momentum_) {
      // x and m averaged together: one all-reduce of 2n floats.
      joint_ = std::make_unique<Exchange>(b, Layout::flat(2 * n_), dense_exchange(c.exchange), e);
      joint_agg_ = Aggregate(e, 2 * n_, "model and momentum mean");
      pack_ = device::Buffer<float>(e, 2 * n_, "model and momentum");
    }
  }

  bool per_worker_models() const override { return true; }
  bool at_checkpoint_boundary() const override { return boundary_; }

  std::vector<StateBuffer> state() override {
    std::vector<StateBuffer> s{{"momentum", m_.span()}};
    if (vrl_) s.push_back({"correction", d_.span()});
    if (compressed_) {
      s.push_back({"averaging_residual", e_.span()});
      s.push_back({"reference_model", ref_.span()});
      s.push_back({"reference_set", ref_set_.span()});
    }
    return s;
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    const LocalPeriod p = local_period(config_, t);
    const double eta_d = lr * p.lr_factor;
    const auto eta = static_cast<float>(eta_d);
    const auto beta = static_cast<float>(config_.momentum);
    const std::size_t bytes = n_ * sizeof(float);
    if (compressed_ && !reference_set()) {
      exec_.copy(ref_.data(), x.data(), bytes);  // x_0, the same on every rank
      const float one = 1.0f;
      exec_.upload(ref_set_.data(), &one, sizeof one);
    }
    // Local step: m <- beta*m + g', tmp = m (- D), x <- x - eta*tmp.
    ops::dmsgd_local(exec_, m_.data(), tmp_.data(), gradient(g, x, lr), beta, n_);
    if (vrl_) ops::detached_point(exec_, tmp_.data(), m_.data(), d_.data(), 1.0f, n_);
    ops::apply_update(exec_, x.data(), tmp_.data(), eta, 0.0f, n_);
    boundary_ = p.average;
    CommStats st;
    if (p.average) {
      const float* xbar = nullptr;
      const float* mbar = nullptr;
      if (!compressed_ && momentum_) {
        exec_.copy(pack_.data(), x.data(), bytes);
        exec_.copy(pack_.data() + n_, m_.data(), bytes);
        joint_->begin(t, false);  // the step's NaN verdict was taken already; this agrees on the call
        st = joint_->finish(pack_.span(), joint_agg_);
        xbar = joint_agg_.data();
        mbar = joint_agg_.data() + n_;
      } else if (!compressed_) {
        exec_.copy(tmp_.data(), x.data(), bytes);
        st = ex_.finish(tmp_.span(), agg_);
        xbar = agg_.data();
      } else {
        ops::detached_point(exec_, tmp_.data(), x.data(), ref_.data(), 1.0f, n_);  // x - xref
        ops::add_into(exec_, e_.data(), tmp_.data(), n_);
        st = ex_.finish(e_.span(), agg_);                                     // e <- e - C(e)
        ops::apply_update(exec_, ref_.data(), agg_.data(), -1.0f, 0.0f, n_);  // xref + mean C(e)
        xbar = ref_.data();
        if (momentum_) {
          exec_.copy(tmp_.data(), m_.data(), bytes);
          mom_->begin(t, false);
          st.add(mom_->finish(tmp_.span(), mom_agg_));
          mbar = mom_agg_.data();
        }
      }
      if (vrl_) {
        // D <- D + (xbar - x)/(eta*p), with x before the average.
        ops::detached_point(exec_, tmp_.data(), xbar, x.data(), 1.0f, n_);
        const auto c = static_cast<float>(1.0 / (eta_d * static_cast<double>(p.length)));
        if (eta_d > 0) ops::detached_point(exec_, d_.data(), d_.data(), tmp_.data(), -c, n_);
      }
      exec_.copy(x.data(), xbar, bytes);
      if (mbar != nullptr) exec_.copy(m_.data(), mbar, bytes);
    }
    st.dense_elements = static_cast<double>(static_cast<std::uint64_t>(backend_.size() + 1) * n_);
    return st;
  }

 private:
  bool reference_set() const {
    float v = 0;
    exec_.download(&v, ref_set_.data(), sizeof v);
    return v != 0.0f;
  }

  bool vrl_, compressed_, momentum_;
  bool boundary_ = true;  // a resumed run starts at a boundary (checkpoints are written only there)
  device::Buffer<float> m_, tmp_, d_, e_, ref_, ref_set_, pack_;
  std::unique_ptr<Exchange> joint_, mom_;
  Aggregate joint_agg_, mom_agg_;
};

}  // namespace

std::unique_ptr<Optimizer> make_local_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  return std::make_unique<LocalSgd>(b, l, c, e);
}

}  // namespace detail

}  // namespace sparcol::optim
