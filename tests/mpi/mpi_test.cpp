#include "mpi_test.hpp"

#include <memory>

namespace sparcol::test {

namespace {
std::unique_ptr<comm::MpiBackend>& world_ptr() {
  static std::unique_ptr<comm::MpiBackend> w;
  return w;
}
}  // namespace

comm::MpiBackend& world() {
  if (!world_ptr()) {
    world_ptr() = comm::MpiBackend::world();
    world_ptr()->set_timeout(std::chrono::seconds(60));
  }
  return *world_ptr();
}

void reset_world() {
  world_ptr().reset();
}

void MpiTest::TearDown() {
  // OR the failure flag over ranks, so that rank 0 reports a failure that happened on rank 3.
  float failed = HasFailure() ? 1.0f : 0.0f;
  world().allreduce_sum(&failed, 1);
  if (failed != 0.0f && !HasFailure()) {
    ADD_FAILURE() << static_cast<int>(failed) << " other rank(s) failed this test (see their [rank R] lines)";
  }
  world().barrier();
}

}  // namespace sparcol::test
