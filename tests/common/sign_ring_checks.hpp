// Checks of the sign-bit ring all-reduces (coll/sign_ring_allreduce.hpp), written once over the
// Backend interface and run on LoopbackBackend (tests/coll/test_sign_ring.cpp) and on MpiBackend
// under mpirun (tests/mpi/test_sign_ring_mpi.cpp).
#pragma once

#include <cstdint>

#include "coll_checks.hpp"
#include "sparcol/comm/backend.hpp"

namespace sparcol::test {

// Marsit: rank r's bits are the signs of input_value(seed, r, j), its scale a multiple of 1/4. The
// merged words must equal marsit_reference() recomputed here from every rank's formula bits (0 wrong
// words), every merged bit must be one of the ranks' bits, the unused high bits 0, lambda the mean of
// the scales in rank order, the decoded vector +-lambda, and everything bitwise equal on all ranks.
CheckResult check_marsit(comm::Backend& b, std::uint64_t n, std::uint64_t seed, std::uint64_t step);

// The cascading baseline: rank r's input p_r = input_value(seed, r, j) / 4. The final chunk messages
// must equal a host replay of the cascade (decode, add, re-compress hop by hop with the same scaled
// sign), the decoded vector their mean, bitwise equal on all ranks.
CheckResult check_sign_cascade(comm::Backend& b, std::uint64_t n, std::uint64_t seed);

}  // namespace sparcol::test
