// Collective checks written once over the Backend interface and run both on LoopbackBackend
// (tests/coll) and on MpiBackend under mpirun (tests/mpi).
//
// Inputs are integer-valued floats given by a formula in (seed, rank, index), so every rank can
// compute the exact expected sum itself and sums are exact in any order. Each check also compares
// with the backend's plain operation (MPI_Allreduce / MPI_Allgatherv on MpiBackend) element by
// element, and checks that the result is bitwise identical on every rank.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparcol/comm/backend.hpp"

namespace sparcol::test {

struct CheckResult {
  std::uint64_t wrong = 0;  // elements that differ from the expected value on this rank
  std::string first;        // description of the first difference

  void fail(const std::string& what) {
    if (wrong++ == 0) first = what;
  }
  void merge(const CheckResult& o) {
    if (o.wrong != 0 && wrong == 0) first = o.first;
    wrong += o.wrong;
  }
};

// Integer-valued input in [-8, 8] for (seed, rank, index).
float input_value(std::uint64_t seed, int rank, std::uint64_t i);

CheckResult check_ring_allreduce(comm::Backend& b, std::size_t count, std::uint64_t seed);
// Uses a step for which the block wraps around the end of the vector when `want_wrap` and 0 < k < n.
// A step whose RBGS block (tensor 3) wraps around the end (wrap) or does not, or nullopt when no such
// step exists (only 2 <= k < n can wrap, only k <= n can lie inside) or none turned up in a bounded
// search (each draw succeeds with probability at least 1/n).
std::optional<std::uint64_t> rbgs_step_of_kind(std::size_t n, std::size_t k, std::uint64_t seed, bool wrap);
CheckResult check_rbgs_allreduce(comm::Backend& b, std::size_t n, std::size_t k, std::uint64_t seed,
                                 bool want_wrap);
// Each rank contributes a seeded number of pairs in [0, max_k] (rank 1 always contributes none when
// size > 1), with indices drawn from a small range so duplicates across and within ranks occur.
CheckResult check_sparse_allgather(comm::Backend& b, std::uint64_t n, std::size_t max_k, std::uint64_t seed);

// Sign all-gather (coll/sign_allgather.hpp): rank r's bits are the signs of input_value(seed, r, j)
// (bit set for >= 0, sign(0) := +1) and its scale a formula in (seed, r). Checks the gathered bits and
// scales against the formula and against the backend's plain allgatherv, and both decoders, mean and
// majority vote, against an oracle computed here from the formula inputs in double (exact: the sums
// are of multiples of 1/4, and a float quotient rounded once from double is the float quotient).
CheckResult check_sign_allgather(comm::Backend& b, std::uint64_t n, std::uint64_t seed);

// The k values swept for a vector of n elements: k = 0, k = n, a wrapping half block and 1%; above
// 2^20 elements only the half and 1% blocks (the rest is covered at smaller sizes, and CI has 2 cores).
std::vector<std::size_t> rbgs_ks(std::size_t n);
// Pairs per rank swept for the sparse all-gather: 0, 1, 10% (+1) and all n; above 2^20 elements only
// 0 and 1% (+1).
std::vector<std::size_t> sparse_ks(std::size_t n);

// Logical OR of "this rank failed" over all ranks, via the backend's own allreduce; returns the
// number of ranks that failed.
int ranks_failed(comm::Backend& b, const CheckResult& r);

// False when SPARCOL_TEST_SMALL is set (sanitizer and other slow builds): suites then leave out
// their large sizes (2^20 and 2^24 elements).
bool large_sizes();
// `sizes` without the entries above 2^17 elements when large_sizes() is false.
std::vector<std::size_t> sized(std::vector<std::size_t> sizes);

// A seed for this test run: SPARCOL_TEST_SEED if set, else a fresh random one.
std::uint64_t test_seed();

}  // namespace sparcol::test
