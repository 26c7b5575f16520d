// The one place where a GPU test decides between skipping and failing (docs/gpu.md, "Tests").
//
// Without a usable GPU (no CUDA device, a build without NCCL where NCCL is needed) a GPU test
// skips and says why; CTest reports it as skipped, never as passed. On a machine that must have
// a GPU, SPARCOL_REQUIRE_GPU=1 turns the same outcome into a failure, so that a GPU node with a
// broken driver or a build without CUDA or NCCL cannot go green.
//
// A case the GPU is too small for (memory) or too few for (one NCCL rank per GPU) is a capacity
// skip: the device works, the job asked for more than it has. It stays a skip under
// SPARCOL_REQUIRE_GPU=1 (reported as skipped, not passed).
//
// The macros return from the test body (they expand to GTEST_SKIP() or FAIL()), so they belong in
// a TEST body or a function returning void.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "sparcol/device/device.hpp"

namespace sparcol::test {

// Whether this run must have a GPU: SPARCOL_REQUIRE_GPU set to anything but "" or "0".
inline bool gpu_required() {
  const char* s = std::getenv("SPARCOL_REQUIRE_GPU");
  return s != nullptr && *s != '\0' && std::strcmp(s, "0") != 0;
}

}  // namespace sparcol::test

// Skips with `why`, or fails with it under SPARCOL_REQUIRE_GPU=1.
#define SPARCOL_GPU_SKIP(why)                                                                 \
  do {                                                                                        \
    const std::string sparcol_gpu_why_ = (why);                                               \
    if (::sparcol::test::gpu_required())                                                      \
      FAIL() << "SPARCOL_REQUIRE_GPU is set, but this test cannot run: " << sparcol_gpu_why_; \
    GTEST_SKIP() << sparcol_gpu_why_;                                                         \
  } while (0)

// Skips (or fails, as above) unless a CUDA device is present.
#define SPARCOL_SKIP_WITHOUT_GPU()                                               \
  do {                                                                           \
    if (!::sparcol::device::has_gpu())                                           \
      SPARCOL_GPU_SKIP("no CUDA device: " + ::sparcol::device::no_gpu_reason()); \
  } while (0)

// Skips when the device works but is too small or too few for this case; a skip in every mode.
#define SPARCOL_GPU_CAPACITY_SKIP(why) GTEST_SKIP() << "GPU capacity: " << (why)

// Skips a test written for machines without a GPU when one is present; a skip in every mode.
#define SPARCOL_SKIP_WITH_GPU()                                                          \
  do {                                                                                   \
    if (::sparcol::device::has_gpu())                                                    \
      GTEST_SKIP() << "a CUDA device is present: this test covers machines without one"; \
  } while (0)
