// CPU twins of kernels/coll_support.cu (see coll_support.hpp).
#include <string>

#include "coll_support_ops.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/coll_support.hpp"

namespace sparcol::device::cpu {

void add_into(float* dst, const float* src, std::uint64_t n) {
  if (n == 0) return;
  require_host_pointer(dst, "add_into: dst");
  require_host_pointer(src, "add_into: src");
  const detail::AddIntoOp op{dst, src};
  for (std::uint64_t i = 0; i < n; ++i) op.store(i, op.load(i));
}

void first_bad_index(const Index* idx, std::uint64_t count, std::uint64_t n, std::uint64_t* first) {
  require_host_pointer(first, "first_bad_index: first");
  *first = kNoBadIndex;
  if (count == 0) return;
  require_host_pointer(idx, "first_bad_index: idx");
  const detail::FirstBadIndexOp op{idx, n, first};
  for (std::uint64_t j = 0; j < count && *first == kNoBadIndex; ++j) op.store(j, op.load(j));
}

void count_nonzero(const float* v, std::uint64_t n, std::uint64_t* count) {
  require_host_pointer(count, "count_nonzero: count");
  *count = 0;
  if (n == 0) return;
  require_host_pointer(v, "count_nonzero: v");
  std::uint64_t c = 0;
  for (std::uint64_t i = 0; i < n; ++i) c += v[i] != 0.0f ? 1 : 0;
  *count = c;
}

}  // namespace sparcol::device::cpu
