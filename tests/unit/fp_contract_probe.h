// a * b + c compiled two ways (tests/unit/test_fp_contract.cpp): probe_* with sparcol's own flags
// (sparcol_numerics: -ffp-contract=off), control_* with -ffp-contract=fast. The *_fma variants are
// compiled for a CPU with FMA (target attribute), so that a compiler allowed to contract can; call
// them only where __builtin_cpu_supports("fma").
#pragma once

namespace sparcol::test {

float probe_mul_add(float a, float b, float c);
float probe_mul_add_fma(float a, float b, float c);
float probe_twin_mul_add_fma(float a, float b, float c);  // via device/elementwise.hpp's fmul, fadd
float control_mul_add_fma(float a, float b, float c);
bool have_fma_target();  // whether the probes were built for x86-64, where the target attribute exists

}  // namespace sparcol::test
