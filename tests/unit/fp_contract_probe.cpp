// The probes of fp_contract_probe.h, compiled with sparcol's numerics flags like every library TU.
#include "fp_contract_probe.h"

#include "sparcol/device/elementwise.hpp"

namespace sparcol::test {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SPARCOL_FMA_TARGET __attribute__((target("fma")))
bool have_fma_target() {
  return true;
}
#else
#define SPARCOL_FMA_TARGET
bool have_fma_target() {
  return false;
}
#endif

float probe_mul_add(float a, float b, float c) {
  return a * b + c;
}
SPARCOL_FMA_TARGET float probe_mul_add_fma(float a, float b, float c) {
  return a * b + c;
}
SPARCOL_FMA_TARGET float probe_twin_mul_add_fma(float a, float b, float c) {
  return device::fadd(device::fmul(a, b), c);
}

}  // namespace sparcol::test
