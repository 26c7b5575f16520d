// The device layer: which GPUs exist, device memory, pinned host memory and streams.
//
// Compiled in every build. With CUDA compiled in (SPARCOL_HAVE_CUDA) it wraps the CUDA runtime;
// without, it reports no device and refuses every request for device memory or streams with
// Error(kCuda, "... built without CUDA"). No CUDA type appears here: streams are opaque handles, so
// code that includes this header needs no CUDA headers.
//
// A machine whose driver is missing or too old for the runtime (cudaGetDeviceCount returns
// cudaErrorInsufficientDriver or cudaErrorNoDevice) counts as having zero GPUs: device_count()
// returns 0 and no_gpu_reason() says why. Everything that needs a GPU then fails with a clear
// Error(kCuda) naming the reason, never with a crash.
//
// Errors name no rank (-1): the device layer does not know the caller's rank.
// Managed (unified) memory is never allocated by sparcol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "sparcol/core/types.hpp"

namespace sparcol::device {

// Number of usable CUDA devices; 0 when built without CUDA, without a (recent enough) driver, or
// without a GPU. Never throws.
int device_count() noexcept;
bool has_gpu() noexcept;
// Why device_count() is 0 ("built without CUDA", the runtime's message for a missing driver, ...);
// empty when there is a GPU.
std::string no_gpu_reason();

// Makes `ordinal` the calling thread's current device. Error(kInvalidArgument) naming the ordinal
// and the number of devices when it is not in [0, device_count()) (which is every ordinal without
// a GPU).
void set_device(int ordinal);
// The calling thread's current device; Error(kCuda) without a GPU.
int current_device();

struct MemoryInfo {
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
};
// Free and total memory of the current device; Error(kCuda) without a GPU.
MemoryInfo memory_info();

// Where p points: kDevice for memory from cudaMalloc (or managed memory), kHost for everything
// else (pageable or pinned host memory, nullptr, and every pointer when there is no GPU).
MemKind pointer_kind(const void* p);
// Argument checks for launchers (device pointers) and CPU twins (host pointers). `what` names the
// argument in the message, e.g. "topk: values". Error(kInvalidArgument) for the wrong kind or for
// nullptr. Managed memory passes both checks (it is reachable from both sides).
void require_device_pointer(const void* p, const char* what);
void require_host_pointer(const void* p, const char* what);

// Waits for all work on the current device; Error(kCuda) reporting the first failure of an
// earlier asynchronous launch.
void synchronize();

// An owning CUDA stream (non-blocking with respect to the legacy default stream) created on the
// current device, or a borrowed handle. handle() is the cudaStream_t as an opaque pointer
// (reinterpret_cast it back in CUDA code). Move-only.
class Stream {
 public:
  Stream();  // creates a stream; Error(kCuda) without a GPU
  ~Stream();
  Stream(Stream&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)), owned_(other.owned_) {}
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Wraps a cudaStream_t the caller owns (nullptr is the legacy default stream); not destroyed here.
  static Stream borrow(void* cuda_stream) noexcept { return Stream(cuda_stream, false); }

  void* handle() const noexcept { return handle_; }
  // Waits for all work queued on this stream; Error(kCuda) reporting an asynchronous failure.
  void synchronize() const;

 private:
  Stream(void* handle, bool owned) noexcept : handle_(handle), owned_(owned) {}
  void* handle_ = nullptr;
  bool owned_ = false;
};

namespace detail {
// Raw allocation behind the buffers. device_alloc first compares the request with the device's
// memory (cudaMemGetInfo): more than the device's total is Error(kInvalidArgument), more than what
// is free now is Error(kCuda); both name `what` and the sizes. Requests of 0 bytes return nullptr.
void* device_alloc(std::size_t bytes, const char* what);
void device_free(void* p) noexcept;
void* pinned_alloc(std::size_t bytes, const char* what);
void pinned_free(void* p) noexcept;
// Synchronous copies (cudaMemcpy with cudaMemcpyDefault) and a stream-ordered one.
void copy_bytes(void* dst, const void* src, std::size_t bytes);
void copy_bytes_async(const Stream& stream, void* dst, const void* src, std::size_t bytes);
void memset_async(const Stream& stream, void* d_dst, int value, std::size_t bytes);
}  // namespace detail

// A typed device allocation (cudaMalloc/cudaFree). Move-only; an empty buffer holds nullptr.
// Contents are uninitialised. Allocation follows detail::device_alloc's checks.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::uint64_t count, const char* what = "device buffer")
      : data_(static_cast<T*>(detail::device_alloc(bytes_for(count), what))), size_(count) {}
  ~DeviceBuffer() { detail::device_free(data_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      detail::device_free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() const noexcept { return data_; }
  std::uint64_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return static_cast<std::size_t>(size_) * sizeof(T); }

  // Synchronous whole-buffer copies from and to host memory holding size() elements.
  void upload(const T* h_src) { detail::copy_bytes(data_, h_src, bytes()); }
  void download(T* h_dst) const { detail::copy_bytes(h_dst, data_, bytes()); }

 private:
  static std::size_t bytes_for(std::uint64_t count) { return static_cast<std::size_t>(count) * sizeof(T); }
  T* data_ = nullptr;
  std::uint64_t size_ = 0;
};

// Page-locked host memory (cudaMallocHost/cudaFreeHost) for fast asynchronous copies.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::uint64_t count, const char* what = "pinned buffer")
      : data_(static_cast<T*>(detail::pinned_alloc(static_cast<std::size_t>(count) * sizeof(T), what))),
        size_(count) {}
  ~PinnedBuffer() { detail::pinned_free(data_); }
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      detail::pinned_free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  T* data() const noexcept { return data_; }
  std::uint64_t size() const noexcept { return size_; }
  T& operator[](std::uint64_t i) const noexcept { return data_[i]; }

 private:
  T* data_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace sparcol::device
