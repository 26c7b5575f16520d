// Replaces the global operator new to count allocations while a test asks for it (the compressors
// promise not to allocate once sized). Only the non-array, non-aligned forms are replaced: the
// library's containers use nothing else.
#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_count{0};
}  // namespace

namespace sparcol::test {
void start_counting_allocations() {
  g_count = 0;
  g_counting = true;
}
long stop_counting_allocations() {
  g_counting = false;
  return g_count.load();
}
}  // namespace sparcol::test

namespace {
void* counted_malloc(std::size_t size) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_count.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

// Every non-array, non-aligned form, so that whatever frees memory matches what allocated it (the
// library's nothrow form, used by std::stable_sort's buffer, would otherwise pair with our delete).
void* operator new(std::size_t size) {
  if (void* p = counted_malloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return counted_malloc(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
