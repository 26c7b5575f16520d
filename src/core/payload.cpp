#include "sparcol/core/payload.hpp"

#include <algorithm>
#include <cstddef>

namespace sparcol {

void rbgs_pack(const float* v, const Block& b, float* packed) {
  const auto first = static_cast<std::ptrdiff_t>(b.first_len());
  std::copy(v + b.start, v + b.start + first, packed);
  std::copy(v, v + b.wrap_len(), packed + first);
}

void rbgs_unpack(const float* packed, const Block& b, float* v) {
  const auto first = static_cast<std::ptrdiff_t>(b.first_len());
  std::copy(packed, packed + first, v + b.start);
  std::copy(packed + first, packed + b.length, v);
}

}  // namespace sparcol
