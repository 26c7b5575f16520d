// GoogleTest main for tests run under mpirun.
//
// MPI is initialised once for the whole program (a global Environment would be too late for
// gtest's own argument parsing on some MPIs, so main does it). Only rank 0 prints gtest's usual
// output; other ranks print their failures prefixed with their rank. A test fails on rank 0 if it
// failed on any rank (see MpiTest::TearDown), so the exit status of rank 0 tells the whole story,
// and mpirun returns non-zero if any rank did.
#include <gtest/gtest.h>

#include <iostream>

#include "mpi_test.hpp"
#include "sparcol/comm/mpi_backend.hpp"

namespace {

// Prints failed assertions on ranks other than 0 (whose default printer is removed).
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::cerr << "[rank " << rank_ << "] " << (r.file_name() ? r.file_name() : "?") << ":" << r.line_number()
              << ": " << r.summary() << std::endl;
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  sparcol::comm::MpiEnvironment env(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = sparcol::comm::MpiEnvironment::world_rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  int rc = RUN_ALL_TESTS();
  // Any rank's failure makes every rank's exit status non-zero.
  float failed = rc != 0 ? 1.0f : 0.0f;
  sparcol::test::world().allreduce_sum(&failed, 1);
  sparcol::test::reset_world();
  return failed != 0.0f ? 1 : 0;
}
