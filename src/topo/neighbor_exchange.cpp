#include "sparcol/topo/neighbor_exchange.hpp"

#include <string>

#include "sparcol/core/error.hpp"

namespace sparcol::topo {

NeighborExchange::NeighborExchange(comm::Backend& backend, const Graph& graph)
    : backend_(backend), graph_(graph), rank_(backend.rank()) {
  SPARCOL_CHECK_ARG(graph_.n == backend.size(), rank_,
                    "topology " + graph_.name + " has " + std::to_string(graph_.n) +
                        " nodes but the run has " + std::to_string(backend.size()) + " ranks");
  sends_.reserve(neighbors().size());
  recvs_.reserve(neighbors().size());
  same_.resize(neighbors().size());
}

void NeighborExchange::run(std::span<const Edge> edges, std::uint64_t step) {
  const auto nb = neighbors();
  SPARCOL_CHECK(edges.size() == nb.size(), ErrorCode::kInternal, rank_,
                "neighbour exchange with " + std::to_string(edges.size()) + " buffers for " +
                    std::to_string(nb.size()) + " neighbours");
  const std::uint64_t bytes = edges.empty() ? 0 : edges[0].bytes;
  for (const auto& e : edges)
    SPARCOL_CHECK(e.bytes == bytes, ErrorCode::kInternal, rank_,
                  "neighbour exchange: every edge of a call carries the same bytes (" +
                      std::to_string(bytes) + " and " + std::to_string(e.bytes) + ")");
  // A rank without neighbours (one rank) still takes a call number, like every rank of a collective.
  const int tag = agreement_.post(
      backend_, coll::CallSignature{coll::CollOp::kNeighborExchange, bytes, 0, 0, step, 0, 0}, nb);
  sends_.clear();
  recvs_.clear();
  last_sent_ = last_recv_ = 0;
  for (std::size_t k = 0; k < nb.size(); ++k) {
    sends_.push_back(backend_.isend(edges[k].send, edges[k].bytes, nb[k], tag));
    last_sent_ += edges[k].bytes;
  }
  agreement_.check();
  for (std::size_t k = 0; k < nb.size(); ++k) {
    recvs_.push_back(backend_.irecv(edges[k].recv, edges[k].bytes, nb[k], tag));
    last_recv_ += edges[k].bytes;
  }
  backend_.wait_all(recvs_);
  backend_.wait_all(sends_);
}

void NeighborExchange::run_same(const void* send, void* recv, std::size_t bytes, std::uint64_t step) {
  for (std::size_t k = 0; k < same_.size(); ++k)
    same_[k] = Edge{send, static_cast<std::byte*>(recv) + k * bytes, bytes};
  run(same_, step);
}

}  // namespace sparcol::topo
