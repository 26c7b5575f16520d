// sparcol's code never fuses a multiply and an add (docs/gpu.md, "Determinism and the CPU twins"):
// a * b + c in a TU compiled with the library's flags gives the rounded product plus c, even where
// the CPU has FMA and the compiler could use it. a = 1 + 2^-12: a * a = 1 + 2^-11 + 2^-24 rounds
// (a tie, to even) to 1 + 2^-11, so with c = -(1 + 2^-11) the unfused result is 0 and the fused one
// 2^-24.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "fp_contract_probe.h"

namespace {

using namespace sparcol::test;

// Through volatiles, so that nothing is folded at compile time.
volatile float g_a = 1.0f + 0x1.0p-12f;
volatile float g_c = -(1.0f + 0x1.0p-11f);

bool cpu_has_fma() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

TEST(FpContract, InputsSeparateFusedFromUnfused) {
  const float a = g_a, c = g_c;
  EXPECT_EQ(std::fma(a, a, c), 0x1.0p-24f);
  const float product = a * a;  // this TU has the library's flags too
  EXPECT_EQ(product + c, 0.0f);
}

TEST(FpContract, LibraryFlagsGiveTheUnfusedResult) {
  const float a = g_a, c = g_c;
  EXPECT_EQ(probe_mul_add(a, a, c), 0.0f);
  if (!have_fma_target() || !cpu_has_fma()) {
    std::printf("note: no FMA on this CPU or target: only the plain probe ran\n");
    return;
  }
  EXPECT_EQ(probe_mul_add_fma(a, a, c), 0.0f) << "a * b + c was contracted into an FMA";
  EXPECT_EQ(probe_twin_mul_add_fma(a, a, c), 0.0f) << "fadd(fmul(a, b), c) was contracted into an FMA";
  // The control, compiled with -ffp-contract=fast, does fuse: the probe above could have.
  EXPECT_EQ(control_mul_add_fma(a, a, c), 0x1.0p-24f) << "the control was not contracted (compiler?)";
}

}  // namespace
