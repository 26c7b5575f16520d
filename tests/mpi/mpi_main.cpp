// GoogleTest main for tests run under mpirun.
//
// MPI is initialised once for the whole program (a global Environment would be too late for
// gtest's own argument parsing on some MPIs, so main does it). Only rank 0 prints gtest's usual
// output; other ranks print their failures prefixed with their rank. A test fails on rank 0 if it
// failed on any rank (see MpiTest::TearDown), so the exit status of rank 0 tells the whole story,
// and mpirun returns non-zero if any rank did: 1 for a failure, 77 when a case skipped and none
// failed.
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

// The exit status of a run in which a case skipped and none failed (CTest's SKIP_RETURN_CODE).
constexpr int kSkipped = 77;

}  // namespace

// The thread level MPI is initialised at: MPI_THREAD_FUNNELED (the programs' default), or the one a
// test binary's main library is compiled with (MPI_THREAD_MULTIPLE for the progress-thread tests).
#ifndef SPARCOL_TEST_MPI_THREAD_LEVEL
#define SPARCOL_TEST_MPI_THREAD_LEVEL kFunneled
#endif

int main(int argc, char** argv) {
  sparcol::comm::MpiEnvironment env(&argc, &argv, sparcol::comm::ThreadLevel::SPARCOL_TEST_MPI_THREAD_LEVEL);
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = sparcol::comm::MpiEnvironment::world_rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  int rc = RUN_ALL_TESTS();
  // Any rank's failure makes every rank's exit status non-zero. Without a failure, a skipped case
  // (on any rank) makes it 77, which CTest reports as skipped (SKIP_RETURN_CODE): a run that skipped
  // something did not pass.
  float flags[2] = {rc != 0 ? 1.0f : 0.0f,
                    ::testing::UnitTest::GetInstance()->skipped_test_count() > 0 ? 1.0f : 0.0f};
  sparcol::test::world().allreduce_sum(flags, 2);
  sparcol::test::reset_world();
  if (flags[0] != 0.0f) return 1;
  return flags[1] != 0.0f ? kSkipped : 0;
}
