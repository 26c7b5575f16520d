// a * b + c in a kernel, compiled to PTX with the compile options of sparcol_cuda (and once with
// --fmad=true as the control): tests/gpu/check_ptx_fma.cmake checks that the kernels' options leave
// no fused multiply-add (fma.rn.f32) in the PTX (tests/suites/numerics.cmake).
__global__ void fmad_probe(const float* a, const float* b, const float* c, float* out) {
  out[threadIdx.x] = a[threadIdx.x] * b[threadIdx.x] + c[threadIdx.x];
}
