// Internal to src/device and kernels/: the CUDA runtime check macro and stream handle conversion.
// Only compiled when SPARCOL_HAVE_CUDA (it includes the CUDA runtime header).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"

namespace sparcol::device::detail {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* expr, const char* file, int line) {
  // Clear a non-sticky error so that it is not reported again by the next unrelated check.
  (void)cudaGetLastError();
  ::sparcol::detail::throw_error(ErrorCode::kCuda, -1,
                                 std::string(expr) + " failed: " + cudaGetErrorString(err), file, line);
}

inline cudaStream_t cuda_stream(const Stream& s) {
  return static_cast<cudaStream_t>(s.handle());
}

}  // namespace sparcol::device::detail

// Throws Error(kCuda, "<expr> failed: <cudaGetErrorString> [file:line]") when expr is not cudaSuccess.
#define SPARCOL_CUDA_CHECK(expr)                                                           \
  do {                                                                                     \
    const cudaError_t sparcol_cuda_err_ = (expr);                                          \
    if (sparcol_cuda_err_ != cudaSuccess)                                                  \
      ::sparcol::device::detail::throw_cuda(sparcol_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad launch configuration (or an earlier asynchronous failure).
#define SPARCOL_CUDA_CHECK_LAUNCH() SPARCOL_CUDA_CHECK(cudaGetLastError())
