// The pure parts of A2CiD2 (ALGORITHMS.md 10.6): the constants computed from the graph and the
// closed form of the continuous momentum's mixing. The asynchronous pairing protocol is
// topo::PairGossip (pair_gossip.hpp); the methods a2cid2 and async-gossip (docs/async_gossip.md).
#pragma once

#include <cstddef>

#include "sparcol/topo/graph.hpp"

namespace sparcol::topo {

struct AcidConstants {
  double chi1 = 0;   // 1 / lambda_2(L): the inverse of the gossip Laplacian's smallest non-zero eigenvalue
  double chi2 = 0;   // max over edges (i,j) of (1/2)(e_i - e_j)^T L^+ (e_i - e_j)
  double eta = 0;    // 1 / (2 sqrt(chi1 chi2)): the mixing rate of x and its momentum copy xt
  double alpha = 0;  // (1/2) sqrt(chi1 / chi2): the momentum copy's step at a pairwise averaging
};

// L = rate_com * (I - W), W_ij = 1/|N_i| for neighbours (no self weight). The graph must be regular,
// connected, not complete, with at least 3 nodes (Error(kInvalidArgument) naming what fails):
// A2CiD2 is defined on such graphs only (cycle, exponential, torus). rate_com > 0.
// Check values (10.6): a 16-node cycle at rate 1 gives chi1 = 13.137, chi2 = 0.9375, eta = 0.1425,
// alpha = 1.872.
AcidConstants acid_constants(const Graph& g, double rate_com, int rank = -1);

// The mixing over a time dt of the ODE d(x, xt)/dt = eta * [[-1, 1], [1, -1]] (x, xt), in closed form:
// with s = (x + xt)/2, h = (x - xt)/2, e = exp(-2 eta dt): x <- s + h e, xt <- s - h e. In place on n
// elements; eta = 0 (async-gossip) leaves both unchanged.
void acid_mix(float* x, float* xt, std::size_t n, double eta, double dt);

// One pairwise averaging on this rank's side, once it holds the neighbour's x_j (`recv`):
// d = recv - base, x <- x + d/2, xt <- xt + alpha d (xt may be null: async-gossip). `base` is this
// side's x_i of the rule: the x it sent, when it mixed before sending (the default order,
// "mix-first"), or its x after mixing now, when the pair exchanged first ("exchange-first", the
// authors' order; base may then be x itself). Returns nothing; in place on n elements.
void acid_average(float* x, float* xt, std::size_t n, const float* base, const float* recv, double alpha);

}  // namespace sparcol::topo
