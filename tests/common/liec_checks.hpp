// Checks of LIEC's sharded server (coll/liec_allreduce.hpp), written once over the Backend interface
// and run on LoopbackBackend (tests/coll/test_liec.cpp) and on MpiBackend under mpirun
// (tests/mpi/test_liec_mpi.cpp).
#pragma once

#include <cstdint>

#include "coll_checks.hpp"
#include "sparcol/comm/backend.hpp"

namespace sparcol::test {

// Rank r uploads input_value(seed, r, j) at the indices j it selects (about pct % of them, in
// descending order on odd ranks; pct 0: no pairs, 100: every index) or, dense, at all of them. The
// owner's sum must equal the sum of the formula values (integers: exact in any order) and the host
// reference; owner r then sends back its sum at the indices of its chunk it selects (pct_down) or its
// whole chunk (dense), and every rank's assembled vector must equal the formula's, bitwise the same on
// all ranks. Byte counts are checked against the file comment's formulas.
CheckResult check_liec(comm::Backend& b, std::uint64_t n, bool sparse_up, bool sparse_down, int pct_up,
                       int pct_down, std::uint64_t seed);

}  // namespace sparcol::test
