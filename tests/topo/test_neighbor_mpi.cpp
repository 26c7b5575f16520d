// The neighbour exchange on MpiBackend under mpirun (1-8 ranks): every topology that fits the rank
// count, 0 wrong.
#include <gtest/gtest.h>

#include "../common/coll_checks.hpp"
#include "../mpi/mpi_test.hpp"
#include "neighbor_checks.hpp"

namespace {

using sparcol::test::world;

class MpiNeighbor : public sparcol::test::MpiTest {};

TEST_F(MpiNeighbor, EveryTopologyZeroWrong) {
  std::uint64_t seed = sparcol::test::test_seed();
  world().broadcast(&seed, sizeof seed, 0);
  for (const auto& name : sparcol::test::fitting_topologies(world().size())) {
    const auto g = sparcol::topo::make_topology(name, world().size());
    for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{4099}}) {
      const auto r = sparcol::test::check_neighbor_exchange(world(), g, count, seed);
      EXPECT_EQ(r.wrong, 0u) << name << ", count " << count << ": " << r.first << " (seed " << seed << ")";
    }
  }
}

}  // namespace
