// The control of fp_contract_probe.h: the same expression with contraction allowed
// (-ffp-contract=fast, tests/suites/numerics.cmake), to show that the probe's inputs detect an FMA.
#include "fp_contract_probe.h"

namespace sparcol::test {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("fma")))
#endif
float control_mul_add_fma(float a, float b, float c) {
  return a * b + c;
}

}  // namespace sparcol::test
