// Shared pieces of the MPI test programs: one MpiBackend for the whole run, and a fixture whose
// TearDown makes every rank agree on whether the test failed anywhere.
#pragma once

#include <gtest/gtest.h>

#include "sparcol/comm/mpi_backend.hpp"

namespace sparcol::test {

comm::MpiBackend& world();
void reset_world();

class MpiTest : public ::testing::Test {
 protected:
  void TearDown() override;
};

}  // namespace sparcol::test
