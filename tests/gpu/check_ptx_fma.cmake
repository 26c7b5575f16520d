# cmake -DPTX=<file> -DWANT_FMA=<ON|OFF> -P check_ptx_fma.cmake: fails unless the PTX holds a fused
# multiply-add (fma.rn.f32) exactly when WANT_FMA (tests/suites/numerics.cmake).
file(READ "${PTX}" text)
string(FIND "${text}" "fma.rn.f32" at)
if(WANT_FMA AND at EQUAL -1)
  message(FATAL_ERROR "${PTX}: no fma.rn.f32, but this control was compiled with --fmad=true")
elseif(NOT WANT_FMA AND NOT at EQUAL -1)
  message(FATAL_ERROR "${PTX}: fma.rn.f32 found: the kernels' options let nvcc fuse a * b + c")
endif()
string(FIND "${text}" "mul.rn.f32" mul)
if(NOT WANT_FMA AND mul EQUAL -1)
  message(FATAL_ERROR "${PTX}: no rounded multiply (mul.rn.f32) either")
endif()
message(STATUS "${PTX}: fma.rn.f32 ${at}, mul.rn.f32 ${mul}: as expected")
