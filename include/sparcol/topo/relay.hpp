// RelaySum (ALGORITHMS.md 10.5): exact uniform averaging with delays over a spanning tree.
//
// Every directed tree edge i -> j carries a message m_{i->j} (len floats) and a count c_{i->j}, both 0
// before the first call. A call with this rank's vector v_i (and a fill vector f, or none = 0):
//   m_{i->j} = v_i + sum_{l in N(i), l != j} m_{l->i}(previous call),
//   c_{i->j} = 1 + sum_{l != j} c_{l->i}(previous call);
// the messages just sent to i arrive, and
//   out_i = ( v_i + sum_j m_{j->i} + (n - 1 - sum_j c_{j->i}) * f ) / n.
// A worker at hop distance h enters with delay h - 1: after diameter(tree) calls with fixed vectors
// every out_i is the exact mean (to rounding); before that, the workers not yet heard of are filled
// with f (RelaySGD's x_0, or 0 for the update variant).
//
// Wire: the count travels as the float after the message's len floats (exact below 2^24 ranks), so
// one message of (len + 1) * 4 bytes per tree edge and direction per call, through a NeighborExchange
// (fingerprint-checked). Buffers live in the executor's memory; the received messages (with their
// counts) are the state a checkpoint keeps (state()).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sparcol/comm/backend.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/topo/graph.hpp"
#include "sparcol/topo/neighbor_exchange.hpp"

namespace sparcol::topo {

class RelaySum {
 public:
  // tree: a spanning tree on backend.size() nodes (Error(kInvalidArgument) otherwise).
  RelaySum(comm::Backend& backend, const Graph& tree, device::Exec& exec, std::uint64_t len);

  // out may alias mine; fill may be nullptr (0). All in the executor's memory, len floats each.
  void run(const float* mine, const float* fill, float* out, std::uint64_t step = 0);

  // The received messages and counts (degree * (len + 1) floats), for checkpoints.
  std::span<float> state() const { return in_.span(); }
  std::uint64_t last_bytes_sent() const { return nx_.last_bytes_sent(); }
  std::uint64_t last_bytes_recv() const { return nx_.last_bytes_recv(); }
  // The count sum of the last call: how many other workers out_i covers.
  std::uint64_t last_heard() const { return heard_; }
  const Graph& tree() const { return nx_.graph(); }

 private:
  NeighborExchange nx_;
  device::Exec& exec_;
  std::uint64_t len_;
  int n_;
  device::Buffer<float> in_, out_;  // per neighbour k: at k * (len + 1)
  std::vector<float> counts_;       // host copies of the received counts
  std::vector<Edge> edges_;
  std::uint64_t heard_ = 0;
};

}  // namespace sparcol::topo
