#include "sparcol/topo/graph.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <queue>
#include <set>
#include <utility>

#include "sparcol/core/error.hpp"

namespace sparcol::topo {

int Graph::index_of(int i, int j) const {
  const auto& nb = neighbors[static_cast<std::size_t>(i)];
  const auto it = std::lower_bound(nb.begin(), nb.end(), j);
  return it != nb.end() && *it == j ? static_cast<int>(it - nb.begin()) : -1;
}

std::uint64_t Graph::edges() const {
  std::uint64_t e = 0;
  for (const auto& nb : neighbors) e += nb.size();
  return e / 2;
}

const std::vector<std::string>& topology_names() {
  static const std::vector<std::string> names{"ring",  "torus",       "exponential",       "complete",
                                              "chain", "binary-tree", "double-binary-tree"};
  return names;
}

Graph graph_from_edges(const std::string& name, int n, const std::vector<std::pair<int, int>>& edges) {
  SPARCOL_CHECK_ARG(n >= 1, -1, "topology " + name + ": needs at least 1 rank, got " + std::to_string(n));
  std::vector<std::set<int>> adj(static_cast<std::size_t>(n));
  for (auto [a, b] : edges) {
    SPARCOL_CHECK(a >= 0 && a < n && b >= 0 && b < n, ErrorCode::kInternal, -1,
                  "topology " + name + ": edge (" + std::to_string(a) + ", " + std::to_string(b) +
                      ") outside 0.." + std::to_string(n - 1));
    if (a == b) continue;
    adj[static_cast<std::size_t>(a)].insert(b);
    adj[static_cast<std::size_t>(b)].insert(a);
  }
  Graph g;
  g.name = name;
  g.n = n;
  g.neighbors.resize(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    g.neighbors[static_cast<std::size_t>(i)].assign(adj[static_cast<std::size_t>(i)].begin(),
                                                    adj[static_cast<std::size_t>(i)].end());
  g.weight.resize(static_cast<std::size_t>(n));
  g.self_weight.resize(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto ui = static_cast<std::size_t>(i);
    double sum = 0;
    for (int j : g.neighbors[ui]) {
      const double w = 1.0 / (std::max(g.degree(i), g.degree(j)) + 1);
      g.weight[ui].push_back(w);
      sum += w;
    }
    g.self_weight[ui] = 1.0 - sum;
  }
  return g;
}

namespace {

std::vector<std::pair<int, int>> heap_tree_edges(int n, bool reversed) {
  std::vector<std::pair<int, int>> e;
  auto label = [&](int i) { return reversed ? n - 1 - i : i; };
  if (n >= 2) e.emplace_back(label(0), label(1));
  for (int i = 2; i < n; ++i) e.emplace_back(label(i), label(i / 2));
  return e;
}

}  // namespace

std::vector<Graph> double_binary_trees(int n) {
  return {graph_from_edges("binary-tree", n, heap_tree_edges(n, false)),
          graph_from_edges("binary-tree-reversed", n, heap_tree_edges(n, true))};
}

Graph make_topology(const std::string& name, int n, int rank) {
  const auto& names = topology_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const auto& s : names) list += (list.empty() ? "" : ", ") + s;
    throw Error(ErrorCode::kInvalidArgument, rank, "unknown topology '" + name + "' (valid: " + list + ")");
  }
  SPARCOL_CHECK_ARG(n >= 1, rank, "topology " + name + " needs at least 1 rank, got " + std::to_string(n));
  std::vector<std::pair<int, int>> e;
  if (name == "ring") {
    for (int i = 0; i < n; ++i) e.emplace_back(i, (i + 1) % n);
  } else if (name == "chain") {
    for (int i = 0; i + 1 < n; ++i) e.emplace_back(i, i + 1);
  } else if (name == "complete") {
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) e.emplace_back(i, j);
  } else if (name == "exponential") {
    for (int i = 0; i < n; ++i)
      for (int s = 1; s < n; s *= 2) e.emplace_back(i, (i + s) % n);
  } else if (name == "torus") {
    int r = 0;
    for (int d = 2; d * d <= n; ++d)
      if (n % d == 0) r = d;
    SPARCOL_CHECK_ARG(r >= 2, rank,
                      "topology torus does not fit " + std::to_string(n) +
                          " ranks: it needs a rank count r x c with 2 <= r <= c (4, 6, 8, 9, ...), and " +
                          std::to_string(n) + (n < 4 ? " is too small" : " is prime"));
    const int c = n / r;
    for (int a = 0; a < r; ++a)
      for (int b = 0; b < c; ++b) {
        e.emplace_back(a * c + b, ((a + 1) % r) * c + b);
        e.emplace_back(a * c + b, a * c + (b + 1) % c);
      }
  } else if (name == "binary-tree") {
    e = heap_tree_edges(n, false);
  } else {  // double-binary-tree
    e = heap_tree_edges(n, false);
    const auto second = heap_tree_edges(n, true);
    e.insert(e.end(), second.begin(), second.end());
  }
  return graph_from_edges(name, n, e);
}

std::vector<double> mixing_matrix(const Graph& g) {
  const auto n = static_cast<std::size_t>(g.n);
  std::vector<double> w(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    w[i * n + i] = g.self_weight[i];
    for (std::size_t k = 0; k < g.neighbors[i].size(); ++k)
      w[i * n + static_cast<std::size_t>(g.neighbors[i][k])] = g.weight[i][k];
  }
  return w;
}

std::vector<double> symmetric_eigen(std::vector<double> a, int n_int, std::vector<double>* vectors) {
  const auto n = static_cast<std::size_t>(n_int);
  std::vector<double> v(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) v[i * n + i] = 1.0;
  auto at = [&](std::size_t i, std::size_t j) -> double& { return a[i * n + j]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i + 1; j < n; ++j) off += at(i, j) * at(i, j);
    if (off < 1e-30) break;
    for (std::size_t p = 0; p < n; ++p) {
      for (std::size_t q = p + 1; q < n; ++q) {
        if (std::abs(at(p, q)) < 1e-300) continue;
        // The rotation that zeroes a_pq (Golub & Van Loan 8.5.2).
        const double theta = (at(q, q) - at(p, p)) / (2 * at(p, q));
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1);
        const double s = t * c;
        for (std::size_t k = 0; k < n; ++k) {  // columns p, q
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - s * akq;
          at(k, q) = s * akp + c * akq;
        }
        for (std::size_t k = 0; k < n; ++k) {  // rows p, q
          const double apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - s * aqk;
          at(q, k) = s * apk + c * aqk;
        }
        for (std::size_t k = 0; k < n; ++k) {
          const double vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return at(x, x) < at(y, y); });
  std::vector<double> ev(n);
  for (std::size_t k = 0; k < n; ++k) ev[k] = at(order[k], order[k]);
  if (vectors != nullptr) {
    vectors->assign(n * n, 0.0);
    for (std::size_t k = 0; k < n; ++k)
      for (std::size_t i = 0; i < n; ++i) (*vectors)[i * n + k] = v[i * n + order[k]];
  }
  return ev;
}

double spectral_gap(const Graph& g) {
  if (g.n == 1) return 1.0;
  const auto ev = symmetric_eigen(mixing_matrix(g), g.n);
  // ev ascending: lambda_1(W) = 1 is the last; the second largest modulus is max(|ev[n-2]|, |ev[0]|).
  const double second = std::max(std::abs(ev[ev.size() - 2]), std::abs(ev[0]));
  return std::max(0.0, 1.0 - second);
}

namespace {
std::vector<int> hops_from(const Graph& g, int s) {
  std::vector<int> d(static_cast<std::size_t>(g.n), -1);
  std::queue<int> q;
  d[static_cast<std::size_t>(s)] = 0;
  q.push(s);
  while (!q.empty()) {
    const int u = q.front();
    q.pop();
    for (int v : g.neighbors[static_cast<std::size_t>(u)]) {
      if (d[static_cast<std::size_t>(v)] < 0) {
        d[static_cast<std::size_t>(v)] = d[static_cast<std::size_t>(u)] + 1;
        q.push(v);
      }
    }
  }
  return d;
}
}  // namespace

bool connected(const Graph& g) {
  const auto d = hops_from(g, 0);
  return std::none_of(d.begin(), d.end(), [](int x) { return x < 0; });
}

bool is_tree(const Graph& g) {
  return connected(g) && g.edges() == static_cast<std::uint64_t>(g.n - 1);
}

int diameter(const Graph& g) {
  int best = 0;
  for (int s = 0; s < g.n; ++s) {
    for (int x : hops_from(g, s)) {
      if (x < 0) return -1;
      best = std::max(best, x);
    }
  }
  return best;
}

std::string describe(const Graph& g) {
  int dmin = g.n, dmax = 0;
  for (int i = 0; i < g.n; ++i) {
    dmin = std::min(dmin, g.degree(i));
    dmax = std::max(dmax, g.degree(i));
  }
  char buf[256];
  const std::string deg =
      dmin == dmax ? std::to_string(dmin) : std::to_string(dmin) + ".." + std::to_string(dmax);
  std::snprintf(buf, sizeof buf, "%s on %d rank%s: degree %s, %llu edges, spectral gap %.4f, diameter %d",
                g.name.c_str(), g.n, g.n == 1 ? "" : "s", deg.c_str(),
                static_cast<unsigned long long>(g.edges()), spectral_gap(g), diameter(g));
  return buf;
}

}  // namespace sparcol::topo
