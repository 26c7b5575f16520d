// LIEC-SGD (ALGORITHMS.md 10.2 [P]): compression in both directions with local immediate error
// compensation, the server sharded over the ranks (coll/liec_allreduce.hpp: rank r owns chunk r).
// Per step t, on every rank i (xh = the trainer's x, replicated; x_i = xh - s_i its local model):
//   g_i = grad f(x_i) (+ wd * x_i, coupled weight decay at the gradient point)
//   c_i = C_up(g_i)              one call on the flat vector, k = the up compressor's target_k(d)
//   delta_i = g_i - c_i          (not stored: it only moves the next gradient point)
//   upload: the pairs of c_i in chunk r go to owner r, which sums them (rank order)
//   owner r: w = sum / K + e_s   (e_s: this owner's persistent server error, chunk r only)
//            c = C_down(w)       one call per owner chunk, k_r = the down compressor's target_k(n_r)
//            e_s <- w - c        (the sent coordinates become exactly 0)
//   download: the owners' c chunks are all-gathered: every rank holds the same c
//   m <- beta m + c;  xh <- xh - eta m           (beta = 0: 10.2's xh <- xh - eta c)
//   s_i <- eta * delta_i,  so that x_i = xh - eta * delta_i  (the next gradient point)
// Momentum [P] (10.2 is silent): heavy ball on the replicated downward vector c, DMSGD's global form,
// so that with both compressors "none" (delta = 0, e_s = 0, c = mean_i g_i) LIEC is DMSGD with global
// momentum (DSGD for beta = 0), bit for bit where the dense all-reduce sums in rank order (its direct
// algorithm: K <= 16 and d <= 2M floats). Weight decay: coupled, at x_i (the point of the gradient).
// wd_outside is not defined (refused by make_optimizer).
// C_down "none" keeps e_s at 0 and sends the chunks densely. Randomness: the up compressor draws with
// (seed, t, tensor 0, rank i), owner r's down compressor with (seed, t, tensor 1 + r, rank r).
// Host executor only: the routing of the sparse pairs to their owners runs on the host.
#include <chrono>
#include <memory>
#include <string>

#include "methods.hpp"
#include "sparcol/coll/liec_allreduce.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using Payload = coll::LiecAllreduce::Payload;

bool is_sparse(const compress::CompressorConfig& c) {
  return c.name != "none";
}

class Liec final : public Optimizer {
 public:
  Liec(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Optimizer(b, l, c, dense_exchange(c.exchange), e),
        sparse_up_(is_sparse(c.exchange.compressor)),
        sparse_down_(is_sparse(c.liec_down)),
        coll_(b, n_, sparse_up_ ? Payload::kSparse : Payload::kDense,
              sparse_down_ ? Payload::kSparse : Payload::kDense),
        v_(make_buffer("message")),
        s_(make_buffer("local offset")),
        m_(make_buffer("momentum")),
        c_(make_buffer("downward vector")) {
    z_ = make_buffer("gradient point");
    if (sparse_up_) {
      up_ = compress::make_compressor(c.exchange.compressor);
      k_up_ = up_->target_k(n_);
    }
    const std::uint64_t chunk = coll_.chunk_size(b.rank());
    es_.assign(chunk, 0.0f);
    if (sparse_down_) {
      down_ = compress::make_compressor(c.liec_down);
      k_down_ = down_->target_k(chunk);
      down_idx_.reserve(chunk);
    }
  }

  std::vector<StateBuffer> state() override {
    return {{"server error", {es_.data(), es_.size()}}, {"local offset", s_.span()}, {"momentum", m_.span()}};
  }

  std::span<const float> gradient_point(std::span<const float> x, double /*lr*/) override {
    if (!sparse_up_) return x;                                             // delta_i = 0: x_i = xh
    ops::detached_point(exec_, z_.data(), x.data(), s_.data(), 1.0f, n_);  // x - 1 * s, exactly x - s
    return z_.span();
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    const int me = backend_.rank();
    const auto K = static_cast<std::uint64_t>(backend_.size());
    const auto kf = static_cast<float>(K);
    const auto eta = static_cast<float>(lr);
    CommStats st;
    auto t0 = Clock::now();
    // The message g_i (+ wd * x_i): g - (-wd) * z is g + wd * z exactly.
    const device::GradientInput gi = gradient(g, x, lr);
    if (gi.wd != 0.0f) {
      ops::detached_point(exec_, v_.data(), g.data(), gi.z, -gi.wd, n_);
    } else {
      exec_.copy(v_.data(), g.data(), n_ * sizeof(float));
    }
    // Upload: c_i = C_up(g_i), v <- delta_i = g_i - c_i.
    if (sparse_up_) {
      up_->compress(v_.span(),
                    compress::Context{config_.exchange.seed, t, 0, static_cast<std::uint32_t>(me), k_up_},
                    up_msg_);
      compress::subtract_decompressed(up_msg_, v_.span());
      st.elements_up = up_msg_.wire_elements();
      st.bytes_up = up_msg_.wire_bytes();
    } else {
      st.elements_up = static_cast<double>(n_);
      st.bytes_up = 4 * n_;
    }
    st.time_compress_s += seconds_since(t0);
    t0 = Clock::now();
    if (sparse_up_) {
      coll_.reduce(up_msg_.sparse(), t);
    } else {
      coll_.reduce(std::span<const float>(v_.data(), n_), t);
    }
    st.time_comm_s += seconds_since(t0);
    t0 = Clock::now();
    // Owner: w = sum / K + e_s, c = C_down(w), e_s <- w - c.
    std::span<float> w = coll_.owner_sum();
    const std::uint64_t base = coll_.chunk_begin(me);
    if (!sparse_down_) {
      for (auto& v : w) v /= kf;  // e_s stays 0
    } else {
      for (std::size_t j = 0; j < w.size(); ++j) w[j] = w[j] / kf + es_[j];
      down_idx_.clear();
      if (!w.empty()) {
        down_->compress(w,
                        compress::Context{config_.exchange.seed, t, 1 + static_cast<std::uint32_t>(me),
                                          static_cast<std::uint32_t>(me), k_down_},
                        down_msg_);
        std::copy(w.begin(), w.end(), es_.begin());
        compress::subtract_decompressed(down_msg_, es_);
        for (const Index i : down_msg_.indices) down_idx_.push_back(static_cast<Index>(base + i));
      }
    }
    st.time_compress_s += seconds_since(t0);
    t0 = Clock::now();
    if (sparse_down_) {
      const std::size_t pairs = down_idx_.size();
      coll_.gather(SparseChunk{{down_idx_.data(), pairs}, {down_msg_.values.data(), pairs}}, c_.span(), t);
    } else {
      coll_.gather(std::span<const float>(w.data(), w.size()), c_.span(), t);
    }
    st.time_comm_s += seconds_since(t0);
    // xh <- xh - eta * (beta m + c);  s_i <- eta * delta_i.
    ops::dmsgd_apply(exec_, m_.data(), x.data(), c_.data(), static_cast<float>(config_.momentum), eta, n_);
    if (sparse_up_) {
      float* s = s_.data();
      const float* d = v_.data();
      for (std::uint64_t i = 0; i < n_; ++i) s[i] = eta * d[i];
    }
    // Accounting (ALGORITHMS.md 9): up = this rank's message, down = c as a server would broadcast it.
    if (sparse_up_) {
      st.elements_up_all = 2.0 * static_cast<double>(coll_.last_up_pairs_all());
    } else {
      st.elements_up_all = static_cast<double>(K * n_);
    }
    if (sparse_down_) {
      std::uint64_t pairs = 0;
      for (int r = 0; r < backend_.size(); ++r) pairs += coll_.last_down_pairs(r);
      st.elements_down = 2.0 * static_cast<double>(pairs);
      st.bytes_down = kPairBytes * pairs;
    } else {
      st.elements_down = static_cast<double>(n_);
      st.bytes_down = 4 * n_;
    }
    st.bytes_sent = coll_.last_up_bytes_sent() + coll_.last_down_bytes_sent();
    st.bytes_recv = coll_.last_up_bytes_recv() + coll_.last_down_bytes_recv();
    st.bytes_sent_down = coll_.last_down_bytes_sent();
    st.dense_elements = static_cast<double>((K + 1) * n_);
    st.rounds = 2;  // the upload and the download: two exchanges, the owners' compression between them
    return st;
  }

 private:
  bool sparse_up_, sparse_down_;
  coll::LiecAllreduce coll_;
  std::unique_ptr<compress::Compressor> up_, down_;
  std::uint64_t k_up_ = 0, k_down_ = 0;
  compress::Message up_msg_, down_msg_;
  device::Buffer<float> v_, s_, m_, c_;
  std::vector<float> es_;        // this owner's server error (its chunk)
  std::vector<Index> down_idx_;  // the owner's downward pairs, global indices
};

}  // namespace

std::unique_ptr<Optimizer> make_liec(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  const int me = b.rank();
  SPARCOL_CHECK_ARG(!e.on_device(), me, "liec runs on the host executor only");
  const auto up = compress::make_compressor(c.exchange.compressor);
  SPARCOL_CHECK_ARG(method_accepts_compressor("liec", c.exchange.compressor.name), me,
                    "liec uploads (index, value) pairs or the dense vector: --compressor must be none, topk, "
                    "topk-sampled, randk or sidco, not '" +
                        c.exchange.compressor.name + "'");
  SPARCOL_CHECK_ARG(c.liec_down.name == "none" || c.liec_down.name == "topk" || c.liec_down.name == "randk",
                    me,
                    "liec: --down-compressor must be none, topk or randk, got '" + c.liec_down.name + "'");
  SPARCOL_CHECK_ARG(c.liec_down.density > 0 && c.liec_down.density <= 1, me,
                    "liec: --down-density must be in (0, 1], got " + std::to_string(c.liec_down.density));
  SPARCOL_CHECK_ARG(
      !c.exchange.layerwise && c.exchange.min_compress_size == 0 && !c.exchange.compress_only_matrices, me,
      "liec compresses the flat vector: no layer-wise compression or dense exclusions");
  return std::make_unique<Liec>(b, l, c, e);
}

}  // namespace sparcol::optim::detail
