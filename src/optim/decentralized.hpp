// Internal: the common part of the decentralized methods (decentralized.cpp, powergossip.cpp).
#pragma once

#include <chrono>

#include "methods.hpp"
#include "sparcol/topo/graph.hpp"
#include "sparcol/topo/neighbor_exchange.hpp"

namespace sparcol::optim::detail {

// The graph of config.topology (or the method's default) on `ranks` ranks.
topo::Graph decentralized_graph(const OptimConfig& c, int ranks, int rank);

class Decentralized : public Optimizer {
 public:
  bool per_worker_models() const override { return true; }

 protected:
  Decentralized(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e);
  // m <- beta*m + g + wd*z (the local momentum of every decentralized method); scratch_ gets a copy.
  void local_momentum(std::span<const float> x, std::span<const float> g, double lr);
  // rounds: the neighbour exchanges of the step.
  CommStats stats_of(std::uint64_t sent, std::uint64_t recv, std::uint64_t rounds) const;
  // Wall time of the step's neighbour exchanges and the mixing that consumes them (CommStats::time_comm_s).
  double comm_s_ = 0;
  struct CommTimer {
    double& total;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    ~CommTimer() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  };

  topo::Graph graph_;
  device::Buffer<float> m_;
  device::Buffer<float> scratch_;
};

}  // namespace sparcol::optim::detail
