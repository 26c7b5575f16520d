// The device layer (see device.hpp). Two implementations in one file: the CUDA runtime one, and the
// one for builds without CUDA, where there is no device and every GPU request is refused.
#include "sparcol/device/device.hpp"

#include <string>

#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"

#if SPARCOL_HAVE_CUDA
#include "cuda_check.hpp"
#endif

namespace sparcol::device {

namespace {

std::string mib(std::size_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

}  // namespace

#if SPARCOL_HAVE_CUDA

namespace {

// cudaGetDeviceCount, with "no driver" and "no device" counted as zero devices.
struct Discovery {
  int count = 0;
  std::string reason;
};

Discovery probe() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return {0, cudaGetErrorString(err)};
  }
  if (n <= 0) return {0, "no CUDA device"};
  return {n, ""};
}

// Asked once per process (the driver does not gain or lose devices while it runs), and returned by
// reference: the pointer checks of every update call it, and copying the reason would allocate.
const Discovery& discover() {
  static const Discovery d = probe();
  return d;
}

// Every GPU request starts here: a clear error when there is no GPU, before any CUDA call that
// would fail with a less helpful message.
void require_gpu(const char* what) {
  const Discovery& d = discover();
  SPARCOL_CHECK(d.count > 0, ErrorCode::kCuda, -1, std::string(what) + ": no CUDA device (" + d.reason + ")");
}

}  // namespace

int device_count() noexcept {
  return discover().count;
}
bool has_gpu() noexcept {
  return device_count() > 0;
}
std::string no_gpu_reason() {
  return discover().reason;
}

void set_device(int ordinal) {
  const Discovery& d = discover();
  SPARCOL_CHECK_ARG(ordinal >= 0 && ordinal < d.count, -1,
                    "device " + std::to_string(ordinal) + " does not exist: this machine has " +
                        std::to_string(d.count) + " CUDA device(s)" +
                        (d.count == 0 ? " (" + d.reason + ")" : std::string()));
  SPARCOL_CUDA_CHECK(cudaSetDevice(ordinal));
}

int current_device() {
  require_gpu("current_device");
  int dev = 0;
  SPARCOL_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

MemoryInfo memory_info() {
  require_gpu("memory_info");
  MemoryInfo m;
  SPARCOL_CUDA_CHECK(cudaMemGetInfo(&m.free_bytes, &m.total_bytes));
  return m;
}

namespace {

// The runtime's view of p, or cudaMemoryTypeUnregistered when it has none (no GPU, plain host memory).
cudaMemoryType memory_type(const void* p) {
  if (p == nullptr || device_count() == 0) return cudaMemoryTypeUnregistered;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return cudaMemoryTypeUnregistered;
  }
  return attr.type;
}

}  // namespace

MemKind pointer_kind(const void* p) {
  const cudaMemoryType t = memory_type(p);
  return t == cudaMemoryTypeDevice || t == cudaMemoryTypeManaged ? MemKind::kDevice : MemKind::kHost;
}

void require_device_pointer(const void* p, const char* what) {
  SPARCOL_CHECK_ARG(p != nullptr, -1, std::string(what) + ": null pointer where device memory is expected");
  const cudaMemoryType t = memory_type(p);
  SPARCOL_CHECK_ARG(t == cudaMemoryTypeDevice || t == cudaMemoryTypeManaged, -1,
                    std::string(what) + ": expected a device pointer, got host memory" +
                        (device_count() == 0 ? " (there is no CUDA device)" : ""));
}

void require_host_pointer(const void* p, const char* what) {
  SPARCOL_CHECK_ARG(p != nullptr, -1, std::string(what) + ": null pointer where host memory is expected");
  SPARCOL_CHECK_ARG(memory_type(p) != cudaMemoryTypeDevice, -1,
                    std::string(what) + ": expected a host pointer, got device memory");
}

void synchronize() {
  require_gpu("synchronize");
  SPARCOL_CUDA_CHECK(cudaDeviceSynchronize());
}

Stream::Stream() {
  require_gpu("stream");
  cudaStream_t s = nullptr;
  SPARCOL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
  owned_ = true;
}

Stream::~Stream() {
  if (owned_ && handle_ != nullptr) (void)cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (owned_ && handle_ != nullptr) (void)cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
    handle_ = std::exchange(other.handle_, nullptr);
    owned_ = other.owned_;
  }
  return *this;
}

void Stream::synchronize() const {
  require_gpu("stream synchronize");
  SPARCOL_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_)));
}

namespace detail {

void* device_alloc(std::size_t bytes, const char* what) {
  if (bytes == 0) return nullptr;
  require_gpu(what);
  const MemoryInfo m = memory_info();
  // Checked before cudaMalloc so that an impossible request is an argument error naming the sizes,
  // and one that does not fit now a clear CUDA error, rather than a bare "out of memory".
  SPARCOL_CHECK_ARG(bytes <= m.total_bytes, -1,
                    std::string(what) + ": " + mib(bytes) + " requested, more than the device's " +
                        mib(m.total_bytes) + " of memory");
  SPARCOL_CHECK(bytes <= m.free_bytes, ErrorCode::kCuda, -1,
                std::string(what) + ": " + mib(bytes) + " requested, but only " + mib(m.free_bytes) + " of " +
                    mib(m.total_bytes) + " are free on the device");
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    ::sparcol::detail::throw_error(
        ErrorCode::kCuda, -1,
        std::string(what) + ": cudaMalloc of " + mib(bytes) + " failed: " + cudaGetErrorString(err), __FILE__,
        __LINE__);
  }
  return p;
}

void device_free(void* p) noexcept {
  if (p != nullptr) (void)cudaFree(p);
}

void* pinned_alloc(std::size_t bytes, const char* what) {
  if (bytes == 0) return nullptr;
  require_gpu(what);
  void* p = nullptr;
  const cudaError_t err = cudaMallocHost(&p, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    ::sparcol::detail::throw_error(
        ErrorCode::kCuda, -1,
        std::string(what) + ": cudaMallocHost of " + mib(bytes) + " failed: " + cudaGetErrorString(err),
        __FILE__, __LINE__);
  }
  return p;
}

void pinned_free(void* p) noexcept {
  if (p != nullptr) (void)cudaFreeHost(p);
}

void copy_bytes(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  require_gpu("copy");
  SPARCOL_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

void copy_bytes_async(const Stream& stream, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  SPARCOL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cuda_stream(stream)));
}

void memset_async(const Stream& stream, void* d_dst, int value, std::size_t bytes) {
  if (bytes == 0) return;
  SPARCOL_CUDA_CHECK(cudaMemsetAsync(d_dst, value, bytes, cuda_stream(stream)));
}

}  // namespace detail

#else  // no CUDA compiled in

namespace {
constexpr const char* kNoCuda = "built without CUDA";

[[noreturn]] void no_cuda(const std::string& what) {
  throw Error(ErrorCode::kCuda, -1, what + ": no CUDA device (sparcol was " + kNoCuda + ")");
}
}  // namespace

int device_count() noexcept {
  return 0;
}
bool has_gpu() noexcept {
  return false;
}
std::string no_gpu_reason() {
  return kNoCuda;
}

void set_device(int ordinal) {
  throw Error(ErrorCode::kInvalidArgument, -1,
              "device " + std::to_string(ordinal) + " does not exist: this machine has 0 CUDA device(s) (" +
                  kNoCuda + ")");
}
int current_device() {
  no_cuda("current_device");
}
MemoryInfo memory_info() {
  no_cuda("memory_info");
}
MemKind pointer_kind(const void*) {
  return MemKind::kHost;
}

void require_device_pointer(const void* p, const char* what) {
  SPARCOL_CHECK_ARG(p != nullptr, -1, std::string(what) + ": null pointer where device memory is expected");
  throw Error(
      ErrorCode::kInvalidArgument, -1,
      std::string(what) + ": expected a device pointer, got host memory (sparcol was " + kNoCuda + ")");
}

void require_host_pointer(const void* p, const char* what) {
  SPARCOL_CHECK_ARG(p != nullptr, -1, std::string(what) + ": null pointer where host memory is expected");
}

void synchronize() {
  no_cuda("synchronize");
}

Stream::Stream() {
  no_cuda("stream");
}
Stream::~Stream() = default;
Stream& Stream::operator=(Stream&& other) noexcept {
  handle_ = std::exchange(other.handle_, nullptr);
  owned_ = other.owned_;
  return *this;
}
void Stream::synchronize() const {
  no_cuda("stream synchronize");
}

namespace detail {
void* device_alloc(std::size_t bytes, const char* what) {
  if (bytes == 0) return nullptr;
  no_cuda(std::string(what) + " (" + mib(bytes) + ")");
}
void device_free(void*) noexcept {}
void* pinned_alloc(std::size_t bytes, const char* what) {
  if (bytes == 0) return nullptr;
  no_cuda(std::string(what) + " (" + mib(bytes) + ")");
}
void pinned_free(void*) noexcept {}
void copy_bytes(void*, const void*, std::size_t bytes) {
  if (bytes != 0) no_cuda("copy");
}
void copy_bytes_async(const Stream&, void*, const void*, std::size_t bytes) {
  if (bytes != 0) no_cuda("copy");
}
void memset_async(const Stream&, void*, int, std::size_t bytes) {
  if (bytes != 0) no_cuda("memset");
}
}  // namespace detail

#endif

}  // namespace sparcol::device
