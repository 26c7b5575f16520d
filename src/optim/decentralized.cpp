// The decentralized methods on a graph (ALGORITHMS.md 10.4, 10.5): each rank keeps its own model and
// exchanges with its neighbours only (topo/). The local optimizer of all of them is heavy ball with
// local momentum, m <- beta*m + g (coupled weight decay in g), and the step order is the authors'
// D-PSGD wrapper: the gradient at x_t, then communication of x_t, then the local update.
//
//   dpsgd:     x_{t+1} = sum_j w_ij x_j,t - eta*m_t  (x_i + sum_j w_ij (x_j - x_i), Metropolis weights)
//   relaysgd:  model variant:  x^{t+1/2} = x_t - eta*m_t;  x_{t+1} = RelaySum(x^{t+1/2}, fill x_0)
//              update variant: u = -eta*m_t;              x_{t+1} = x_t + RelaySum(u, fill 0)
//              over the tree of the topology (chain, binary-tree); double-binary-tree relays the first
//              half of the vector on the heap tree and the second half on the reversed one [P: the
//              code splits by parity; any fixed split gives every coordinate the same rule].
#include "decentralized.hpp"

#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/topo/relay.hpp"

namespace sparcol::optim::detail {

namespace ops = device::dispatch;

topo::Graph decentralized_graph(const OptimConfig& c, int ranks, int rank) {
  const std::string name = c.topology.empty() ? default_topology(c.method) : c.topology;
  return topo::make_topology(name, ranks, rank);
}

Decentralized::Decentralized(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
    : Optimizer(b, l, c, dense_exchange(c.exchange), e),
      graph_(decentralized_graph(c, b.size(), b.rank())),
      m_(make_buffer("momentum")) {}

void Decentralized::local_momentum(std::span<const float> x, std::span<const float> g, double lr) {
  // m <- beta*m + g + wd*x; the copy into the scratch is the fused op's second output.
  ops::dmsgd_local(exec_, m_.data(), scratch_.data(), gradient(g, x, lr),
                   static_cast<float>(config_.momentum), n_);
}

CommStats Decentralized::stats_of(std::uint64_t sent, std::uint64_t recv, std::uint64_t rounds) const {
  CommStats st;
  st.rounds = rounds;
  st.time_comm_s = comm_s_;
  st.bytes_sent = sent;
  st.bytes_recv = recv;
  st.bytes_up = sent;
  st.bytes_down = recv;
  st.elements_up = static_cast<double>(sent) / sizeof(float);
  st.elements_down = static_cast<double>(recv) / sizeof(float);
  // RCC (spec 9) is a parameter-server notion: not defined here (dense_elements 0, rcc() 0).
  return st;
}

namespace {

class Dpsgd final : public Decentralized {
 public:
  Dpsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Decentralized(b, l, c, e), nx_(b, graph_) {
    scratch_ = make_buffer("scratch");
    recv_.assign(exec_, static_cast<std::uint64_t>(nx_.degree()) * n_, "neighbour models");
  }

  std::vector<StateBuffer> state() override { return {{"momentum", m_.span()}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    local_momentum(x, g, lr);
    comm_s_ = 0;
    {
      CommTimer timer{comm_s_};
      gossip(x, t);
    }
    ops::apply_update(exec_, x.data(), m_.data(), static_cast<float>(lr), wd_outside(), n_);
    return stats_of(nx_.last_bytes_sent(), nx_.last_bytes_recv(), 1);
  }

 private:
  // x <- x + sum_k w_k (x_k - x): the differences first (x is unchanged while they are formed).
  void gossip(std::span<float> x, std::uint64_t t) {
    exec_.synchronize();
    nx_.run_same(x.data(), recv_.data(), n_ * sizeof(float), t);
    const auto me = static_cast<std::size_t>(backend_.rank());
    const std::size_t deg = graph_.neighbors[me].size();
    for (std::size_t k = 0; k < deg; ++k) {
      float* xk = recv_.data() + k * n_;
      ops::detached_point(exec_, xk, xk, x.data(), 1.0f, n_);
    }
    for (std::size_t k = 0; k < deg; ++k)
      ops::detached_point(exec_, x.data(), x.data(), recv_.data() + k * n_,
                          static_cast<float>(-graph_.weight[me][k]), n_);
  }

  topo::NeighborExchange nx_;
  device::Buffer<float> recv_;
};

class RelaySgd final : public Decentralized {
 public:
  RelaySgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Decentralized(b, l, c, e), update_(c.relay_variant == "update") {
    const int me = b.rank();
    SPARCOL_CHECK_ARG(c.relay_variant == "model" || c.relay_variant == "update", me,
                      "relaysgd: unknown variant '" + c.relay_variant + "' (valid: model, update)");
    scratch_ = make_buffer("update");
    // x_0 and, after it, a flag (1 once x_0 is taken), so that a restored state keeps its x_0.
    if (!update_) x0_.assign(exec_, n_ + 1, "initial model");
    if (graph_.name == "double-binary-tree") {
      const auto trees = topo::double_binary_trees(b.size());
      const std::uint64_t half = n_ / 2;
      relays_.push_back(std::make_unique<topo::RelaySum>(b, trees[0], e, half));
      relays_.push_back(std::make_unique<topo::RelaySum>(b, trees[1], e, n_ - half));
      offsets_ = {0, half};
    } else {
      SPARCOL_CHECK_ARG(
          topo::is_tree(graph_), me,
          "relaysgd relays over a spanning tree: --topology chain, binary-tree or double-binary-tree, "
          "got " +
              graph_.name + " (it has cycles)");
      relays_.push_back(std::make_unique<topo::RelaySum>(b, graph_, e, n_));
      offsets_ = {0};
    }
  }

  std::vector<StateBuffer> state() override {
    std::vector<StateBuffer> s{{"momentum", m_.span()}};
    if (!update_) s.push_back({"initial model", x0_.span()});  // n + 1: x_0 and its flag
    for (std::size_t i = 0; i < relays_.size(); ++i)
      s.push_back({"relay messages " + std::to_string(i), relays_[i]->state()});
    return s;
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    // x_0: the model of the first step (common to all ranks), kept as the fill of the model variant.
    if (!update_ && !have_x0_) {
      float flag = 0;
      exec_.download(&flag, x0_.data() + n_, sizeof(float));
      if (flag == 0) {
        exec_.copy(x0_.data(), x.data(), n_ * sizeof(float));
        flag = 1;
        exec_.upload(x0_.data() + n_, &flag, sizeof(float));
      }
    }
    have_x0_ = true;
    local_momentum(x, g, lr);
    const float wd = wd_outside();
    std::uint64_t sent = 0, recv = 0;
    comm_s_ = 0;
    if (update_) {
      // u = -eta*(m + wd*x), in the scratch (it holds a copy of m).
      exec_.zero(scratch_.data(), n_ * sizeof(float));
      ops::apply_update(exec_, scratch_.data(), m_.data(), static_cast<float>(lr), 0.0f, n_);
      if (wd != 0.0f)
        ops::detached_point(exec_, scratch_.data(), scratch_.data(), x.data(), static_cast<float>(lr) * wd,
                            n_);
      for (std::size_t i = 0; i < relays_.size(); ++i) {
        float* u = scratch_.data() + offsets_[i];
        CommTimer timer{comm_s_};
        relays_[i]->run(u, nullptr, u, t);
        sent += relays_[i]->last_bytes_sent();
        recv += relays_[i]->last_bytes_recv();
      }
      ops::add_into(exec_, x.data(), scratch_.data(), n_);
    } else {
      ops::apply_update(exec_, x.data(), m_.data(), static_cast<float>(lr), wd, n_);
      for (std::size_t i = 0; i < relays_.size(); ++i) {
        float* xi = x.data() + offsets_[i];
        CommTimer timer{comm_s_};
        relays_[i]->run(xi, x0_.data() + offsets_[i], xi, t);
        sent += relays_[i]->last_bytes_sent();
        recv += relays_[i]->last_bytes_recv();
      }
    }
    return stats_of(sent, recv, relays_.size());
  }

 private:
  bool update_;
  bool have_x0_ = false;
  device::Buffer<float> x0_;
  std::vector<std::unique_ptr<topo::RelaySum>> relays_;
  std::vector<std::uint64_t> offsets_;
};

}  // namespace

std::unique_ptr<Optimizer> make_dpsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  return std::make_unique<Dpsgd>(b, l, c, e);
}

std::unique_ptr<Optimizer> make_relaysgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  return std::make_unique<RelaySgd>(b, l, c, e);
}

}  // namespace sparcol::optim::detail
