#include "sparcol/topo/acid.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "sparcol/core/error.hpp"

namespace sparcol::topo {

AcidConstants acid_constants(const Graph& g, double rate_com, int rank) {
  const int n = g.n;
  SPARCOL_CHECK_ARG(std::isfinite(rate_com) && rate_com > 0, rank,
                    "A2CiD2: the communication rate must be > 0, got " + std::to_string(rate_com));
  SPARCOL_CHECK_ARG(n >= 3, rank, "A2CiD2 needs at least 3 ranks, got " + std::to_string(n));
  SPARCOL_CHECK_ARG(connected(g), rank, "A2CiD2: topology " + g.name + " is not connected");
  for (int i = 1; i < n; ++i)
    SPARCOL_CHECK_ARG(g.degree(i) == g.degree(0), rank,
                      "A2CiD2 needs a regular graph (every rank with the same degree); " + g.name + " on " +
                          std::to_string(n) + " ranks is not");
  SPARCOL_CHECK_ARG(
      g.degree(0) < n - 1, rank,
      "A2CiD2 is defined for non-complete graphs only (ring, exponential, torus), got " + g.name);
  const auto un = static_cast<std::size_t>(n);
  std::vector<double> lap(un * un, 0.0);
  for (std::size_t i = 0; i < un; ++i) {
    lap[i * un + i] = rate_com;
    const double w = rate_com / static_cast<double>(g.neighbors[i].size());
    for (int j : g.neighbors[i]) lap[i * un + static_cast<std::size_t>(j)] -= w;
  }
  std::vector<double> vec;
  const auto ev = symmetric_eigen(lap, n, &vec);  // ascending; ev[0] = 0 (connected)
  AcidConstants c;
  c.chi1 = 1.0 / ev[1];
  // L^+ = sum over the non-zero eigenvalues of v v^T / lambda.
  auto pinv = [&](std::size_t i, std::size_t j) {
    double s = 0;
    for (std::size_t k = 1; k < un; ++k) s += vec[i * un + k] * vec[j * un + k] / ev[k];
    return s;
  };
  for (std::size_t i = 0; i < un; ++i) {
    for (int jj : g.neighbors[i]) {
      const auto j = static_cast<std::size_t>(jj);
      if (j < i) continue;
      const double r = 0.5 * (pinv(i, i) + pinv(j, j) - 2 * pinv(i, j));
      c.chi2 = std::max(c.chi2, r);
    }
  }
  c.eta = 1.0 / (2 * std::sqrt(c.chi1 * c.chi2));
  c.alpha = 0.5 * std::sqrt(c.chi1 / c.chi2);
  return c;
}

void acid_mix(float* x, float* xt, std::size_t n, double eta, double dt) {
  if (eta == 0 || dt == 0) return;
  const double e = std::exp(-2 * eta * dt);
  for (std::size_t i = 0; i < n; ++i) {
    const double s = 0.5 * (static_cast<double>(x[i]) + xt[i]);
    const double h = 0.5 * (static_cast<double>(x[i]) - xt[i]);
    x[i] = static_cast<float>(s + h * e);
    xt[i] = static_cast<float>(s - h * e);
  }
}

void acid_average(float* x, float* xt, std::size_t n, const float* base, const float* recv, double alpha) {
  const auto a = static_cast<float>(alpha);
  for (std::size_t i = 0; i < n; ++i) {
    const float d = recv[i] - base[i];  // read base before x changes (base may alias x)
    x[i] += 0.5f * d;
    if (xt != nullptr) xt[i] += a * d;
  }
}

}  // namespace sparcol::topo
