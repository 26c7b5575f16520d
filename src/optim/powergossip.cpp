// PowerGossip (ALGORITHMS.md 10.4): gossip of rank-r projections of the model differences.
//
// For every edge (i, j) and every tensor with dims > 1, viewed as a matrix X (rows x cols, row-major;
// rows = TensorSpec::rows, or the most square factorisation of its size when the layout does not
// give it [P]), both ends keep the same p (rows x r') and q (cols x r'), r' = min(r, rows, cols), drawn
// N(0, 1) from an RNG seeded by (seed, min(i, j), max(i, j), tensor) and reused across steps (warm
// start). Tensors with dims <= 1 are gossiped plainly with the same weights, once per step.
//
// Step: m <- beta*m + g (local momentum); gossip(x) with `power_iters` power iterations; x <- x - eta*m.
// A counter `it` advances by one per power iteration; the first step's gossip (it = 0) is skipped,
// as in the code (the models are still equal). Iteration it, on every edge and matrix, with
// (L, R) = (p, q) for even it and (q, p) for odd it:
//   orthonormalise L (Gram-Schmidt over its columns, each divided by its norm + 1e-8);
//   send X_i^T p (even; cols x r' floats) or X_i q (odd; rows x r'), receive the neighbour's;
//   R = message(hi) - message(lo) (hi, lo: the larger and smaller rank), bitwise equal at both ends;
//   X_i <- X_i - gamma * w_ij * s * p q^T,  s = +1 if i is hi, -1 otherwise,
// i.e. X_i moves by gamma * w_ij times the rank-r' projection of X_j - X_i: the sum over the two ends
// is unchanged, so gossip preserves the mean of the models. All messages of an iteration are made
// from the models before its updates. With r' = rows = cols every projection is the identity, and one
// iteration with gamma = 1 is D-PSGD's gossip step (to rounding).
//
// Host executor only (unsupported_reason): the per-edge matrix products have no kernel.
#include <cmath>
#include <string>
#include <vector>

#include "decentralized.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

struct Mat {
  std::uint64_t off = 0, rows = 0, cols = 0, r = 0;
  std::uint64_t pq_off = 0;  // p at pq_off (r columns of rows), q after it (r columns of cols)
};

std::uint64_t square_rows(std::uint64_t size) {
  std::uint64_t best = 1;
  for (std::uint64_t d = 1; d * d <= size; ++d)
    if (size % d == 0) best = d;
  return best;
}

// Gram-Schmidt over the r columns of length a (column c at v + c*a), eps 1e-8 as in the code. Done in
// double with a second pass of projections per column ("twice is enough"), then rounded to float: in
// float, one pass loses orthogonality in proportion to the columns' condition number, and the
// differences of nearly equal models are ill-conditioned, so a full-rank projection p p^T drifted
// from the identity by 1e-5 and more. The rule is the code's; only its rounding is smaller.
void orthonormalize(float* v, std::uint64_t a, std::uint64_t r, std::vector<double>& work) {
  work.assign(v, v + a * r);
  for (std::uint64_t c = 0; c < r; ++c) {
    double* vc = work.data() + c * a;
    for (int pass = 0; pass < 2; ++pass) {
      for (std::uint64_t d = 0; d < c; ++d) {
        const double* vd = work.data() + d * a;
        double dot = 0;
        for (std::uint64_t i = 0; i < a; ++i) dot += vc[i] * vd[i];
        for (std::uint64_t i = 0; i < a; ++i) vc[i] -= dot * vd[i];
      }
    }
    double nrm = 0;
    for (std::uint64_t i = 0; i < a; ++i) nrm += vc[i] * vc[i];
    const double inv = 1.0 / (std::sqrt(nrm) + 1e-8);
    for (std::uint64_t i = 0; i < a; ++i) vc[i] *= inv;
  }
  for (std::uint64_t i = 0; i < a * r; ++i) v[i] = static_cast<float>(work[i]);
}

class PowerGossip final : public Decentralized {
 public:
  PowerGossip(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Decentralized(b, l, c, e), nx_(b, graph_) {
    const int me = b.rank();
    scratch_ = make_buffer("scratch");
    std::uint64_t pq = 0;
    for (const auto& t : l.tensors) {
      if (t.dims <= 1 || t.size == 0) {
        vecs_.push_back({t.offset, t.size});
        vec_total_ += t.size;
        continue;
      }
      Mat m;
      m.off = t.offset;
      m.rows = t.rows > 0 ? t.rows : square_rows(t.size);
      SPARCOL_CHECK_ARG(t.size % m.rows == 0, me,
                        "powergossip: tensor " + t.name + " has " + std::to_string(t.size) +
                            " elements, not a multiple of "
                            "its " +
                            std::to_string(m.rows) + " rows");
      m.cols = t.size / m.rows;
      m.r = std::min<std::uint64_t>(static_cast<std::uint64_t>(c.low_rank), std::min(m.rows, m.cols));
      m.pq_off = pq;
      pq += m.r * (m.rows + m.cols);
      even_len_ += m.r * m.cols;
      odd_len_ += m.r * m.rows;
      mats_.push_back(m);
    }
    const auto deg = static_cast<std::size_t>(nx_.degree());
    const std::uint64_t msg = std::max(even_len_, odd_len_) + vec_total_;
    pq_.resize(deg);
    send_.assign(deg, std::vector<float>(msg));
    recv_.assign(deg, std::vector<float>(msg));
    edges_.resize(deg);
    const auto nb = nx_.neighbors();
    for (std::size_t k = 0; k < deg; ++k) {
      pq_[k].assign(exec_, pq, "powergossip p, q");
      const int lo = std::min(me, nb[k]), hi = std::max(me, nb[k]);
      for (std::size_t i = 0; i < mats_.size(); ++i) {
        CounterRng rng(c.exchange.seed, static_cast<std::uint32_t>(lo * b.size() + hi),
                       static_cast<std::uint32_t>(i));
        float* v = pq_[k].data() + mats_[i].pq_off;
        for (std::uint64_t j = 0; j < mats_[i].r * (mats_[i].rows + mats_[i].cols); ++j)
          v[j] = static_cast<float>(rng.normal());
      }
    }
    counter_.assign(exec_, 1, "powergossip iteration counter");
  }

  std::vector<StateBuffer> state() override {
    std::vector<StateBuffer> s{{"momentum", m_.span()}, {"iteration counter", counter_.span()}};
    for (std::size_t k = 0; k < pq_.size(); ++k)
      s.push_back({"p, q of edge " + std::to_string(k), pq_[k].span()});
    return s;
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    local_momentum(x, g, lr);
    std::uint64_t sent = 0, recv = 0, rounds = 0;
    comm_s_ = 0;
    // The counter lives in a state buffer (a float, exact below 2^24 iterations) so a resume continues it.
    auto it = static_cast<std::uint64_t>(counter_.data()[0]);
    if (it == 0) {
      it = static_cast<std::uint64_t>(config_.power_iters);
    } else {
      for (int p = 0; p < config_.power_iters; ++p, ++it) {
        iteration(x.data(), it, p == 0, t);
        sent += nx_.last_bytes_sent();
        recv += nx_.last_bytes_recv();
        ++rounds;
      }
    }
    counter_.data()[0] = static_cast<float>(it);
    ops::apply_update(exec_, x.data(), m_.data(), static_cast<float>(lr), wd_outside(), n_);
    return stats_of(sent, recv, rounds);
  }

 private:
  void iteration(float* x, std::uint64_t it, bool with_vectors, std::uint64_t t) {
    const bool odd = (it % 2) == 1;
    const int me = backend_.rank();
    const auto nb = nx_.neighbors();
    const std::size_t deg = nb.size();
    const std::uint64_t len = (odd ? odd_len_ : even_len_) + (with_vectors ? vec_total_ : 0);
    for (std::size_t k = 0; k < deg; ++k) {
      float* out = send_[k].data();
      for (const auto& m : mats_) {
        float* p = pq_[k].data() + m.pq_off;
        float* q = p + m.r * m.rows;
        const float* xm = x + m.off;
        if (!odd) {
          orthonormalize(p, m.rows, m.r, gs_work_);
          for (std::uint64_t c = 0; c < m.r; ++c) {  // (X^T p)_c[b] = sum_a X[a, b] p_c[a]
            float* o = out + c * m.cols;
            for (std::uint64_t b = 0; b < m.cols; ++b) o[b] = 0;
            for (std::uint64_t a = 0; a < m.rows; ++a) {
              const float pa = p[c * m.rows + a];
              const float* row = xm + a * m.cols;
              for (std::uint64_t b = 0; b < m.cols; ++b) o[b] += row[b] * pa;
            }
          }
          out += m.r * m.cols;
        } else {
          orthonormalize(q, m.cols, m.r, gs_work_);
          for (std::uint64_t c = 0; c < m.r; ++c) {  // (X q)_c[a] = sum_b X[a, b] q_c[b]
            float* o = out + c * m.rows;
            const float* qc = q + c * m.cols;
            for (std::uint64_t a = 0; a < m.rows; ++a) {
              const float* row = xm + a * m.cols;
              double s = 0;
              for (std::uint64_t b = 0; b < m.cols; ++b) s += static_cast<double>(row[b]) * qc[b];
              o[a] = static_cast<float>(s);
            }
          }
          out += m.r * m.rows;
        }
      }
      if (with_vectors) {
        for (const auto& [off, size] : vecs_) {
          for (std::uint64_t i = 0; i < size; ++i) out[i] = x[off + i];
          out += size;
        }
      }
      edges_[k] = topo::Edge{send_[k].data(), recv_[k].data(), len * sizeof(float)};
    }
    {
      CommTimer timer{comm_s_};
      nx_.run(edges_, t);
    }
    const auto gamma = static_cast<float>(config_.diffusion_rate);
    for (std::size_t k = 0; k < deg; ++k) {
      const bool hi = me > nb[k];
      const auto w = static_cast<float>(graph_.weight[static_cast<std::size_t>(me)][k]);
      const float* mine = send_[k].data();
      const float* theirs = recv_[k].data();
      for (const auto& m : mats_) {
        float* p = pq_[k].data() + m.pq_off;
        float* q = p + m.r * m.rows;
        float* r = odd ? p : q;  // the factor this iteration computes
        const std::uint64_t n = m.r * (odd ? m.rows : m.cols);
        for (std::uint64_t i = 0; i < n; ++i) r[i] = hi ? mine[i] - theirs[i] : theirs[i] - mine[i];
        mine += n;
        theirs += n;
        // X <- X - gamma*w*s * p q^T
        const float f = (hi ? 1.0f : -1.0f) * gamma * w;
        float* xm = x + m.off;
        for (std::uint64_t a = 0; a < m.rows; ++a) {
          float* row = xm + a * m.cols;
          for (std::uint64_t c = 0; c < m.r; ++c) {
            const float pa = f * p[c * m.rows + a];
            const float* qc = q + c * m.cols;
            for (std::uint64_t b = 0; b < m.cols; ++b) row[b] -= pa * qc[b];
          }
        }
      }
      if (with_vectors) {
        // Plain gossip from the values sent (the models before this iteration's updates).
        for (const auto& [off, size] : vecs_) {
          for (std::uint64_t i = 0; i < size; ++i) x[off + i] += w * (theirs[i] - mine[i]);
          mine += size;
          theirs += size;
        }
      }
    }
  }

  topo::NeighborExchange nx_;
  std::vector<Mat> mats_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> vecs_;  // (offset, size) of the dims <= 1 tensors
  std::uint64_t vec_total_ = 0, even_len_ = 0, odd_len_ = 0;
  std::vector<device::Buffer<float>> pq_;  // per neighbour
  std::vector<std::vector<float>> send_, recv_;
  std::vector<topo::Edge> edges_;
  std::vector<double> gs_work_;  // orthonormalize's double copy of p or q
  device::Buffer<float> counter_;
};

}  // namespace

std::unique_ptr<Optimizer> make_powergossip(comm::Backend& b, const Layout& l, const OptimConfig& c,
                                            Exec& e) {
  return std::make_unique<PowerGossip>(b, l, c, e);
}

}  // namespace sparcol::optim::detail
