// The neighbour exchange's exactness check, shared by the loopback and the mpirun tests: every rank
// sends each neighbour a message of its own (a function of seed, sender, receiver and position) and
// checks, element by element, that what arrives from neighbour j is what j made for it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparcol/topo/neighbor_exchange.hpp"

namespace sparcol::test {

inline float edge_value(std::uint64_t seed, int from, int to, std::size_t i) {
  std::uint64_t z =
      seed ^ (static_cast<std::uint64_t>(from) << 40) ^ (static_cast<std::uint64_t>(to) << 20) ^ i;
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<std::int64_t>(z % 2000001) - 1000000) / 1024.0f;
}

struct NeighborCheck {
  std::uint64_t wrong = 0;
  std::string first;
};

// Runs `calls` exchanges of `count` floats per edge (per-edge messages, then one run_same) on the
// graph; returns the wrong elements of this rank.
inline NeighborCheck check_neighbor_exchange(comm::Backend& b, const topo::Graph& g, std::size_t count,
                                             std::uint64_t seed, int calls = 2) {
  topo::NeighborExchange nx(b, g);
  const int me = b.rank();
  const auto nb = nx.neighbors();
  NeighborCheck res;
  auto note = [&](const std::string& what) {
    if (res.wrong++ == 0) res.first = "rank " + std::to_string(me) + ": " + what;
  };
  for (int c = 0; c < calls; ++c) {
    const std::uint64_t s = seed + static_cast<std::uint64_t>(c);
    std::vector<std::vector<float>> out(nb.size(), std::vector<float>(count)),
        in(nb.size(), std::vector<float>(count, -1e30f));
    std::vector<topo::Edge> edges(nb.size());
    for (std::size_t k = 0; k < nb.size(); ++k) {
      for (std::size_t i = 0; i < count; ++i) out[k][i] = edge_value(s, me, nb[k], i);
      edges[k] = topo::Edge{out[k].data(), in[k].data(), count * sizeof(float)};
    }
    nx.run(edges, static_cast<std::uint64_t>(c));
    for (std::size_t k = 0; k < nb.size(); ++k)
      for (std::size_t i = 0; i < count; ++i)
        if (in[k][i] != edge_value(s, nb[k], me, i))
          note("from " + std::to_string(nb[k]) + " element " + std::to_string(i) + " of " + g.name);
    if (nx.last_bytes_sent() != nb.size() * count * sizeof(float))
      note("bytes sent " + std::to_string(nx.last_bytes_sent()));
  }
  // The same buffer to everyone: neighbour k's copy of its own vector at k * count.
  std::vector<float> mine(count), all(nb.size() * count, -1e30f);
  for (std::size_t i = 0; i < count; ++i) mine[i] = edge_value(seed, me, -1, i);
  nx.run_same(mine.data(), all.data(), count * sizeof(float), 99);
  for (std::size_t k = 0; k < nb.size(); ++k)
    for (std::size_t i = 0; i < count; ++i)
      if (all[k * count + i] != edge_value(seed, nb[k], -1, i))
        note("run_same from " + std::to_string(nb[k]) + " element " + std::to_string(i) + " of " + g.name);
  return res;
}

// The topologies that fit n ranks (torus only where n = r x c, r, c >= 2).
inline std::vector<std::string> fitting_topologies(int n) {
  std::vector<std::string> out;
  for (const auto& t : topo::topology_names()) {
    if (t == "torus" && !(n == 4 || n == 6 || n == 8 || n == 9 || n == 10 || n == 12 || n == 16)) continue;
    out.push_back(t);
  }
  return out;
}

}  // namespace sparcol::test
