#include "sparcol/compress/none.hpp"

#include "common.hpp"

namespace sparcol::compress {

void NoneCompressor::compress(std::span<const float> v, const Context& /*ctx*/, Message& out) {
  detail::check_length(v.size(), "none");
  out.reset(Aggregation::kDense, v.size());
  out.values.assign(v.begin(), v.end());
}

}  // namespace sparcol::compress
