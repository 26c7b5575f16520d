// Neighbour exchange: every rank sends one buffer to each of its graph neighbours and receives one
// from each, over the Backend's isend/irecv (no global round: the decentralized methods of
// ALGORITHMS.md 10.4-10.5 are built on it).
//
// Protocol of one call: the call's fingerprint (coll::PeerAgreement: which call, bytes per edge, step,
// call number) goes to every neighbour together with the data (sent under the call's own data tag);
// the fingerprints of the neighbours are checked before any data is received, so a neighbour in
// another call is Error(kMismatch) naming both calls and that neighbour, not a wrong result; then the
// data are received. One round of latency; the deadline of every wait is Backend::timeout() (a dead
// neighbour is Error(kTimeout) naming it).
//
// Sizes: every edge of a call carries the same number of bytes in both directions (what every method
// here sends), and that number is the fingerprint's count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sparcol/coll/agree.hpp"
#include "sparcol/comm/backend.hpp"
#include "sparcol/topo/graph.hpp"

namespace sparcol::topo {

// One neighbour's part of a call: what goes to it and where its message lands.
struct Edge {
  const void* send = nullptr;
  void* recv = nullptr;
  std::size_t bytes = 0;
};

class NeighborExchange {
 public:
  // The graph must have backend.size() nodes (Error(kInvalidArgument) naming both otherwise).
  NeighborExchange(comm::Backend& backend, const Graph& graph);

  const Graph& graph() const { return graph_; }
  std::span<const int> neighbors() const { return graph_.neighbors[static_cast<std::size_t>(rank_)]; }
  int degree() const { return static_cast<int>(neighbors().size()); }

  // edges[k] belongs to neighbors()[k]. Every rank calls it (ranks without neighbours return at once
  // after counting the call). Send buffers must not change and receive buffers not be read until it
  // returns.
  void run(std::span<const Edge> edges, std::uint64_t step = 0);
  // The same buffer to every neighbour; recv holds degree() * bytes, neighbour k's at k * bytes.
  void run_same(const void* send, void* recv, std::size_t bytes, std::uint64_t step = 0);

  // Payload bytes of the last call (fingerprints not counted, as in the collectives).
  std::uint64_t last_bytes_sent() const { return last_sent_; }
  std::uint64_t last_bytes_recv() const { return last_recv_; }

 private:
  comm::Backend& backend_;
  Graph graph_;
  int rank_;
  coll::PeerAgreement agreement_;
  std::vector<comm::Request> sends_, recvs_;
  std::vector<Edge> same_;
  std::uint64_t last_sent_ = 0, last_recv_ = 0;
};

}  // namespace sparcol::topo
