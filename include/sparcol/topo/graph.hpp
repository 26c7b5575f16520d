// Communication graphs for the decentralized methods (ALGORITHMS.md 10.4-10.6): which ranks talk to
// which, with what mixing weights, and the spanning trees RelaySGD relays over.
//
// Topologies (make_topology(name, n); n = number of ranks):
//   ring               i ~ i +- 1 (mod n); n = 2 is one edge, n = 1 no edge
//   torus              the 2-D torus r x c, n = r*c, 2 <= r <= c, r the largest divisor of n that is at
//                      most sqrt(n); node (a, b) = a*c + b ~ (a +- 1, b), (a, b +- 1) (mod r, c). A rank
//                      count that is no such product (1, 2, 3, a prime) is an error naming it
//   exponential        i ~ i +- 2^k (mod n) for every 2^k < n (the one-peer-per-power graph, undirected)
//   complete           i ~ j for every j != i
//   chain              i ~ i +- 1 (a path, no wrap-around)
//   binary-tree        heap order on the labels: i ~ floor(i/2) for i >= 2, and 0 ~ 1 (10.5)
//   double-binary-tree the union of binary-tree and the same tree on the reversed labels n-1-i; for
//                      RelaySGD the two trees are kept apart (double_binary_trees)
// Neighbour lists are sorted ascending and hold no duplicate and not the node itself.
//
// Mixing weights (gossip, D-PSGD, PowerGossip) [P]: Metropolis-Hastings,
// w_ij = 1/(max(deg_i, deg_j) + 1) for neighbours, w_ii = 1 - sum_j w_ij. On a regular graph (ring,
// torus, exponential, complete) this is the uniform 1/(deg+1) of the authors' code (1/3 on a ring);
// on the irregular ones (chain, trees) it keeps W symmetric and doubly stochastic, so gossip preserves
// the mean of the models, which 1/(deg_i+1) per row would not.
//
// Spectral gap: 1 - max(|lambda_2(W)|, |lambda_n(W)|) (1 for the complete graph, 0 for a disconnected
// one), from a Jacobi eigen-decomposition of the dense n x n matrix (n is a rank count).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparcol::topo {

struct Graph {
  std::string name;
  int n = 0;
  std::vector<std::vector<int>> neighbors;  // neighbors[i]: ascending, without i
  std::vector<std::vector<double>> weight;  // weight[i][k]: w_{i, neighbors[i][k]}
  std::vector<double> self_weight;          // w_ii

  int degree(int i) const { return static_cast<int>(neighbors[static_cast<std::size_t>(i)].size()); }
  // Position of j in neighbors[i], or -1.
  int index_of(int i, int j) const;
  std::uint64_t edges() const;  // undirected edges
};

// The names make_topology accepts, in documentation order.
const std::vector<std::string>& topology_names();

// Builds topology `name` on n ranks with Metropolis-Hastings weights; throws Error(kInvalidArgument)
// naming the topology and n when the name is unknown, n < 1, or the topology does not fit n (torus).
// rank: for the error message (-1 when not known).
Graph make_topology(const std::string& name, int n, int rank = -1);

// A graph from undirected edge lists (duplicates and self-loops are dropped), weights as above.
Graph graph_from_edges(const std::string& name, int n, const std::vector<std::pair<int, int>>& edges);

// The two trees of the double binary trees (10.5): the heap tree and its label-reversed copy.
std::vector<Graph> double_binary_trees(int n);

// W as a dense row-major n x n matrix.
std::vector<double> mixing_matrix(const Graph& g);

// Eigenvalues (ascending) and, if vectors != nullptr, the orthonormal eigenvectors (column k of the
// row-major n x n matrix is the vector of eigenvalue k) of a symmetric n x n matrix (cyclic Jacobi).
std::vector<double> symmetric_eigen(std::vector<double> a, int n, std::vector<double>* vectors = nullptr);

double spectral_gap(const Graph& g);

// Whether the graph is connected, and whether it is a tree (connected, n - 1 edges).
bool connected(const Graph& g);
bool is_tree(const Graph& g);
// The largest hop distance between two nodes (-1 when disconnected).
int diameter(const Graph& g);

// "ring on 8 ranks: degree 2, 8 edges, spectral gap 0.1953, diameter 4"
std::string describe(const Graph& g);

}  // namespace sparcol::topo
