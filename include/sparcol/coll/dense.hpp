// The plain library operations (MPI_Allreduce, MPI_Allgatherv through the backend's dense
// baselines), wrapped with the same call fingerprint as sparcol's own collectives so that a rank
// calling a baseline while another calls a sparcol collective is a mismatch error, not a hang.
// The benchmark times the backend operations directly, without the fingerprint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "sparcol/comm/backend.hpp"

namespace sparcol::coll {

// data <- sum over ranks (backend.allreduce_sum: MPI_Allreduce on MpiBackend).
void dense_allreduce_sum(comm::Backend& backend, float* data, std::size_t count, std::uint64_t step = 0);

}  // namespace sparcol::coll
