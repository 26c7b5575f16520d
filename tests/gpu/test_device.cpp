// The device layer (include/sparcol/device/device.hpp) in every build: without a GPU (or without
// CUDA compiled in) every GPU request must fail with a clear Error, never crash; with a GPU the
// buffers, streams and pointer checks must work. Tests that need the other situation skip and say why.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "gpu_skip.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"

namespace dev = sparcol::device;
using sparcol::ErrorCode;

namespace {

template <class F>
void expect_error(ErrorCode code, const std::string& text, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << text << "'";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

}  // namespace

// The count, has_gpu() and the reason tell one story: no device iff a reason is given, and a build
// without CUDA has no device and says so. Every ordinal below the count is usable, the count itself
// is not (the out-of-range test below checks the error).
TEST(Device, CountAndReasonAgree) {
  const int n = dev::device_count();
  const std::string reason = dev::no_gpu_reason();
  EXPECT_EQ(n == 0, !reason.empty()) << "device_count() " << n << ", no_gpu_reason() '" << reason << "'";
  EXPECT_EQ(dev::has_gpu(), n > 0);
  EXPECT_EQ(dev::device_count(), n);  // discovery gives the same answer every time
  if (!SPARCOL_HAVE_CUDA) {
    EXPECT_EQ(n, 0);
    EXPECT_EQ(reason, "built without CUDA");
  }
  for (int i = 0; i < n; ++i) {
    dev::set_device(i);
    EXPECT_EQ(dev::current_device(), i);
  }
  if (n > 0) dev::set_device(0);
}

TEST(Device, OrdinalOutOfRangeIsAnArgumentError) {
  const int n = dev::device_count();
  expect_error(ErrorCode::kInvalidArgument, "device " + std::to_string(n) + " does not exist",
               [&] { dev::set_device(n); });
  expect_error(ErrorCode::kInvalidArgument, "has " + std::to_string(n) + " CUDA device(s)",
               [&] { dev::set_device(n + 7); });
  expect_error(ErrorCode::kInvalidArgument, "device -1 does not exist", [] { dev::set_device(-1); });
  EXPECT_EQ(sparcol::exit_code(ErrorCode::kInvalidArgument), 2);
}

TEST(Device, WithoutGpuEveryRequestFailsClearly) {
  SPARCOL_SKIP_WITH_GPU();
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::DeviceBuffer<float> b(16, "gradient"); });
  expect_error(ErrorCode::kCuda, "gradient", [] { dev::DeviceBuffer<float> b(16, "gradient"); });
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::PinnedBuffer<float> b(16); });
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::Stream s; });
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::memory_info(); });
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::current_device(); });
  expect_error(ErrorCode::kCuda, "no CUDA device", [] { dev::synchronize(); });
  EXPECT_EQ(sparcol::exit_code(ErrorCode::kCuda), 9);
  // Asking for nothing is not an error: an empty buffer holds no memory.
  dev::DeviceBuffer<float> empty(0);
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.size(), 0u);
}

TEST(Device, PointerChecksNameTheArgument) {
  std::vector<float> host(8, 1.0f);
  EXPECT_EQ(dev::pointer_kind(host.data()), sparcol::MemKind::kHost);
  EXPECT_EQ(dev::pointer_kind(nullptr), sparcol::MemKind::kHost);
  dev::require_host_pointer(host.data(), "topk: values");
  expect_error(ErrorCode::kInvalidArgument, "topk: values: expected a device pointer, got host memory",
               [&] { dev::require_device_pointer(host.data(), "topk: values"); });
  expect_error(ErrorCode::kInvalidArgument, "sign_pack: v: null pointer",
               [] { dev::require_device_pointer(nullptr, "sign_pack: v"); });
  expect_error(ErrorCode::kInvalidArgument, "copy: dst: null pointer",
               [] { dev::require_host_pointer(nullptr, "copy: dst"); });
}

TEST(Device, BuffersStreamsAndPointerKindsOnGpu) {
  SPARCOL_SKIP_WITHOUT_GPU();
  dev::set_device(0);
  EXPECT_EQ(dev::current_device(), 0);
  const dev::MemoryInfo info = dev::memory_info();
  EXPECT_GT(info.total_bytes, 0u);
  EXPECT_LE(info.free_bytes, info.total_bytes);

  std::vector<float> h(1000);
  std::iota(h.begin(), h.end(), -500.0f);
  dev::DeviceBuffer<float> d(h.size(), "round trip");
  d.upload(h.data());
  dev::DeviceBuffer<float> moved = std::move(d);
  EXPECT_EQ(d.data(), nullptr);
  std::vector<float> back(h.size());
  moved.download(back.data());
  EXPECT_EQ(back, h);

  EXPECT_EQ(dev::pointer_kind(moved.data()), sparcol::MemKind::kDevice);
  dev::require_device_pointer(moved.data(), "buffer");
  expect_error(ErrorCode::kInvalidArgument, "expected a host pointer, got device memory",
               [&] { dev::require_host_pointer(moved.data(), "cpu twin: v"); });

  dev::PinnedBuffer<float> pinned(16);
  EXPECT_EQ(dev::pointer_kind(pinned.data()), sparcol::MemKind::kHost);
  dev::require_host_pointer(pinned.data(), "pinned");

  dev::Stream s;
  dev::detail::copy_bytes_async(s, pinned.data(), moved.data(), 16 * sizeof(float));
  s.synchronize();
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(pinned[static_cast<std::uint64_t>(i)], h[static_cast<std::size_t>(i)]);
  dev::Stream borrowed = dev::Stream::borrow(s.handle());
  borrowed.synchronize();
}

TEST(Device, AllocationsBeyondTheDeviceFailWithoutCrashing) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const dev::MemoryInfo info = dev::memory_info();
  expect_error(ErrorCode::kInvalidArgument, "more than the device's",
               [&] { dev::DeviceBuffer<char> b(info.total_bytes + 1, "huge"); });
  if (info.free_bytes + (std::size_t{1} << 20) < info.total_bytes) {
    expect_error(ErrorCode::kCuda, "are free on the device",
                 [&] { dev::DeviceBuffer<char> b(info.free_bytes + (std::size_t{1} << 20), "too big"); });
  }
  // The device is still usable afterwards.
  dev::DeviceBuffer<float> ok(1024);
  EXPECT_NE(ok.data(), nullptr);
}
